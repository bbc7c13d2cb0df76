//! What the quantized matrix kernels of [`super::q4k`], [`super::q6k`] and
//! [`super::block32`] share: the panel layout and the one driver that runs them.
//!
//! All keep a GGUF matrix's quantized values as the file has them, rearranged at load in
//! panels of 16 rows so that one AVX-512 VNNI `vpdpbusd` multiplies four consecutive
//! inputs (broadcast) by 16 rows (one per 32-bit lane), and both take activations
//! quantized per row the way llama.cpp does for that weight type, so each block's sum is
//! the integer llama.cpp computes. The panels of one or several matrices are shared out
//! over candle's thread pool ([`tarjama_kernels::runtime::parallel_chunks`]). Each kernel is
//! written once over [`Lanes`] and runs on every CPU with the widest tier it has
//! ([`tarjama_kernels::cpu::Tier`]): 512-bit registers with AVX-512 VNNI, two 256-bit ones with
//! AVX2 (and AVX-VNNI), plain arrays elsewhere.

/// Rows per panel: the 16 i32 lanes of an AVX-512 register.
pub const PANEL: usize = 16;
/// Input rows multiplied per pass over a panel at most: each weight vector loaded serves
/// them all. Each tier takes as many as its registers allow ([`Lanes::ROWS`]).
pub const ROWS: usize = 8;

use tarjama_kernels::cpu::Tier;
use tarjama_kernels::simd::{self, Lanes, WithLanes};

/// How a quantized type lies in a GGUF file and in panels.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The type's name, as llama.cpp spells it.
    pub name: &'static str,
    /// Weights per block.
    pub block: usize,
    /// Bytes of one block in the file.
    pub file_block: usize,
    /// Bytes of one panel block (one block of each of the panel's 16 rows).
    pub panel_block: usize,
    /// Writes one file block of the row in `lane` (0..16) into its panel block (which
    /// holds zeros where that row goes).
    pub pack: fn(block: &[u8], panel_block: &mut [u8], lane: usize),
}

/// A matrix's quantized blocks, rearranged in panels of [`PANEL`] rows: panel after
/// panel, each its row-blocks in order, each of those a [`Layout::panel_block`]. Rows
/// past the last are zeros.
#[derive(Debug, Clone)]
pub struct Panels {
    layout: Layout,
    rows: usize,
    cols: usize,
    packed: Vec<u8>,
}

impl Panels {
    /// Zeros to fill with [`Panels::pack_rows`]. None when `cols` is not a whole number of
    /// blocks.
    pub fn zeros(layout: Layout, rows: usize, cols: usize) -> Option<Self> {
        if cols == 0 || !cols.is_multiple_of(layout.block) {
            return None;
        }
        let len = rows.div_ceil(PANEL) * (cols / layout.block) * layout.panel_block;
        Some(Panels {
            layout,
            rows,
            cols,
            packed: vec![0u8; len],
        })
    }

    /// The data of a `rows x cols` matrix as stored in a GGUF file, rearranged. None when
    /// the sizes do not fit.
    pub fn from_blocks(layout: Layout, data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let mut m = Self::zeros(layout, rows, cols)?;
        if data.len() != rows * m.row_bytes() {
            return None;
        }
        m.pack_rows(0, data);
        Some(m)
    }

    /// How the blocks lie.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Output size (rows of the matrix).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size (columns of the matrix).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.cols / self.layout.block
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.packed.len()
    }

    /// Bytes of one row in the file.
    pub fn row_bytes(&self) -> usize {
        self.blocks() * self.layout.file_block
    }

    /// Stores rows `first..` from their file data (whole rows, into rows still zero), the
    /// panels shared out over candle's pool.
    pub fn pack_rows(&mut self, first: usize, data: &[u8]) {
        let row_bytes = self.row_bytes();
        let end = first + data.len() / row_bytes;
        assert!(end <= self.rows, "rows {first}..{end} of {}", self.rows);
        let (layout, panel_len) = (self.layout, self.blocks() * self.layout.panel_block);
        let packed = SendPtr(self.packed.as_mut_ptr());
        let panels = first / PANEL..end.div_ceil(PANEL);
        tarjama_kernels::runtime::parallel_chunks(panels.len(), 1, |range| {
            for panel in range.start + panels.start..range.end + panels.start {
                // SAFETY: each panel's bytes are visited by one thread only, and the
                // panel lies in `packed`, which outlives the parallel loop (`end` is at
                // most `rows`).
                let out = unsafe {
                    std::slice::from_raw_parts_mut(packed.get().add(panel * panel_len), panel_len)
                };
                for r in (panel * PANEL).max(first)..(panel * PANEL + PANEL).min(end) {
                    let row = &data[(r - first) * row_bytes..][..row_bytes];
                    let blocks = row.chunks_exact(layout.file_block);
                    for (block, out) in blocks.zip(out.chunks_exact_mut(layout.panel_block)) {
                        (layout.pack)(block, out, r % PANEL);
                    }
                }
            }
        });
    }

    /// Block `b` of panel `p`.
    pub fn block(&self, p: usize, b: usize) -> &[u8] {
        let pb = self.layout.panel_block;
        &self.packed[(p * self.blocks() + b) * pb..][..pb]
    }

    /// The blocks of panel `p`, in order.
    pub fn panel(&self, p: usize) -> &[u8] {
        let len = self.blocks() * self.layout.panel_block;
        &self.packed[p * len..][..len]
    }

    /// The columns of panel `p` that exist (16 but in the last panel).
    pub fn valid(&self, p: usize) -> usize {
        (self.rows - p * PANEL).min(PANEL)
    }
}

/// A matrix stored in panels of [`PANEL`] rows, with its kernel.
pub trait PanelMatrix: Sync {
    /// Its activations, quantized.
    type Input: QuantizedRows + Sync;

    /// Its blocks.
    fn panels(&self) -> &Panels;

    /// Output size (rows of the matrix).
    fn rows(&self) -> usize {
        self.panels().rows()
    }

    /// Input size (columns of the matrix).
    fn cols(&self) -> usize {
        self.panels().cols()
    }

    /// The kernel: input rows `m0..m0 + R` times panel `p`, written to the panel's
    /// `valid` columns of `R` output rows at `out`, `stride` values apart. Compiled once
    /// per tier (`L`) and pass height (`R`); must be `#[inline(always)]`.
    ///
    /// # Safety
    /// Rows `m0..m0 + R` exist in `x`, which is as wide as the matrix; `valid` is
    /// [`Panels::valid`] of `p`; `out` has room for `R` rows of `stride >= 16 p + valid`
    /// values (from column `16 p` on).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel<L: Lanes, const R: usize>(
        &self,
        lanes: L,
        p: usize,
        x: &Self::Input,
        m0: usize,
        out: *mut f32,
        stride: usize,
        valid: usize,
    );

    /// `x W^T` for `m` row-major rows of `x`; returns `(m, rows)` row-major. Panics when
    /// `x` is not `m * cols` long.
    fn matmul(&self, x: &[f32], m: usize) -> Vec<f32>
    where
        Self: Sized,
    {
        let q = Self::Input::quantize(x, m, self.cols());
        matmul_many(&[self], &q).pop().unwrap_or_default()
    }
}

/// Quantized activation rows.
pub trait QuantizedRows {
    /// Quantizes `m` row-major rows of `cols` values.
    fn quantize(x: &[f32], m: usize, cols: usize) -> Self;

    /// Rows.
    fn rows(&self) -> usize;

    /// Values per row.
    fn cols(&self) -> usize;
}

/// `x W^T` for each matrix `W` of `ws` (all of `x`'s width) with the active tier's
/// kernels ([`Tier::active`]), in one parallel region: the panels of all matrices are
/// shared out over the threads together (a decoding step's q, k and v projections are
/// small alone). Returns one `(x.rows(), W.rows())` row-major result per matrix. Panics
/// when a width differs.
pub fn matmul_many<M: PanelMatrix>(ws: &[&M], x: &M::Input) -> Vec<Vec<f32>> {
    matmul_many_on(Tier::active(), ws, x)
}

/// [`matmul_many`] with `tier`'s kernels. Every tier gives the same bits. Panics when the
/// CPU lacks the tier ([`simd::dispatch`]) or a width differs.
pub fn matmul_many_on<M: PanelMatrix>(tier: Tier, ws: &[&M], x: &M::Input) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; x.rows() * w.rows()]).collect();
    let mut tasks = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w.cols(), x.cols(), "matrix of {} columns", w.cols());
        tasks.extend((0..w.rows().div_ceil(PANEL)).map(|p| (i, p)));
    }
    let outs_at: Vec<SendPtr<f32>> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    // Small products do not pay for waking another thread: a chunk is at least about
    // 256k multiply-adds (16 rows x 1024 x 16 inputs).
    let min_chunk = ((1024 * PANEL) / (x.cols() * x.rows()).max(1)).max(1);
    tarjama_kernels::runtime::parallel_chunks(tasks.len(), min_chunk, |range| {
        let work = Tasks {
            ws,
            x,
            tasks: &tasks[range],
            outs: &outs_at,
        };
        simd::dispatch(tier, work);
    });
    outs
}

/// Activations quantized row by row as llama.cpp does for a weight type (scheme `S`):
/// i8 values in blocks of [`Int8Scheme::BLOCK`] with one f32 scale each, and the sums of
/// each [`Int8Scheme::PER_SUM`] values.
#[derive(Debug)]
pub struct Int8Rows<S> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// i8 values, row-major.
    pub(crate) qs: Vec<i8>,
    /// One scale per block.
    pub(crate) d: Vec<f32>,
    /// The sum of each `PER_SUM` values.
    pub(crate) sums: Vec<i32>,
    scheme: std::marker::PhantomData<S>,
}

/// How activations are quantized for a weight type (llama.cpp's Q8_K or Q8_0).
pub trait Int8Scheme: Sized {
    /// The scheme's name, as llama.cpp spells it.
    const NAME: &'static str;
    /// Values per block (one scale each).
    const BLOCK: usize;
    /// Values per sum.
    const PER_SUM: usize;

    /// Fills `q` (zeros, `x`'s size) with the quantized rows of `x`.
    fn fill(x: &[f32], q: &mut Int8Rows<Self>);
}

impl<S: Int8Scheme> Int8Rows<S> {
    /// Quantizes `m` rows of `cols` values (`cols` a multiple of the block) with `S`.
    pub fn quantize(x: &[f32], m: usize, cols: usize) -> Self {
        assert!(
            cols.is_multiple_of(S::BLOCK) && x.len() == m * cols,
            "{} input of {m} x {cols}",
            S::NAME
        );
        let mut q = Int8Rows {
            rows: m,
            cols,
            qs: vec![0; m * cols],
            d: vec![0.0; m * cols / S::BLOCK],
            sums: vec![0; m * cols / S::PER_SUM],
            scheme: std::marker::PhantomData,
        };
        S::fill(x, &mut q);
        q
    }

    /// Back to f32 (for tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.d[i / S::BLOCK])
            .collect()
    }

    /// Where the values, scales and sums are, for threads that each write their own
    /// blocks.
    pub(crate) fn buffers(&mut self) -> (SendPtr<i8>, SendPtr<f32>, SendPtr<i32>) {
        (
            SendPtr(self.qs.as_mut_ptr()),
            SendPtr(self.d.as_mut_ptr()),
            SendPtr(self.sums.as_mut_ptr()),
        )
    }

    /// Where rows `m0..m0 + R` start, for a kernel to read.
    ///
    /// # Safety
    /// Rows `m0..m0 + R` must exist (`m0 + R <= rows`).
    #[inline(always)]
    unsafe fn row_starts<const R: usize>(&self, m0: usize) -> RowStarts<R> {
        let (q, s, b) = (self.cols, self.cols / S::BLOCK, self.cols / S::PER_SUM);
        // SAFETY: the caller's: the rows exist, so each offset is inside its buffer.
        unsafe {
            RowStarts {
                xs: std::array::from_fn(|r| self.qs.as_ptr().add((m0 + r) * q)),
                ds: std::array::from_fn(|r| self.d.as_ptr().add((m0 + r) * s)),
                sums: std::array::from_fn(|r| self.sums.as_ptr().add((m0 + r) * b)),
            }
        }
    }
}

impl<S: Int8Scheme> QuantizedRows for Int8Rows<S> {
    fn quantize(x: &[f32], m: usize, cols: usize) -> Self {
        Int8Rows::quantize(x, m, cols)
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }
}

/// Where input rows `m0..m0 + R` of [`Int8Rows`] start, as a kernel reads them.
pub(crate) struct RowStarts<const R: usize> {
    /// Each row's values.
    pub(crate) xs: [*const i8; R],
    /// Each row's scales, one a block.
    pub(crate) ds: [*const f32; R],
    /// Each row's sums.
    pub(crate) sums: [*const i32; R],
}

/// The loop of every kernel ([`PanelMatrix::kernel`]): for each block of panel `p` (blocks
/// `panel_block` bytes long), in order, `block` adds the block's products with input rows
/// `m0..m0 + R` of `x` to the rows' sums (given the block's start, its index and where the
/// rows start); the sums then go to the panel's `valid` columns of `R` output rows at
/// `out`, `stride` values apart.
///
/// # Safety
/// As [`PanelMatrix::kernel`], `panel_block` that of `panels`; `block` must read only
/// inside the block it is given and block `b`'s values, scale and sums of each row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn for_each_block<L: Lanes, S: Int8Scheme, const R: usize>(
    l: L,
    panels: &Panels,
    panel_block: usize,
    p: usize,
    x: &Int8Rows<S>,
    m0: usize,
    (out, stride, valid): (*mut f32, usize, usize),
    mut block: impl FnMut(*const u8, usize, &RowStarts<R>, &mut [L::Float; R]),
) {
    let nb = panels.blocks();
    let w = panels.panel(p).as_ptr();
    // SAFETY: the caller's: rows `m0..m0 + R` exist, panel `p` holds `nb` blocks of
    // `panel_block` bytes, and `out` has room for `R` rows of `valid` values, `stride`
    // apart.
    unsafe {
        let rows = x.row_starts::<R>(m0);
        let mut acc = [l.fsplat(0.0); R];
        for b in 0..nb {
            block(w.add(b * panel_block), b, &rows, &mut acc);
        }
        for (r, &a) in acc.iter().enumerate() {
            l.store(out.add(r * stride), a, valid);
        }
    }
}

/// Some panels of [`matmul_many_on`], for one thread.
struct Tasks<'a, M: PanelMatrix> {
    ws: &'a [&'a M],
    x: &'a M::Input,
    /// (matrix, panel) pairs.
    tasks: &'a [(usize, usize)],
    /// Where each matrix's output starts: `x.rows()` rows of its `rows()`.
    outs: &'a [SendPtr<f32>],
}

impl<M: PanelMatrix> WithLanes for Tasks<'_, M> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, lanes: L) {
        let rows = self.x.rows();
        for &(i, p) in self.tasks {
            let w = self.ws[i];
            let (stride, valid) = (w.rows(), w.panels().valid(p));
            // Input rows in passes of a few: each weight vector loaded serves them all.
            let mut m0 = 0;
            while m0 < rows {
                let n = (rows - m0).min(L::ROWS.min(ROWS));
                // SAFETY: rows `m0..m0 + n` exist in `x`, whose width `matmul_many_on`
                // checked; `valid` is panel `p`'s; output `i` holds `rows` rows of
                // `stride` values, so row `m0`, column `16 p` and the `n` rows after
                // it fit. Each task writes only its own panel's columns.
                unsafe {
                    let out = self.outs[i].0.add(m0 * stride + p * PANEL);
                    match n {
                        8 => w.kernel::<L, 8>(lanes, p, self.x, m0, out, stride, valid),
                        7 => w.kernel::<L, 7>(lanes, p, self.x, m0, out, stride, valid),
                        6 => w.kernel::<L, 6>(lanes, p, self.x, m0, out, stride, valid),
                        5 => w.kernel::<L, 5>(lanes, p, self.x, m0, out, stride, valid),
                        4 => w.kernel::<L, 4>(lanes, p, self.x, m0, out, stride, valid),
                        3 => w.kernel::<L, 3>(lanes, p, self.x, m0, out, stride, valid),
                        2 => w.kernel::<L, 2>(lanes, p, self.x, m0, out, stride, valid),
                        _ => w.kernel::<L, 1>(lanes, p, self.x, m0, out, stride, valid),
                    }
                }
                m0 += n;
            }
        }
    }
}

pub(crate) use tarjama_kernels::numerics::SendPtr;

/// What the kernels' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    pub use tarjama_kernels::cpu::testing::tiers;

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

    /// `x W^T` on every tier of [`tiers`], checked to be the same bits on all.
    pub fn product_on_every_tier<M: super::PanelMatrix>(w: &M, x: &M::Input) -> Vec<f32> {
        let mut all = tiers()
            .into_iter()
            .map(|tier| (tier, super::matmul_many_on(tier, &[w], x).remove(0)));
        let (first, want) = all.next().expect("the scalar tier runs everywhere");
        for (tier, got) in all {
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{tier} and {first} differ");
        }
        want
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
