//! Q8_0 and Q5_0 matrix products over the file's own values.
//!
//! Both types store a row in blocks of 32 weights with one f16 scale `d`: Q8_0 as i8
//! values (34 bytes a block), Q5_0 as 5-bit values offset by 16 (22 bytes: 16 bytes of
//! low nibbles and 32 high bits). llama.cpp multiplies both with activations quantized
//! as Q8_0 (blocks of 32 i8 values with an f16 scale); so does this, and the sum of a
//! block is the same integer.
//!
//! Before, Q5_0 was rewritten as Q8_0 for candle (its Q5_0 kernel is scalar) and rows
//! padded to 256 for candle's repacked kernel: Qwen2.5 0.5B's layers then read 1.77x the
//! file's bytes at every decoding step, and the 0.5B's Q8_0 output projection went
//! through candle's one-row `vec_dot` at a fraction of the memory bandwidth. Here both
//! keep exactly the file's size, rearranged at load in panels of 16 rows
//! ([`super::panel`]): a `vpdpbusd` wants one operand unsigned, so weights are stored as
//! `q + 128` (Q8_0) or as their 5-bit `q` (Q5_0), and each block's sum is corrected by
//! `128` or `16` times the sum of its 32 activations.

use half::f16;

use super::panel::{Int8Rows, Int8Scheme, Layout, PanelMatrix, Panels, RowStarts, PANEL};
use tarjama_kernels::simd::Lanes;

/// Weights per block.
const QK: usize = 32;
/// How many panel blocks ahead of the one being read the kernel asks for.
const PREFETCH_BLOCKS: usize = 4;

/// The two layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// i8 values, stored `+ 128` as u8.
    Q8_0,
    /// 5-bit values `q` (weight `d * (q - 16)`): low nibbles and a bit mask of fifth bits.
    Q5_0,
}

impl Kind {
    /// Bytes of one block in a GGUF file.
    fn file_block(self) -> usize {
        match self {
            Kind::Q8_0 => 34,
            Kind::Q5_0 => 22,
        }
    }

    /// Bytes of one panel block (16 rows of one block), the same as the file's 16 blocks:
    /// values, then the 16 rows' f16 scales.
    fn panel_block(self) -> usize {
        PANEL * self.file_block()
    }

    /// How this type lies in panels.
    pub fn layout(self) -> Layout {
        Layout {
            name: match self {
                Kind::Q8_0 => "Q8_0",
                Kind::Q5_0 => "Q5_0",
            },
            block: QK,
            file_block: self.file_block(),
            panel_block: self.panel_block(),
            pack: match self {
                Kind::Q8_0 => pack_q8_0,
                Kind::Q5_0 => pack_q5_0,
            },
        }
    }

    /// Offset of the stored unsigned values: weight = `d * (stored - offset)`.
    fn offset(self) -> i32 {
        match self {
            Kind::Q8_0 => 128,
            Kind::Q5_0 => 16,
        }
    }

    /// Where the scales start in a panel block.
    fn scales(self) -> usize {
        self.panel_block() - PANEL * 2
    }
}

/// A Q8_0 or Q5_0 matrix of `rows x cols` (`cols` a multiple of 32), in panels.
#[derive(Debug, Clone)]
pub struct Block32Matrix {
    kind: Kind,
    panels: Panels,
}

/// Q5_0 panel block: 4 x 64 bytes of nibbles (load `i`: inputs `8i..8i+4` of each row in
/// the low nibbles, `8i+4..8i+8` in the high), then 8 x 64-bit masks of fifth bits (one
/// per group of 4 inputs, bit = lane byte), then the scales.
const Q5_MASKS: usize = 4 * 64;

/// [`Layout::pack`] for Q8_0: input v of the row goes to byte `lane * 4 + v % 4` of the
/// 64-byte group of inputs v / 4, as `q + 128`.
fn pack_q8_0(block: &[u8], out: &mut [u8], lane: usize) {
    out[Kind::Q8_0.scales() + 2 * lane..][..2].copy_from_slice(&block[..2]);
    for g in 0..QK / 4 {
        let dst = &mut out[g * 64 + lane * 4..][..4];
        for (d, &q) in dst.iter_mut().zip(&block[2 + 4 * g..][..4]) {
            *d = q ^ 0x80;
        }
    }
}

/// [`Layout::pack`] for Q5_0: the low nibble of input v to a nibble of byte
/// `lane * 4 + v % 4` of 64-byte group v / 8, its fifth bit to the mask of group v / 4.
fn pack_q5_0(block: &[u8], out: &mut [u8], lane: usize) {
    out[Kind::Q5_0.scales() + 2 * lane..][..2].copy_from_slice(&block[..2]);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..];
    let nibble = |v: usize| {
        if v < 16 {
            qs[v] & 0x0F
        } else {
            qs[v - 16] >> 4
        }
    };
    for i in 0..QK / 8 {
        let dst = &mut out[i * 64 + lane * 4..][..4];
        for (j, d) in dst.iter_mut().enumerate() {
            *d = nibble(8 * i + j) | (nibble(8 * i + 4 + j) << 4);
        }
    }
    // Fifth bits of inputs 4g..4g+4: bits lane*4.. of group g's mask.
    for g in 0..QK / 4 {
        let bits = ((qh >> (4 * g)) & 0xF) as u8;
        out[Q5_MASKS + g * 8 + lane / 2] |= bits << (4 * (lane % 2));
    }
}

impl Block32Matrix {
    /// Rearranges the data of a `rows x cols` matrix as stored in a GGUF file. None when
    /// the sizes do not fit.
    pub fn from_blocks(kind: Kind, data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let panels = Panels::from_blocks(kind.layout(), data, rows, cols)?;
        Some(Block32Matrix { kind, panels })
    }

    /// Panels filled in `kind`'s layout.
    pub fn from_panels(kind: Kind, panels: Panels) -> Self {
        assert_eq!(panels.layout().name, kind.layout().name, "{kind:?} panels");
        Block32Matrix { kind, panels }
    }

    /// Row `r` as f32 values (for embedding lookups).
    pub fn row(&self, r: usize) -> Vec<f32> {
        let (panel, lane) = (r / PANEL, r % PANEL);
        let mut out = Vec::with_capacity(self.panels.cols());
        for b in 0..self.panels.blocks() {
            let blk = self.panels.block(panel, b);
            let s = self.kind.scales() + 2 * lane;
            let d = f16::from_le_bytes([blk[s], blk[s + 1]]).to_f32();
            for v in 0..QK {
                let byte = lane * 4 + v % 4;
                let q = match self.kind {
                    Kind::Q8_0 => i32::from(blk[(v / 4) * 64 + byte]),
                    Kind::Q5_0 => {
                        let nibble = (blk[(v / 8) * 64 + byte] >> (4 * ((v % 8) / 4))) & 0x0F;
                        let high = (blk[Q5_MASKS + (v / 4) * 8 + byte / 8] >> (byte % 8)) & 1;
                        i32::from(nibble | (high << 4))
                    }
                };
                out.push(d * (q - self.kind.offset()) as f32);
            }
        }
        out
    }
}

/// Activations quantized as llama.cpp's Q8_0 on x86, row by row: blocks of 32 values
/// with one scale (an f16 value, as llama.cpp stores it), and the sum of each block.
pub type Q8_0Rows = Int8Rows<Q8_0Scheme>;

/// llama.cpp's Q8_0 for activations ([`Q8_0Rows`]).
#[derive(Debug)]
pub struct Q8_0Scheme;

impl Int8Scheme for Q8_0Scheme {
    const NAME: &'static str = "Q8_0";
    const BLOCK: usize = QK;
    const PER_SUM: usize = QK;

    /// Quantizes as llama.cpp's x86 `quantize_row_q8_0`: per block,
    /// `q = round(x * 127 / max|x|)` (ties to even) and `d = max|x| / 127` rounded to f16.
    fn fill(x: &[f32], q: &mut Q8_0Rows) {
        let n = q.d.len();
        let (qs, d, sums) = q.buffers();
        tarjama_kernels::runtime::parallel_chunks(n, 512, |blocks| {
            let (qs, d, sums) = (&qs, &d, &sums);
            for b in blocks {
                let x = &x[b * QK..][..QK];
                let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                // SAFETY: each block index is visited once; the buffers hold `n` blocks
                // and outlive the loop.
                let qs = unsafe { std::slice::from_raw_parts_mut(qs.0.add(b * QK), QK) };
                let mut sum = 0i32;
                for (q, &v) in qs.iter_mut().zip(x) {
                    *q = tarjama_kernels::numerics::nearest_int(v * id).clamp(-128, 127) as i8;
                    sum += i32::from(*q);
                }
                // SAFETY: as above: block `b < n` of `d` and `sums` is this task's alone.
                unsafe {
                    *d.0.add(b) = f16::from_f32(amax / 127.0).to_f32();
                    *sums.0.add(b) = sum;
                }
            }
        });
    }
}

impl PanelMatrix for Block32Matrix {
    type Input = Q8_0Rows;

    fn panels(&self) -> &Panels {
        &self.panels
    }

    #[inline(always)]
    unsafe fn kernel<L: Lanes, const R: usize>(
        &self,
        l: L,
        p: usize,
        x: &Q8_0Rows,
        m0: usize,
        out: *mut f32,
        stride: usize,
        valid: usize,
    ) {
        let kind = self.kind;
        let pb = kind.panel_block();
        let at = (out, stride, valid);
        let splats = (l.splat(kind.offset()), l.splat8(0x0F), l.splat8(0x10));
        // SAFETY: the caller's guarantees are the ones `for_each_block` needs, and `block`
        // reads only its block and block `b` of the rows.
        unsafe {
            match kind {
                Kind::Q8_0 => super::panel::for_each_block(
                    l,
                    &self.panels,
                    pb,
                    p,
                    x,
                    m0,
                    at,
                    #[inline(always)]
                    |blk, b, x, acc| block::<L, false, R>(l, kind, splats, blk, b, x, acc),
                ),
                Kind::Q5_0 => super::panel::for_each_block(
                    l,
                    &self.panels,
                    pb,
                    p,
                    x,
                    m0,
                    at,
                    #[inline(always)]
                    |blk, b, x, acc| block::<L, true, R>(l, kind, splats, blk, b, x, acc),
                ),
            }
        }
    }
}

/// What block `b` of a panel (at `blk`) adds to the sums `acc` of input rows `x`: `Q5` for
/// Q5_0, else Q8_0. `splats`: the kind's offset, the low-nibble mask and the fifth bit,
/// in every lane.
///
/// # Safety
/// `blk` is a whole panel block of `kind`, and block `b` exists in each row of `x`.
#[inline(always)]
unsafe fn block<L: Lanes, const Q5: bool, const R: usize>(
    l: L,
    kind: Kind,
    (offset, nibble, fifth): (L::Int, L::Bytes, L::Bytes),
    blk: *const u8,
    b: usize,
    x: &RowStarts<R>,
    acc: &mut [L::Float; R],
) {
    let pb = kind.panel_block();
    let (xs, ds, sums) = (&x.xs, &x.ds, &x.sums);
    // SAFETY: every read stays inside its buffer: a block is read at offsets that end
    // within `pb` (Q8_0: 512 bytes of values, then the scales; Q5_0: 256 bytes of
    // nibbles, 64 of fifth-bit masks at Q5_MASKS, then the scales; 32 bytes of f16 scales
    // at `kind.scales() = pb - 32`). Block `b` of each row is values `32 b..32 b + 32`,
    // scale `b` and sum `b`, and the last index read of each (`32 b + 8 pair + 7` for
    // pair < 4, `b`) is inside it; unaligned reads use `read_unaligned`. The prefetch
    // address may lie past the panel: it is formed with `wrapping_add` and a prefetch
    // never faults.
    unsafe {
        // The hardware prefetcher alone left a core well short of the memory bandwidth.
        for line in (0..pb).step_by(64) {
            l.prefetch(blk.wrapping_add(PREFETCH_BLOCKS * pb + line));
        }
        // Two chains a row (even and odd groups of 4 inputs).
        let mut even = [l.zero(); R];
        let mut odd = [l.zero(); R];
        for pair in 0..4 {
            let (w0, w1) = if Q5 {
                let v = l.load(blk.add(pair * 64));
                let lo = l.and(v, nibble);
                let hi = l.and(l.shr16(v, 4), nibble);
                let masks = blk.add(Q5_MASKS + pair * 16).cast::<u64>();
                let (m0, m1) = (masks.read_unaligned(), masks.add(1).read_unaligned());
                (l.or_where(lo, m0, fifth), l.or_where(hi, m1, fifth))
            } else {
                (
                    l.load(blk.add(pair * 128)),
                    l.load(blk.add(pair * 128 + 64)),
                )
            };
            for r in 0..R {
                let xp = xs[r].add(b * QK + pair * 8).cast::<i32>();
                if Q5 {
                    let (x0, x1) = (xp.read_unaligned(), xp.add(1).read_unaligned());
                    even[r] = l.dot2(even[r], w0, x0, w1, x1);
                } else {
                    even[r] = l.dot_u8(even[r], w0, xp.read_unaligned());
                    odd[r] = l.dot_u8(odd[r], w1, xp.add(1).read_unaligned());
                }
            }
        }
        let d = l.load_f16(blk.add(kind.scales()));
        for r in 0..R {
            let sum = l.add(even[r], odd[r]);
            let corr = l.mul(offset, l.splat(*sums[r].add(b)));
            let v = l.to_float(l.sub(sum, corr));
            acc[r] = l.fmadd(v, l.fmul(d, l.fsplat(*ds[r].add(b))), acc[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::testing::{assert_product, product_on_every_tier, quantized, values};
    use candle_core::quantized::GgmlDType;

    const KINDS: [(Kind, GgmlDType); 2] =
        [(Kind::Q8_0, GgmlDType::Q8_0), (Kind::Q5_0, GgmlDType::Q5_0)];

    #[test]
    fn rows_read_back_as_candle_dequantizes_them() {
        for (kind, dtype) in KINDS {
            let (rows, cols) = (19, 96);
            let (data, w) = quantized(dtype, rows, cols);
            let m = Block32Matrix::from_blocks(kind, &data, rows, cols).unwrap();
            assert_eq!(
                m.panels().bytes(),
                rows.div_ceil(PANEL) * PANEL * cols / QK * kind.file_block()
            );
            for r in 0..rows {
                assert_eq!(m.row(r), w[r * cols..][..cols], "{kind:?} row {r}");
            }
        }
    }

    #[test]
    fn activations_quantize_like_llama_cpp() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 3.0).collect();
        let q = Q8_0Rows::quantize(&x, 1, 64);
        // Block 0: max |x| = 20/3 at x[0] -> -127; d = 20/3/127 as f16.
        assert_eq!(q.qs[0], -127);
        assert_eq!(q.d[0], f16::from_f32(20.0 / 3.0 / 127.0).to_f32());
        assert_eq!(
            q.sums[1],
            q.qs[32..].iter().map(|&v| i32::from(v)).sum::<i32>()
        );
        let zeros = Q8_0Rows::quantize(&[0.0; 32], 1, 32);
        assert!(zeros.qs.iter().all(|&v| v == 0) && zeros.d[0] == 0.0);
    }

    #[test]
    fn kernel_equals_dequantized_product_on_every_tier() {
        for (kind, dtype) in KINDS {
            // Rows not a multiple of the panel; one block and several; every remainder
            // of the 8-row and 4-row passes; a width that is no multiple of 256 (Qwen2.5
            // 0.5B: 896).
            for (m, rows, cols) in [
                (1, 16, 32),
                (1, 40, 896),
                (3, 33, 96),
                (6, 64, 256),
                (9, 8, 128),
                (13, 16, 64),
                (23, 24, 896),
            ] {
                let (data, w) = quantized(dtype, rows, cols);
                let mat = Block32Matrix::from_blocks(kind, &data, rows, cols).unwrap();
                let x = values(m * cols, 2.0);
                let q = Q8_0Rows::quantize(&x, m, cols);
                let xq = q.dequantize();
                let got = product_on_every_tier(&mat, &q);
                assert_product(&got, &w, &xq, m, rows, &format!("{kind:?}"));
            }
        }
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(Block32Matrix::from_blocks(Kind::Q8_0, &[0; 34], 1, 16).is_none());
        assert!(Block32Matrix::from_blocks(Kind::Q8_0, &[0; 33], 1, 32).is_none());
        assert!(Block32Matrix::from_blocks(Kind::Q5_0, &[0; 22], 1, 32).is_some());
    }
}
