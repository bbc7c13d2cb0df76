//! Int8 matrix products on AVX-512 VNNI, for the encoder-decoder's linear layers.
//!
//! The layout is CTranslate2's and oneDNN's: weights quantized per output row (one f32
//! scale per row, `max |w| / 127`), activations quantized per input row at each call, and
//! the product accumulated in i32 with `vpdpbusd` (u8 x i8, four products per 32-bit
//! lane). `vpdpbusd` wants its first operand unsigned, so activations are stored shifted
//! by +128 and each output subtracts `128 * sum(w)`, precomputed per row.
//!
//! candle's own `Q8_0` path (blocks of 32 with f16 scales, activations requantized into
//! 256-wide `Q8K` blocks at every call) ran a beam-search step's vocabulary projection
//! (128 x 512 x 62k) in 16.1 ms; this kernel in 5.9 ms (f32 through gemm: 22.4 ms), and
//! the 2048 x 512 feed-forward products in 0.38 ms against 0.59 (2 threads; `cargo run
//! --release -p tarjama-models --example kernel_bench`).
//! Weights are packed once, at load, in panels of 16 output rows
//! interleaved four inputs at a time, which is the order `vpdpbusd` reads them in.

use rayon::prelude::*;

/// Output rows per panel: the 16 i32 lanes of one AVX-512 register.
const PANEL: usize = 16;
/// Panels computed together (64 output columns): four accumulators per activation row.
const PANELS: usize = 4;
/// Activation rows computed together.
const ROWS: usize = 4;

/// Whether this CPU runs [`Int8Matrix::matmul`] (AVX-512 F, BW and VNNI, as the GGUF
/// panel kernels).
pub fn supported() -> bool {
    crate::cpu::Tier::active() == crate::cpu::Tier::Avx512
}

/// A `(out, inp)` weight matrix quantized to i8 per output row and packed for VNNI.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    out: usize,
    inp: usize,
    /// `inp` rounded up to a multiple of 4.
    k4: usize,
    /// Panels of `PANEL` rows (zero rows past `out`, up to a multiple of
    /// `PANEL * PANELS`): for each group of 4 inputs, 16 rows x 4 bytes.
    packed: Vec<i8>,
    /// Per output row: the scale of its i8 values.
    scale: Vec<f32>,
    /// Per output row: `128 * sum of its i8 values`, the correction for shifted inputs.
    shift: Vec<i32>,
}

impl Int8Matrix {
    /// Quantizes and packs a row-major `(out, inp)` matrix.
    pub fn new(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(w.len(), out * inp, "weight size");
        let k4 = inp.div_ceil(4) * 4;
        let group = PANEL * PANELS;
        let padded = out.div_ceil(group) * group;
        let mut packed = vec![0i8; padded * k4];
        let mut scale = vec![0f32; out];
        let mut shift = vec![0i32; out];
        for n in 0..out {
            let row = &w[n * inp..(n + 1) * inp];
            let max = row.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            scale[n] = s;
            let (panel, lane) = (n / PANEL, n % PANEL);
            let mut sum = 0i32;
            for (k, &x) in row.iter().enumerate() {
                let q = (x / s).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(q);
                packed[panel * PANEL * k4 + (k / 4) * PANEL * 4 + lane * 4 + k % 4] = q;
            }
            shift[n] = 128 * sum;
        }
        Int8Matrix {
            out,
            inp,
            k4,
            packed,
            scale,
            shift,
        }
    }

    /// Output size.
    pub fn out_dim(&self) -> usize {
        self.out
    }

    /// Input size.
    pub fn in_dim(&self) -> usize {
        self.inp
    }

    /// `x W^T (+ bias)` for `rows` row-major rows of `x`; returns `(rows, out)` row-major.
    /// Panics when the CPU is not [`supported`].
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        assert!(supported(), "Int8Matrix::matmul needs AVX-512 VNNI");
        assert_eq!(x.len(), rows * self.inp, "input size");
        let (acts, act_scale) = self.quantize_rows(x, rows);
        let mut y = vec![0f32; rows * self.out];
        let groups = self.packed.len() / (PANEL * PANELS * self.k4);
        let out_ptr = SendPtr(y.as_mut_ptr());
        (0..groups).into_par_iter().with_min_len(4).for_each(|g| {
            // Each group writes its own 64 columns of every row.
            let out = &out_ptr;
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `supported()` was checked; groups write disjoint columns of `y`,
            // which outlives the loop, and every index stays inside it (see the kernel).
            unsafe {
                self.group_kernel(g, &acts, &act_scale, rows, bias, out.0)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (g, out);
        });
        y
    }

    /// Activations as u8 (`round(x / s) + 128`), rows padded to a multiple of `ROWS`
    /// and inputs to `k4` with zeros (128); and each row's scale `s`.
    fn quantize_rows(&self, x: &[f32], rows: usize) -> (Vec<u8>, Vec<f32>) {
        let padded = rows.div_ceil(ROWS) * ROWS;
        let mut acts = vec![128u8; padded * self.k4];
        let mut scales = vec![0f32; padded];
        for (m, row) in x.chunks_exact(self.inp).enumerate() {
            let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales[m] = s;
            let inv = 1.0 / s;
            for (a, &v) in acts[m * self.k4..][..self.inp].iter_mut().zip(row) {
                // In [-127, 127] after the clamp (NaN becomes 0), so the conversion is exact.
                let q = crate::numerics::round_even(v * inv).clamp(-127.0, 127.0);
                *a = (q as i32 + 128) as u8;
            }
        }
        (acts, scales)
    }

    /// Columns `64 g .. 64 g + 64` of every output row.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; `y` must point to `rows * out` f32s.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn group_kernel(
        &self,
        g: usize,
        acts: &[u8],
        act_scale: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: *mut f32,
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the CPU features and the size of `y` are the caller's guarantees. Reads:
        // group `g` of `packed` is PANELS panels of `16 k4` bytes and is read at
        // `p * 16 k4 + 64 s` for s < k4 / 4; `acts` holds `rows` padded up to a multiple
        // of 4 rows of `k4` bytes (`quantize_rows`), read 4 bytes at `r k4 + 4 s`; the
        // per-column `shift`, `scale` and `bias` (`out` long) are read masked to the
        // `valid` columns `n..n + valid`, which end by `out`. Writes: row `m < rows` of
        // `y`, columns `n0 + c0..` masked to the same `valid` columns, inside the
        // `rows * out` values. Unaligned reads use `read_unaligned` and `loadu`.
        unsafe {
            let k4 = self.k4;
            let steps = k4 / 4;
            let panel_bytes = PANEL * k4;
            let w = self.packed.as_ptr().add(g * PANELS * panel_bytes);
            let n0 = g * PANEL * PANELS;
            let cols = (self.out - n0.min(self.out)).min(PANEL * PANELS);
            for m0 in (0..rows).step_by(ROWS) {
                let mut acc = [[_mm512_setzero_si512(); PANELS]; ROWS];
                let a = acts.as_ptr().add(m0 * k4);
                for s in 0..steps {
                    let mut wv = [_mm512_setzero_si512(); PANELS];
                    for (p, v) in wv.iter_mut().enumerate() {
                        *v = _mm512_loadu_si512(w.add(p * panel_bytes + s * PANEL * 4).cast());
                    }
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let x =
                            _mm512_set1_epi32(a.add(r * k4 + s * 4).cast::<i32>().read_unaligned());
                        for (acc_rp, &wp) in acc_r.iter_mut().zip(&wv) {
                            *acc_rp = _mm512_dpbusd_epi32(*acc_rp, x, wp);
                        }
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    let m = m0 + r;
                    if m >= rows {
                        break;
                    }
                    let sx = _mm512_set1_ps(act_scale[m]);
                    let out = y.add(m * self.out + n0);
                    for (p, &sum) in acc_r.iter().enumerate() {
                        let c0 = p * PANEL;
                        if c0 >= cols {
                            break;
                        }
                        let n = n0 + c0;
                        let valid = (cols - c0).min(PANEL);
                        let mask: __mmask16 = (((1u32 << valid) - 1) & 0xffff) as u16;
                        let shift = _mm512_maskz_loadu_epi32(mask, self.shift.as_ptr().add(n));
                        let scale = _mm512_maskz_loadu_ps(mask, self.scale.as_ptr().add(n));
                        let sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, shift));
                        let mut v = _mm512_mul_ps(sum, _mm512_mul_ps(sx, scale));
                        if let Some(b) = bias {
                            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, b.as_ptr().add(n)));
                        }
                        _mm512_mask_storeu_ps(out.add(c0), mask, v);
                    }
                }
            }
        }
    }
}

/// A raw pointer the parallel loop may share: its tasks write disjoint elements.
struct SendPtr(*mut f32);
// SAFETY: made only in `matmul`, for `y`, which outlives the parallel loop; each group
// writes its own columns of `y` and reads none, so no two threads touch one element.
unsafe impl Sync for SendPtr {}
// SAFETY: as for `Sync`: the pointer moves to a thread that writes only its group's columns
// of a buffer that outlives the loop.
unsafe impl Send for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: f32) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i as f32 * 0.618 + seed).sin() * 1.7).powi(3))
            .collect()
    }

    /// The product the kernel must give exactly (up to the final f32 rounding): the same
    /// quantized integers multiplied in i64.
    fn reference(m: &Int8Matrix, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (acts, scales) = m.quantize_rows(x, rows);
        let mut y = vec![0f32; rows * m.out];
        for r in 0..rows {
            for n in 0..m.out {
                let (panel, lane) = (n / PANEL, n % PANEL);
                let mut acc = 0i64;
                for k in 0..m.k4 {
                    let w = m.packed[panel * PANEL * m.k4 + (k / 4) * PANEL * 4 + lane * 4 + k % 4];
                    acc += i64::from(acts[r * m.k4 + k]) * i64::from(w);
                }
                let v = (acc - i64::from(m.shift[n])) as f32 * (scales[r] * m.scale[n]);
                y[r * m.out + n] = v + bias.map_or(0.0, |b| b[n]);
            }
        }
        y
    }

    #[test]
    fn packing_and_quantization_stay_close_to_f32() {
        // Ragged sizes: rows, outputs and inputs not multiples of the tiles.
        let (rows, out, inp) = (7, 83, 70);
        let w = matrix(out, inp, 0.3);
        let x = matrix(rows, inp, 1.1);
        let m = Int8Matrix::new(&w, out, inp);
        let got = reference(&m, &x, rows, None);
        for r in 0..rows {
            for n in 0..out {
                let exact: f32 = (0..inp).map(|k| x[r * inp + k] * w[n * inp + k]).sum();
                let norm: f32 = (0..inp)
                    .map(|k| (x[r * inp + k] * w[n * inp + k]).abs())
                    .sum();
                assert!((got[r * out + n] - exact).abs() <= 0.02 * norm + 1e-4);
            }
        }
    }

    #[test]
    fn vnni_kernel_equals_integer_reference() {
        if !crate::gguf::panel::testing::tiers().contains(&crate::cpu::Tier::Avx512) {
            return;
        }
        for (rows, out, inp) in [(1, 16, 4), (7, 83, 70), (128, 200, 512), (5, 64, 2048)] {
            let w = matrix(out, inp, 0.3);
            let x = matrix(rows, inp, 2.0);
            let bias: Vec<f32> = (0..out).map(|n| n as f32 * 0.01).collect();
            let m = Int8Matrix::new(&w, out, inp);
            for b in [None, Some(bias.as_slice())] {
                let got = m.matmul(&x, rows, b);
                let want = reference(&m, &x, rows, b);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
                }
            }
        }
    }
}
