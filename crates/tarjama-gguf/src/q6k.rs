//! Q6_K matrix products over the file's own 6-bit values.
//!
//! Q6_K (llama.cpp's k-quant) stores a row in blocks of 256 weights: 6-bit values (low 4
//! bits in `ql`, high 2 in `qh`), sixteen sub-blocks of 16 with an i8 scale each, and one
//! f16 block scale `d`; weight = `d * sc * (q - 32)`. Activations are llama.cpp's Q8_K
//! ([`Q8k`], shared with Q4_K), so a block's sum is the integer llama.cpp computes:
//! `dx * d * sum_s sc_s * (dot(q_s, x_s) - 32 * sum(x_s))`.
//!
//! Q4_K_M files keep the output head and half the layers' `attn_v` and `ffn_down` in
//! Q6_K (a third of Qwen2.5 1.5B's bytes). candle multiplies one row over the file's
//! blocks (through `gguf::model::matvec`) but builds a repacked copy for many rows and
//! keeps both. Here the blocks are rearranged at load, at the file's size (16 x 210 bytes
//! a panel block), in panels of 16 rows like [`super::q4k`]: 64-byte groups of low
//! nibbles (two groups of 4 inputs each) and of high bit pairs (four groups each).

use super::panel::{Layout, PanelMatrix, Panels, RowStarts, PANEL};
use super::q4k::Q8k;
use tarjama_kernels::simd::Lanes;

/// Weights per block.
const QK: usize = 256;
/// Bytes of one Q6_K block in the file: 128 of `ql`, 64 of `qh`, 16 scales, f16 `d`.
const BLOCK_BYTES: usize = 210;
/// Layout of one panel block: for each sub-block of 16 inputs, in order, its two 64-byte
/// groups of low nibbles and its group of high bit pairs ([`SUB`] bytes), then the scales
/// and d of the 16 rows. The kernel then reads a block front to back: with the low
/// nibbles and the high bits in two regions of the block (two streams a block apart),
/// one AMD Zen 4 core read the output head at 10-11 GB/s, against 17 in this order.
const SUB: usize = 3 * 64;
const SCALES: usize = QK / 16 * SUB;
const D: usize = SCALES + PANEL * 16;
const PANEL_BLOCK: usize = D + PANEL * 2;

/// Where the 64-byte group of low nibbles `i` (inputs 8i..8i+8) starts in a panel block.
const fn low_group(i: usize) -> usize {
    SUB * (i / 2) + 64 * (i % 2)
}

/// Where the 64-byte group of high bit pairs `m` (inputs 16m..16m+16) starts.
const fn high_group(m: usize) -> usize {
    SUB * m + 128
}

/// How far ahead of the values being read the kernel asks for the next ones.
const PREFETCH: usize = 2 * PANEL_BLOCK;

/// Q6_K in panels.
pub const LAYOUT: Layout = Layout {
    name: "Q6_K",
    block: QK,
    file_block: BLOCK_BYTES,
    panel_block: PANEL_BLOCK,
    pack: pack_block,
};

/// A Q6_K matrix of `rows x cols` (`cols` a multiple of 256), rearranged for the panel
/// kernel.
#[derive(Debug, Clone)]
pub struct Q6kMatrix(Panels);

/// The 6-bit value `v` of a Q6_K block (llama.cpp's `dequantize_row_q6_K` order).
fn value(block: &[u8], v: usize) -> u8 {
    let (ql, qh) = (&block[..128], &block[128..192]);
    let (half, w) = (v / 128, v % 128);
    let (quarter, l) = (w / 32, w % 32);
    let low = ql[64 * half + l + 32 * (quarter % 2)];
    let low = if quarter < 2 { low & 0xF } else { low >> 4 };
    let high = (qh[32 * half + l] >> (2 * quarter)) & 3;
    low | (high << 4)
}

/// [`Layout::pack`] for Q6_K.
fn pack_block(block: &[u8], out: &mut [u8], lane: usize) {
    out[D + 2 * lane..][..2].copy_from_slice(&block[208..210]);
    for s in 0..16 {
        out[SCALES + s * PANEL + lane] = block[192 + s];
    }
    let q: [u8; QK] = std::array::from_fn(|v| value(block, v));
    // Group g = inputs 4g..4g+4, this row's 4 bytes at lane * 4: the low nibbles of
    // groups 2i and 2i+1 share 64-byte group i of `ql`; the high bit pairs of groups
    // 4m..4m+4 share group m of `qh` (group 4m + t at bits 2t).
    for g in 0..QK / 4 {
        let (lo, hi) = (&mut out[low_group(g / 2) + lane * 4..][..4], 4 * (g % 2));
        for (j, d) in lo.iter_mut().enumerate() {
            *d |= (q[4 * g + j] & 0xF) << hi;
        }
        let pairs = &mut out[high_group(g / 4) + lane * 4..][..4];
        for (j, d) in pairs.iter_mut().enumerate() {
            *d |= (q[4 * g + j] >> 4) << (2 * (g % 4));
        }
    }
}

impl Q6kMatrix {
    /// Rearranges the Q6_K data of a `rows x cols` matrix (as stored in a GGUF file).
    /// None when the sizes do not fit.
    pub fn from_blocks(data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Panels::from_blocks(LAYOUT, data, rows, cols).map(Q6kMatrix)
    }

    /// Panels filled in [`LAYOUT`].
    pub fn from_panels(panels: Panels) -> Self {
        assert_eq!(panels.layout().name, LAYOUT.name, "Q6_K panels");
        Q6kMatrix(panels)
    }
}

impl PanelMatrix for Q6kMatrix {
    type Input = Q8k;

    fn panels(&self) -> &Panels {
        &self.0
    }

    #[inline(always)]
    unsafe fn kernel<L: Lanes, const R: usize>(
        &self,
        l: L,
        p: usize,
        x: &Q8k,
        m0: usize,
        out: *mut f32,
        stride: usize,
        valid: usize,
    ) {
        let nibble = l.splat8(0x0F);
        let bits45 = l.splat8(0x30);
        // SAFETY: the caller's guarantees are the ones `for_each_block` needs, and every
        // read of a block stays inside its buffers: a block is PANEL_BLOCK bytes, and the
        // offsets read in it (64 bytes at SUB s, SUB s + 64 and SUB s + 128, 16 at
        // SCALES + 16 s for s < 16, 32 at D) end within it. Block `b` of each input row is
        // values `256 b..256 b + 256`, scale `b` and sums `16 b..16 b + 16`, and the last
        // index read of each (`256 b + 16 s + 15`, `b`, `16 b + s`) is inside it; unaligned
        // reads use `read_unaligned`. The prefetch address may lie past the panel: it is
        // formed with `wrapping_add` and a prefetch never faults.
        unsafe {
            let at = (out, stride, valid);
            super::panel::for_each_block(
                l,
                &self.0,
                PANEL_BLOCK,
                p,
                x,
                m0,
                at,
                #[inline(always)]
                |blk, b, x: &RowStarts<R>, acc: &mut [L::Float; R]| {
                    let (xs, ds, sums) = (&x.xs, &x.ds, &x.sums);
                    let mut dots = [l.zero(); R];
                    for s in 0..16 {
                        // Sub-block s: inputs 16s..16s+16, four groups of 4.
                        let (lo0, lo1, high) =
                            (low_group(2 * s), low_group(2 * s + 1), high_group(s));
                        for line in [lo0, lo1, high] {
                            l.prefetch(blk.wrapping_add(line + PREFETCH));
                        }
                        let v0 = l.load(blk.add(lo0));
                        let v1 = l.load(blk.add(lo1));
                        let h = l.load(blk.add(high));
                        let g = [
                            l.or(l.and(v0, nibble), l.and(l.shl16(h, 4), bits45)),
                            l.or(l.and(l.shr16(v0, 4), nibble), l.and(l.shl16(h, 2), bits45)),
                            l.or(l.and(v1, nibble), l.and(h, bits45)),
                            l.or(l.and(l.shr16(v1, 4), nibble), l.and(l.shr16(h, 2), bits45)),
                        ];
                        let sc = l.load_i8(blk.add(SCALES + s * PANEL));
                        for r in 0..R {
                            let xp = xs[r].add(b * QK + s * 16).cast::<i32>();
                            let x: [i32; 4] = std::array::from_fn(|i| xp.add(i).read_unaligned());
                            let dot = l.dot2(l.zero(), g[0], x[0], g[1], x[1]);
                            let dot = l.dot2(dot, g[2], x[2], g[3], x[3]);
                            let corr = l.splat(32 * *sums[r].add(b * 16 + s));
                            let dot = l.sub(dot, corr);
                            dots[r] = l.add(dots[r], l.mul(dot, sc));
                        }
                    }
                    let d = l.load_f16(blk.add(D));
                    for r in 0..R {
                        let dx = l.fsplat(*ds[r].add(b));
                        acc[r] = l.fmadd(l.to_float(dots[r]), l.fmul(d, dx), acc[r]);
                    }
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::testing::{assert_product, product_on_every_tier, quantized, values};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::Device;

    fn q6k(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        quantized(GgmlDType::Q6K, rows, cols)
    }

    #[test]
    fn values_are_read_in_llama_cpp_order() {
        // d = 1, every scale 1: the dequantized block is q - 32 in order.
        let (mut block, _) = q6k(1, 256);
        block[192..208].fill(1);
        block[208..210].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        let t = QTensor::new(
            candle_core::quantized::QStorage::from_data(
                std::borrow::Cow::Borrowed(&block),
                &Device::Cpu,
                GgmlDType::Q6K,
            )
            .unwrap(),
            (1, 256),
        )
        .unwrap();
        let deq: Vec<f32> = t
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (v, &d) in deq.iter().enumerate() {
            assert_eq!(f32::from(value(&block, v)) - 32.0, d, "value {v}");
        }
    }

    #[test]
    fn kernel_equals_dequantized_product_on_every_tier() {
        for (m, rows, cols) in [
            (1, 16, 256),
            (1, 40, 512),
            (3, 33, 768),
            (6, 64, 256),
            (9, 8, 1024),
            (13, 16, 256),
            (23, 24, 512),
        ] {
            let (data, w) = q6k(rows, cols);
            let mat = Q6kMatrix::from_blocks(&data, rows, cols).unwrap();
            assert_eq!(
                mat.panels().bytes(),
                rows.div_ceil(PANEL) * PANEL * cols / QK * BLOCK_BYTES
            );
            let x = values(m * cols, 2.0);
            let q = Q8k::quantize(&x, m, cols);
            let xq = q.dequantize();
            let got = product_on_every_tier(&mat, &q);
            assert_product(&got, &w, &xq, m, rows, "Q6_K");
        }
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(Q6kMatrix::from_blocks(&[0; 210], 1, 128).is_none());
        assert!(Q6kMatrix::from_blocks(&[0; 209], 1, 256).is_none());
        assert!(Q6kMatrix::from_blocks(&[0; 210], 1, 256).is_some());
    }
}
