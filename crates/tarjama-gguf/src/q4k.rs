//! Q4_K matrix products over the file's own 4-bit values.
//!
//! Q4_K (llama.cpp's k-quant) stores a row in blocks of 256 weights: 4-bit values, eight
//! sub-blocks of 32 with a 6-bit scale and a 6-bit min each, and two f16 block scales
//! `d`, `dmin`; weight = `d * sc * q - dmin * m`. Activations are quantized per row the
//! way llama.cpp does for this type (Q8_K: blocks of 256 i8 values with one f32 scale,
//! and the sums of each 16 values, which the mins multiply). The product of one block is
//! then exact in integers, as in llama.cpp:
//! `dx * (d * sum_s sc_s * dot(q_s, x_s) - dmin * sum_s m_s * sum(x_s))`.
//!
//! candle 0.11 multiplies Q4_K on this CPU through a repacked copy a third larger than the
//! file's blocks (every scale widened), and reading it is what one decoding step mostly
//! does: 62% of Qwen2.5 1.5B's step went there. Here the blocks are only rearranged, at
//! load, in panels of 16 rows, so that one `vpdpbusd` multiplies four consecutive inputs
//! by 16 rows at once (the input broadcast, the 16 rows' nibbles in the lanes): a panel
//! block is 2368 bytes against the file's 16 x 144 = 2304 (the 6-bit scales and mins
//! spread to a byte each). The same kernel serves one input row (decoding) and many
//! (prompt processing and many sequences' decoding, up to eight rows per pass over the
//! weights).

use super::panel::{Int8Rows, Int8Scheme, Layout, PanelMatrix, Panels, RowStarts, SendPtr, PANEL};
use tarjama_kernels::simd::{self, Lanes, WithLanes};

/// Weights per block.
const QK: usize = 256;
/// Bytes of one Q4_K block in the file: f16 d, f16 dmin, 12 bytes of scales, 128 of values.
const BLOCK_BYTES: usize = 144;
/// Layout of one panel block: values, then scales, mins, d and dmin of the 16 rows.
const QS: usize = 0;
const SCALES: usize = QS + PANEL * QK / 2;
const MINS: usize = SCALES + PANEL * 8;
const D: usize = MINS + PANEL * 8;
const DMIN: usize = D + PANEL * 2;
const PANEL_BLOCK: usize = DMIN + PANEL * 2;
/// How far ahead of the values being read the kernel asks for the next ones.
const PREFETCH: usize = 2 * PANEL_BLOCK;

/// Q4_K in panels.
pub const LAYOUT: Layout = Layout {
    name: "Q4_K",
    block: QK,
    file_block: BLOCK_BYTES,
    panel_block: PANEL_BLOCK,
    pack: pack_block,
};

/// A Q4_K matrix of `rows x cols` (`cols` a multiple of 256), rearranged for the panel
/// kernel.
#[derive(Debug, Clone)]
pub struct Q4kMatrix(Panels);

/// The 6-bit scale and min of sub-block `j` from a block's 12 scale bytes (llama.cpp's
/// `get_scale_min_k4`).
fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// [`Layout::pack`] for Q4_K.
fn pack_block(block: &[u8], out: &mut [u8], lane: usize) {
    out[D + 2 * lane..][..2].copy_from_slice(&block[0..2]);
    out[DMIN + 2 * lane..][..2].copy_from_slice(&block[2..4]);
    let (scales, qs) = (&block[4..16], &block[16..]);
    for s in 0..8 {
        let (sc, m) = scale_min(s, scales);
        out[SCALES + s * PANEL + lane] = sc;
        out[MINS + s * PANEL + lane] = m;
    }
    // Inputs 8i..8i+8 lie in one half of a 64-value chunk c, whose first 32
    // values are the low nibbles of its 32 bytes and the next 32 the high
    // ones. Packed: this row's 4 bytes of 64-byte group i, inputs 8i..8i+4
    // in the low nibbles and 8i+4..8i+8 in the high ones.
    for i in 0..QK / 8 {
        let (c, l) = (i * 8 / 64, i * 8 % 64);
        let (src, shift) = if l < 32 {
            (&qs[32 * c + l..][..8], 0)
        } else {
            (&qs[32 * c + l - 32..][..8], 4)
        };
        let dst = &mut out[QS + i * 64 + lane * 4..][..4];
        for (j, d) in dst.iter_mut().enumerate() {
            *d = ((src[j] >> shift) & 0xF) | (((src[4 + j] >> shift) & 0xF) << 4);
        }
    }
}

impl Q4kMatrix {
    /// Rearranges the Q4_K data of a `rows x cols` matrix (as stored in a GGUF file).
    /// None when the sizes do not fit.
    pub fn from_blocks(data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Panels::from_blocks(LAYOUT, data, rows, cols).map(Q4kMatrix)
    }

    /// Panels filled in [`LAYOUT`].
    pub fn from_panels(panels: Panels) -> Self {
        assert_eq!(panels.layout().name, LAYOUT.name, "Q4_K panels");
        Q4kMatrix(panels)
    }
}

/// Activations quantized as llama.cpp's Q8_K, row by row: blocks of 256 values with one
/// scale, and the sums of each 16 values (llama.cpp's `bsums`), which the mins multiply.
pub type Q8k = Int8Rows<Q8KScheme>;

/// llama.cpp's Q8_K ([`Q8k`]).
#[derive(Debug)]
pub struct Q8KScheme;

impl Int8Scheme for Q8KScheme {
    const NAME: &'static str = "Q8_K";
    const BLOCK: usize = QK;
    const PER_SUM: usize = 16;

    /// Quantizes exactly as llama.cpp's `quantize_row_q8_K_ref`: per block, the value of
    /// largest magnitude maps to -127 and the others round to nearest, ties to even.
    fn fill(x: &[f32], q: &mut Q8k) {
        let nb = q.cols / QK;
        let m = q.rows;
        let (qs, d, sums) = q.buffers();
        let tier = tarjama_kernels::cpu::Tier::active();
        tarjama_kernels::runtime::parallel_chunks(m * nb, 64, |blocks| {
            let work = QuantizeBlocks {
                x,
                blocks,
                qs: &qs,
                d: &d,
                sums: &sums,
            };
            // Compiled for the tier: its loops vectorize as wide as the CPU allows.
            simd::dispatch(tier, work);
        });
    }
}

/// Blocks `blocks` of [`Q8KScheme::fill`], for one thread.
struct QuantizeBlocks<'a> {
    x: &'a [f32],
    blocks: std::ops::Range<usize>,
    qs: &'a SendPtr<i8>,
    d: &'a SendPtr<f32>,
    sums: &'a SendPtr<i32>,
}

impl WithLanes for QuantizeBlocks<'_> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, _: L) {
        for b in self.blocks {
            // SAFETY: each block index is visited once; the buffers hold every block
            // of the input and outlive the parallel loop.
            let (qs, d, sums) = unsafe {
                (
                    std::slice::from_raw_parts_mut(self.qs.0.add(b * QK), QK),
                    &mut *self.d.0.add(b),
                    std::slice::from_raw_parts_mut(self.sums.0.add(b * QK / 16), QK / 16),
                )
            };
            quantize_block(&self.x[b * QK..][..QK], qs, d, sums);
        }
    }
}

/// One block of [`Q8KScheme::fill`], written so that its loops vectorize (it was a twentieth
/// of a prefill as one branchy loop).
#[inline(always)]
fn quantize_block(x: &[f32], qs: &mut [i8], d: &mut f32, sums: &mut [i32]) {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    for c in x.chunks_exact(LANES) {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let amax = lanes.iter().fold(0f32, |m, &v| if v > m { v } else { m });
    if amax == 0.0 || !amax.is_finite() {
        qs.fill(0);
        sums.fill(0);
        *d = 0.0;
        return;
    }
    // llama.cpp keeps the sign of the first value of largest magnitude.
    let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
    let iscale = -127.0 / max;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = tarjama_kernels::numerics::nearest_int(iscale * v).clamp(-128, 127) as i8;
    }
    for (s, chunk) in sums.iter_mut().zip(qs.chunks_exact(16)) {
        *s = chunk.iter().map(|&v| i32::from(v)).sum();
    }
    *d = 1.0 / iscale;
}

impl PanelMatrix for Q4kMatrix {
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
        // SAFETY: the caller's guarantees are the ones `for_each_block` needs, and every
        // read of a block stays inside its buffers: a block is PANEL_BLOCK bytes, and the
        // offsets read in it (64 bytes at QS + 64 g for g < 32, 16 at SCALES + 16 s and
        // MINS + 16 s for s < 8, 32 at D and DMIN) end within it. Block `b` of each input
        // row is values `256 b..256 b + 256`, scale `b` and sums `16 b..16 b + 16`, and the
        // last index read of each (`256 b + 8 g + 7`, `b`, `16 b + 2 s + 1`) is inside it;
        // unaligned reads use `read_unaligned`. The prefetch address may lie past the
        // panel: it is formed with `wrapping_add` and a prefetch never faults.
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
                    let mut mins = [l.zero(); R];
                    for s in 0..8 {
                        let sc = l.load_u8(blk.add(SCALES + s * PANEL));
                        let mn = l.load_u8(blk.add(MINS + s * PANEL));
                        let mut dot = [l.zero(); R];
                        for j in 0..4 {
                            let g = s * 4 + j;
                            // The hardware prefetcher alone left one core at 21 GB/s here.
                            l.prefetch(blk.wrapping_add(QS + g * 64 + PREFETCH));
                            let v = l.load(blk.add(QS + g * 64));
                            let vlo = l.and(v, nibble);
                            let vhi = l.and(l.shr16(v, 4), nibble);
                            for r in 0..R {
                                let xp = xs[r].add(b * QK + g * 8).cast::<i32>();
                                let (x0, x1) = (xp.read_unaligned(), xp.add(1).read_unaligned());
                                dot[r] = l.dot2(dot[r], vlo, x0, vhi, x1);
                            }
                        }
                        for r in 0..R {
                            dots[r] = l.add(dots[r], l.mul(dot[r], sc));
                            let pair = sums[r].add(b * 16 + 2 * s);
                            mins[r] = l.add(mins[r], l.mul(mn, l.splat(*pair + *pair.add(1))));
                        }
                    }
                    let d = l.load_f16(blk.add(D));
                    let dmin = l.load_f16(blk.add(DMIN));
                    for r in 0..R {
                        let dx = l.fsplat(*ds[r].add(b));
                        acc[r] = l.fmadd(l.to_float(dots[r]), l.fmul(d, dx), acc[r]);
                        acc[r] = l.fnmadd(l.to_float(mins[r]), l.fmul(dmin, dx), acc[r]);
                    }
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::matmul_many;
    use crate::panel::testing::{assert_product, product_on_every_tier, quantized, values};
    use candle_core::quantized::GgmlDType;

    fn q4k(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        quantized(GgmlDType::Q4K, rows, cols)
    }

    #[test]
    fn activations_quantize_like_llama_cpp() {
        let x: Vec<f32> = (0..512).map(|i| (i as f32 - 200.0) / 7.0).collect();
        let q = Q8k::quantize(&x, 1, 512);
        // The largest magnitude of the first block (-200/7) maps to -127: d = -200/7/-127.
        assert_eq!(q.qs[0], -127);
        assert!((q.d[0] - 200.0 / 7.0 / 127.0).abs() < 1e-6);
        assert_eq!(
            q.sums[0] + q.sums[1],
            q.qs[..32].iter().map(|&v| i32::from(v)).sum::<i32>()
        );
        let back = q.dequantize();
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() <= q.d[0].abs().max(q.d[1].abs()) * 0.5 + 1e-6);
        }
        let zeros = Q8k::quantize(&[0.0; 256], 1, 256);
        assert!(zeros.qs.iter().all(|&v| v == 0) && zeros.d[0] == 0.0);
    }

    #[test]
    fn kernel_equals_dequantized_product_on_every_tier() {
        // Rows not a multiple of the panel; inputs of one and of several blocks; input
        // row counts that leave every remainder of the 8-row (AVX-512) and 4-row passes.
        for (m, rows, cols) in [
            (1, 16, 256),
            (1, 40, 512),
            (3, 33, 768),
            (6, 64, 256),
            (9, 8, 1024),
            (13, 16, 256),
            (23, 24, 512),
        ] {
            let (data, w) = q4k(rows, cols);
            let mat = Q4kMatrix::from_blocks(&data, rows, cols).unwrap();
            let x = values(m * cols, 2.0);
            let q = Q8k::quantize(&x, m, cols);
            let xq = q.dequantize();
            let got = product_on_every_tier(&mat, &q);
            assert_product(&got, &w, &xq, m, rows, "Q4_K");
        }
    }

    #[test]
    fn several_matrices_at_once_equal_one_by_one() {
        let (a, _) = q4k(48, 512);
        let (b, _) = q4k(16, 512);
        let (a, b) = (
            Q4kMatrix::from_blocks(&a, 48, 512).unwrap(),
            Q4kMatrix::from_blocks(&b, 16, 512).unwrap(),
        );
        let x = values(2 * 512, 1.0);
        let q = Q8k::quantize(&x, 2, 512);
        let both = matmul_many(&[&a, &b], &q);
        assert_eq!(both[0], a.matmul(&x, 2));
        assert_eq!(both[1], b.matmul(&x, 2));
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(Q4kMatrix::from_blocks(&[0; 144], 1, 128).is_none());
        assert!(Q4kMatrix::from_blocks(&[0; 143], 1, 256).is_none());
        assert!(Q4kMatrix::from_blocks(&[0; 144], 1, 256).is_some());
    }

    #[test]
    fn rows_packed_in_uneven_pieces_land_in_their_panels_and_lanes() {
        // 70 rows: four whole panels and a last one of 6; pieces of 7 rows start and end
        // inside panels, as a loader reading a few rows at a time may.
        let layout = LAYOUT;
        let (rows, cols) = (70, 512);
        let (data, _) = quantized(GgmlDType::Q4K, rows, cols);
        let mut panels = Panels::zeros(layout, rows, cols).unwrap();
        let (row_bytes, nb) = (panels.row_bytes(), panels.blocks());
        for (i, piece) in data.chunks(7 * row_bytes).enumerate() {
            panels.pack_rows(7 * i, piece);
        }
        // Row r's block b goes to lane r % 16 of block b of panel r / 16.
        let mut want = vec![0u8; rows.div_ceil(PANEL) * nb * layout.panel_block];
        for (r, row) in data.chunks(row_bytes).enumerate() {
            for (b, block) in row.chunks(layout.file_block).enumerate() {
                let at = ((r / PANEL) * nb + b) * layout.panel_block;
                (layout.pack)(block, &mut want[at..][..layout.panel_block], r % PANEL);
            }
        }
        let got: Vec<u8> = (0..rows.div_ceil(PANEL))
            .flat_map(|p| panels.panel(p).to_vec())
            .collect();
        assert!(got == want);
    }
}
