//! What the quantized matrix kernels of [`super::q4k`] and [`super::block32`] share.
//!
//! Both keep a GGUF matrix's quantized values as the file has them, rearranged at load in
//! panels of 16 rows so that one AVX-512 VNNI `vpdpbusd` multiplies four consecutive
//! inputs (broadcast) by 16 rows (one per 32-bit lane), and both take activations
//! quantized per row the way llama.cpp does for that weight type, so each block's sum is
//! the integer llama.cpp computes. The panels of one or several matrices are shared out
//! over candle's thread pool ([`crate::runtime::parallel_chunks`]).

/// Rows per panel: the 16 i32 lanes of an AVX-512 register.
pub const PANEL: usize = 16;

/// Whether this CPU runs the panel kernels (AVX-512 F, BW and VNNI).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A matrix stored in panels of [`PANEL`] rows.
pub trait PanelMatrix: Sync {
    /// Its activations, quantized.
    type Input: QuantizedRows + Sync;

    /// Output size (rows of the matrix).
    fn rows(&self) -> usize;

    /// Input size (columns of the matrix).
    fn cols(&self) -> usize;

    /// Columns `16 p .. 16 p + 16` (those that exist) of every output row: `x.rows()`
    /// rows of `self.rows()` values at `y`.
    ///
    /// # Safety
    /// The CPU must be [`supported`]; `y` must point to `x.rows() * self.rows()` f32s,
    /// and `x` must be `self.cols()` wide.
    unsafe fn panel(&self, p: usize, x: &Self::Input, y: *mut f32);
}

/// Quantized activation rows.
pub trait QuantizedRows {
    /// Rows.
    fn rows(&self) -> usize;

    /// Values per row.
    fn cols(&self) -> usize;
}

/// `x W^T` for each matrix `W` of `ws` (all of `x`'s width), in one parallel region: the
/// panels of all matrices are shared out over the threads together (a decoding step's
/// q, k and v projections are small alone). Returns one `(x.rows(), W.rows())` row-major
/// result per matrix. Panics when the CPU is not [`supported`] or a width differs.
pub fn matmul_many<M: PanelMatrix>(ws: &[&M], x: &M::Input) -> Vec<Vec<f32>> {
    assert!(supported(), "quantized panel products need AVX-512 VNNI");
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; x.rows() * w.rows()]).collect();
    let mut tasks = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w.cols(), x.cols(), "matrix of {} columns", w.cols());
        tasks.extend((0..w.rows().div_ceil(PANEL)).map(|p| (i, p)));
    }
    let ptrs: Vec<SendPtr<f32>> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    // Small products do not pay for waking another thread: a chunk is at least about
    // 256k multiply-adds (16 rows x 1024 x 16 inputs).
    let min_chunk = ((1024 * PANEL) / (x.cols() * x.rows()).max(1)).max(1);
    crate::runtime::parallel_chunks(tasks.len(), min_chunk, |range| {
        for &(i, p) in &tasks[range] {
            // SAFETY: `supported()` was checked and the widths; each task writes its own
            // panel's columns of its own output, which outlives the loop.
            unsafe { ws[i].panel(p, x, ptrs[i].0) };
        }
    });
    outs
}

/// A raw pointer parallel loops may share: their tasks write disjoint elements.
pub(crate) struct SendPtr<T>(pub *mut T);
// SAFETY: only used for disjoint writes while the owning buffer is alive.
unsafe impl<T> Sync for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}

/// What the kernels' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// `n` deterministic values in about [-5, 5], with a few large ones.
    pub fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.618 + seed).sin() * 1.7).powi(3))
            .collect()
    }

    /// A `rows x cols` matrix quantized by candle to `dtype`: its raw blocks and the
    /// values they stand for.
    pub fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let w = Tensor::from_vec(values(rows * cols, 0.3), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let data = q.data().unwrap().to_vec();
        let deq = q.dequantize(&Device::Cpu).unwrap();
        (data, deq.flatten_all().unwrap().to_vec1().unwrap())
    }

    /// Asserts that `got`, `(m, rows)` row-major, is `x W^T` for the values `w`
    /// (`rows x cols`) and `x` (`m x cols`) summed in f64, within 1e-5 of the sum of the
    /// terms' magnitudes.
    pub fn assert_product(got: &[f32], w: &[f32], x: &[f32], m: usize, rows: usize, what: &str) {
        let cols = w.len() / rows;
        for r in 0..m {
            for n in 0..rows {
                let (mut want, mut norm) = (0f64, 0f64);
                for k in 0..cols {
                    let p = f64::from(w[n * cols + k]) * f64::from(x[r * cols + k]);
                    want += p;
                    norm += p.abs();
                }
                let g = f64::from(got[r * rows + n]);
                assert!(
                    (g - want).abs() <= 1e-5 * norm + 1e-5,
                    "{what} {m}x{rows}x{cols} [{r},{n}]: {g} vs {want}"
                );
            }
        }
    }
}
