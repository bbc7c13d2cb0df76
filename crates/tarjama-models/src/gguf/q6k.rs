//! Q6_K matrix products on AVX-512 VNNI, over the file's own 6-bit values.
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

use super::panel::{Layout, PanelMatrix, Panels, PANEL};
use super::q4k::Q8k;

/// Weights per block.
const QK: usize = 256;
/// Bytes of one Q6_K block in the file: 128 of `ql`, 64 of `qh`, 16 scales, f16 `d`.
const BLOCK_BYTES: usize = 210;
/// Layout of one panel block: low nibbles, high bit pairs, then scales and d of the 16 rows.
const QL: usize = 0;
const QH: usize = QL + PANEL * QK / 2;
const SCALES: usize = QH + PANEL * QK / 4;
const D: usize = SCALES + PANEL * 16;
const PANEL_BLOCK: usize = D + PANEL * 2;
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
/// kernel ([`super::panel::supported`] CPUs).
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
        let (lo, hi) = (&mut out[QL + (g / 2) * 64 + lane * 4..][..4], 4 * (g % 2));
        for (j, d) in lo.iter_mut().enumerate() {
            *d |= (q[4 * g + j] & 0xF) << hi;
        }
        let pairs = &mut out[QH + (g / 4) * 64 + lane * 4..][..4];
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

    #[cfg(target_arch = "x86_64")]
    unsafe fn panel(&self, p: usize, x: &Q8k, y: *mut f32) {
        // SAFETY: this method's contract is the kernel's, and the caller upholds it.
        unsafe { panel(self, p, x, y) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn panel(&self, _: usize, _: &Q8k, _: *mut f32) {
        unreachable!("no panel kernels on this architecture")
    }
}

/// [`PanelMatrix::panel`] for Q6_K.
///
/// # Safety
/// As [`PanelMatrix::panel`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn panel(w: &Q6kMatrix, p: usize, x: &Q8k, y: *mut f32) {
    let (stride, nb) = (w.0.rows(), w.0.blocks());
    let base = w.0.panel(p).as_ptr();
    w.0.passes(p, x.rows, |m0, n, valid| {
        // SAFETY: the caller guarantees the CPU features, that `x` is as wide as the
        // matrix and that `y` holds `x.rows` rows of `stride` values. `passes` hands out
        // rows `m0..m0 + n` of `x` with `n` at most 4 and `valid` the columns panel `p`
        // has, so `out` (row `m0`, column `16 p`) and the rows `panel_rows` reads exist.
        unsafe {
            let out = y.add(m0 * stride + p * PANEL);
            match n {
                4 => panel_rows::<4>(base, nb, x, m0, out, stride, valid),
                3 => panel_rows::<3>(base, nb, x, m0, out, stride, valid),
                2 => panel_rows::<2>(base, nb, x, m0, out, stride, valid),
                _ => panel_rows::<1>(base, nb, x, m0, out, stride, valid),
            }
        }
    });
}

/// `R` input rows from `m0` times one panel (`nb` blocks at `w`); writes `valid` columns
/// of each row at `out`, rows `stride` apart.
///
/// # Safety
/// As [`PanelMatrix::panel`]; rows `m0..m0 + R` exist in `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn panel_rows<const R: usize>(
    w: *const u8,
    nb: usize,
    x: &Q8k,
    m0: usize,
    out: *mut f32,
    stride: usize,
    valid: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the CPU features are the caller's guarantee. Every read stays inside its
    // buffer: `w` is one panel of `nb` blocks of PANEL_BLOCK bytes, `b < nb`, and the
    // offsets read in a block (64 bytes at QL + 64 (2 s + 1) and QH + 64 s, 16 at
    // SCALES + 16 s for s < 16, 32 at D) end within PANEL_BLOCK. Rows `m0..m0 + R` of `x`
    // exist (the caller's), each `cols = 256 nb` values, `nb` scales and `16 nb`
    // sub-block sums, and the last index read of each (`256 b + 16 s + 15`, `b`,
    // `16 b + s`) is inside a row; unaligned reads use `read_unaligned`. `out` holds `R`
    // rows `stride` apart (the caller's) and each store is masked to the `valid` columns
    // that exist. The prefetch address may lie past the panel: it is formed with
    // `wrapping_add` and a prefetch never faults.
    unsafe {
        let nibble = _mm512_set1_epi8(0x0F);
        let bits45 = _mm512_set1_epi8(0x30);
        let xs: [*const i8; R] = std::array::from_fn(|r| x.qs.as_ptr().add((m0 + r) * x.cols));
        let ds: [*const f32; R] = std::array::from_fn(|r| x.d.as_ptr().add((m0 + r) * nb));
        let sums: [*const i32; R] =
            std::array::from_fn(|r| x.sums.as_ptr().add((m0 + r) * nb * 16));
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let blk = w.add(b * PANEL_BLOCK);
            let mut dots = [_mm512_setzero_si512(); R];
            for s in 0..16 {
                // Sub-block s: inputs 16s..16s+16, four groups of 4.
                for line in [QL + 2 * s * 64, QL + (2 * s + 1) * 64, QH + s * 64] {
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(line + PREFETCH).cast());
                }
                let v0 = _mm512_loadu_si512(blk.add(QL + 2 * s * 64).cast());
                let v1 = _mm512_loadu_si512(blk.add(QL + (2 * s + 1) * 64).cast());
                let h = _mm512_loadu_si512(blk.add(QH + s * 64).cast());
                let g = [
                    _mm512_or_si512(
                        _mm512_and_si512(v0, nibble),
                        _mm512_and_si512(_mm512_slli_epi16(h, 4), bits45),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(v0, 4), nibble),
                        _mm512_and_si512(_mm512_slli_epi16(h, 2), bits45),
                    ),
                    _mm512_or_si512(_mm512_and_si512(v1, nibble), _mm512_and_si512(h, bits45)),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(v1, 4), nibble),
                        _mm512_and_si512(_mm512_srli_epi16(h, 2), bits45),
                    ),
                ];
                let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(SCALES + s * PANEL).cast()));
                for r in 0..R {
                    let xp = xs[r].add(b * QK + s * 16).cast::<i32>();
                    // Two chains (groups 0, 2 and 1, 3) keep more vpdpbusd in flight.
                    let mut even = _mm512_dpbusd_epi32(
                        _mm512_setzero_si512(),
                        g[0],
                        _mm512_set1_epi32(xp.read_unaligned()),
                    );
                    let mut odd = _mm512_dpbusd_epi32(
                        _mm512_setzero_si512(),
                        g[1],
                        _mm512_set1_epi32(xp.add(1).read_unaligned()),
                    );
                    even = _mm512_dpbusd_epi32(
                        even,
                        g[2],
                        _mm512_set1_epi32(xp.add(2).read_unaligned()),
                    );
                    odd = _mm512_dpbusd_epi32(
                        odd,
                        g[3],
                        _mm512_set1_epi32(xp.add(3).read_unaligned()),
                    );
                    let corr = _mm512_set1_epi32(32 * *sums[r].add(b * 16 + s));
                    let dot = _mm512_sub_epi32(_mm512_add_epi32(even, odd), corr);
                    dots[r] = _mm512_add_epi32(dots[r], _mm512_mullo_epi32(dot, sc));
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(D).cast()));
            for r in 0..R {
                let dx = _mm512_set1_ps(*ds[r].add(b));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[r]), _mm512_mul_ps(d, dx), acc[r]);
            }
        }
        let mask: __mmask16 = (((1u32 << valid) - 1) & 0xffff) as u16;
        for (r, &a) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(out.add(r * stride), mask, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::panel::matmul_many;
    use crate::gguf::panel::testing::{assert_product, quantized, require_panel_cpu, values};
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
    fn kernel_equals_dequantized_product() {
        if !require_panel_cpu() {
            return;
        }
        for (m, rows, cols) in [
            (1, 16, 256),
            (1, 40, 512),
            (3, 33, 768),
            (6, 64, 256),
            (9, 8, 1024),
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
            let got = matmul_many(&[&mat], &q).pop().unwrap();
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
