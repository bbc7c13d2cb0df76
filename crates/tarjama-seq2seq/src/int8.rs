//! Int8 matrix products for the encoder-decoder's linear layers, on every kernel tier.
//!
//! The layout is CTranslate2's and oneDNN's: weights quantized per output row (one f32
//! scale per row, `max |w| / 127`), activations quantized per input row at each call, and
//! the product accumulated in i32 four products at a time (`vpdpbusd` with AVX-512 VNNI or
//! AVX-VNNI, `vpmaddubsw` + `vpmaddwd` with AVX2; see [`tarjama_kernels::simd`]). One operand of
//! those instructions is unsigned, so weights are stored shifted by +128 and each output
//! subtracts `128 * sum(x)`, computed per activation row when it is quantized.
//!
//! candle's own `Q8_0` path (blocks of 32 with f16 scales, activations requantized into
//! 256-wide `Q8K` blocks at every call) ran a beam-search step's vocabulary projection
//! (128 x 512 x 62k) in 16.1 ms; this kernel in 5.9 ms (f32 through gemm: 22.4 ms), and
//! the 2048 x 512 feed-forward products in 0.38 ms against 0.59 (2 threads, AVX-512; `cargo
//! run --release -p tarjama-gguf --example kernel_bench`).
//! Weights are packed once, at load, in panels of 16 output rows
//! interleaved four inputs at a time, which is the order the dot products read them in.

use rayon::prelude::*;

use tarjama_kernels::cpu::Tier;
use tarjama_kernels::numerics::SendPtr;
use tarjama_kernels::simd::{self, Lanes, WithLanes};

/// Output rows per panel: the 16 lanes of [`Lanes`].
const PANEL: usize = 16;
/// Panels in a group (64 output columns): a thread's unit of work.
const PANELS: usize = 4;
/// Activation rows are padded to a multiple of this (the most a pass computes together).
const ROWS: usize = 4;

/// Whether [`Int8Matrix::matmul`] is the fastest product here: with a VNNI dot product
/// (AVX-512 or AVX-VNNI tier). Every tier runs it, but without VNNI the full-range byte
/// products cost four instructions where VNNI takes one: on AVX2 alone a vocabulary
/// projection took 40 ms, twice candle's Q8_0 (`kernel_bench`, 2 threads).
pub fn pays() -> bool {
    matches!(Tier::active(), Tier::Avx512 | Tier::AvxVnni)
}

/// A `(out, inp)` weight matrix quantized to i8 per output row and packed for the kernels.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    out: usize,
    inp: usize,
    /// `inp` rounded up to a multiple of 4.
    k4: usize,
    /// Panels of `PANEL` rows (zero rows past `out`, up to a multiple of
    /// `PANEL * PANELS`): for each group of 4 inputs, 16 rows x 4 bytes, each `q + 128`.
    packed: Vec<u8>,
    /// Per output row: the scale of its i8 values (0 for the padding rows).
    scale: Vec<f32>,
}

impl Int8Matrix {
    /// Quantizes and packs a row-major `(out, inp)` matrix.
    pub fn new(w: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(w.len(), out * inp, "weight size");
        let k4 = inp.div_ceil(4) * 4;
        let group = PANEL * PANELS;
        let padded = out.div_ceil(group) * group;
        let mut packed = vec![128u8; padded * k4];
        let mut scale = vec![0f32; padded];
        for n in 0..out {
            let row = &w[n * inp..(n + 1) * inp];
            let max = row.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            scale[n] = s;
            let (panel, lane) = (n / PANEL, n % PANEL);
            for (k, &x) in row.iter().enumerate() {
                let q = (x / s).round().clamp(-127.0, 127.0) as i32;
                packed[panel * PANEL * k4 + (k / 4) * PANEL * 4 + lane * 4 + k % 4] =
                    (q + 128) as u8;
            }
        }
        Int8Matrix {
            out,
            inp,
            k4,
            packed,
            scale,
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
    pub fn matmul(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        self.matmul_on(Tier::active(), x, rows, bias)
    }

    /// [`Int8Matrix::matmul`] with `tier`'s kernels (every tier gives the same bits).
    /// Panics when the CPU lacks the tier.
    pub fn matmul_on(&self, tier: Tier, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inp, "input size");
        let acts = self.quantize_rows(x, rows);
        // The bias, padded like the scales so that whole panels can be read.
        let bias = bias.map(|b| {
            assert_eq!(b.len(), self.out, "bias size");
            let mut padded = vec![0f32; self.scale.len()];
            padded[..self.out].copy_from_slice(b);
            padded
        });
        let mut y = vec![0f32; rows * self.out];
        let groups = self.scale.len() / (PANEL * PANELS);
        let out = SendPtr(y.as_mut_ptr());
        (0..groups).into_par_iter().with_min_len(4).for_each(|g| {
            let work = Group {
                m: self,
                g,
                acts: &acts,
                rows,
                bias: bias.as_deref(),
                y: &out,
            };
            simd::dispatch(tier, work);
        });
        y
    }

    /// Activations quantized per row (`round(x / s)`), rows padded to a multiple of `ROWS`
    /// and inputs to `k4` with zeros.
    fn quantize_rows(&self, x: &[f32], rows: usize) -> Acts {
        let padded = rows.div_ceil(ROWS) * ROWS;
        let mut acts = Acts {
            qs: vec![0i8; padded * self.k4],
            scale: vec![0f32; padded],
            shift: vec![0i32; padded],
        };
        for (m, row) in x.chunks_exact(self.inp).enumerate() {
            let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            acts.scale[m] = s;
            let inv = 1.0 / s;
            let mut sum = 0i32;
            for (a, &v) in acts.qs[m * self.k4..][..self.inp].iter_mut().zip(row) {
                // In [-127, 127] after the clamp (NaN becomes 0).
                let q = tarjama_kernels::numerics::nearest_int(v * inv).clamp(-127, 127);
                *a = q as i8;
                sum += q;
            }
            acts.shift[m] = 128 * sum;
        }
        acts
    }
}

/// Activation rows quantized for [`Int8Matrix`].
struct Acts {
    /// `k4` values a row.
    qs: Vec<i8>,
    /// Per row: the scale of its values.
    scale: Vec<f32>,
    /// Per row: `128 * sum of its values`, what the weights' shift added to each sum.
    shift: Vec<i32>,
}

/// Columns `64 g .. 64 g + 64` of every output row, for one thread.
struct Group<'a> {
    m: &'a Int8Matrix,
    g: usize,
    acts: &'a Acts,
    rows: usize,
    /// Padded to the matrix's padded rows.
    bias: Option<&'a [f32]>,
    y: &'a SendPtr<f32>,
}

impl WithLanes for Group<'_> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, l: L) {
        // As many sums as stay in registers: 4 rows x 4 panels in 32 AVX-512 registers,
        // 2 x 2 (of two registers each) in AVX2's 16.
        if L::ROWS >= 4 && L::REGISTERS >= 32 {
            self.passes::<L, 4, 4>(l)
        } else {
            self.passes::<L, 2, 2>(l)
        }
    }
}

impl Group<'_> {
    /// The group in passes of `R` activation rows by `P` panels.
    #[inline(always)]
    fn passes<L: Lanes, const R: usize, const P: usize>(&self, l: L) {
        let m = self.m;
        let k4 = m.k4;
        let panel_bytes = PANEL * k4;
        let n0 = self.g * PANEL * PANELS;
        for p0 in (0..PANELS).step_by(P) {
            let first = n0 + p0 * PANEL;
            if first >= m.out {
                break;
            }
            let w = m.packed[first * k4..].as_ptr();
            for m0 in (0..self.rows).step_by(R) {
                // SAFETY: panels `first / 16 .. + P` exist (the matrix is padded to whole
                // groups) and are read at `p * 16 k4 + 64 s` for s < k4 / 4, 64 bytes
                // each; activation rows `m0..m0 + R` exist (padded to a multiple of ROWS,
                // which R divides) and are read 4 bytes at `r k4 + 4 s`.
                let acc = unsafe {
                    let mut acc = [[l.zero(); P]; R];
                    let a = self.acts.qs.as_ptr().add(m0 * k4);
                    for s in 0..k4 / 4 {
                        let wv: [L::Bytes; P] =
                            std::array::from_fn(|p| l.load(w.add(p * panel_bytes + s * 64)));
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            let x = a.add(r * k4 + s * 4).cast::<i32>().read_unaligned();
                            for (acc_rp, &wp) in acc_r.iter_mut().zip(&wv) {
                                *acc_rp = l.dot_u8(*acc_rp, wp, x);
                            }
                        }
                    }
                    acc
                };
                for (r, acc_r) in acc.iter().enumerate() {
                    let row = m0 + r;
                    if row >= self.rows {
                        break;
                    }
                    let shift = l.splat(self.acts.shift[row]);
                    let sx = l.fsplat(self.acts.scale[row]);
                    for (p, &sum) in acc_r.iter().enumerate() {
                        let n = first + p * PANEL;
                        if n >= m.out {
                            break;
                        }
                        let valid = (m.out - n).min(PANEL);
                        // SAFETY: `scale` and the padded bias hold every column of the
                        // group; the store writes the `valid` columns `n..` of row `row`
                        // of `y`, inside its `rows * out` values, which no other group
                        // writes.
                        unsafe {
                            let scale = l.loadf(m.scale.as_ptr().add(n));
                            let sum = l.to_float(l.sub(sum, shift));
                            let mut v = l.fmul(sum, l.fmul(sx, scale));
                            if let Some(b) = self.bias {
                                v = l.fadd(v, l.loadf(b.as_ptr().add(n)));
                            }
                            l.store(self.y.0.add(row * m.out + n), v, valid);
                        }
                    }
                }
            }
        }
    }
}

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
        let acts = m.quantize_rows(x, rows);
        let mut y = vec![0f32; rows * m.out];
        for r in 0..rows {
            for n in 0..m.out {
                let (panel, lane) = (n / PANEL, n % PANEL);
                let mut acc = 0i64;
                for k in 0..m.k4 {
                    let w = m.packed[panel * PANEL * m.k4 + (k / 4) * PANEL * 4 + lane * 4 + k % 4];
                    acc += i64::from(acts.qs[r * m.k4 + k]) * (i64::from(w) - 128);
                }
                let v = acc as f32 * (acts.scale[r] * m.scale[n]);
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
    fn every_tier_equals_the_integer_reference() {
        let tiers = tarjama_kernels::cpu::testing::tiers();
        for (rows, out, inp) in [(1, 16, 4), (7, 83, 70), (128, 200, 512), (5, 64, 2048)] {
            let w = matrix(out, inp, 0.3);
            let x = matrix(rows, inp, 2.0);
            let bias: Vec<f32> = (0..out).map(|n| n as f32 * 0.01).collect();
            let m = Int8Matrix::new(&w, out, inp);
            for b in [None, Some(bias.as_slice())] {
                let want = reference(&m, &x, rows, b);
                for &tier in &tiers {
                    let got = m.matmul_on(tier, &x, rows, b);
                    // The same integers, scaled by the same float operations: equal.
                    assert!(
                        got.iter().zip(&want).all(|(g, w)| g == w),
                        "{tier} {rows}x{out}x{inp}"
                    );
                }
            }
        }
    }
}
