//! The x86 tiers of [`super::Lanes`]. Each method is one or a few intrinsics of its
//! tier's features; every `unsafe` block below stands on the same two facts, stated once
//! here: the CPU has the features (a value of the type exists only inside `run_*`, see
//! the parent module's docs), and pointer arguments are as the trait's `# Safety`
//! sections ask.

use std::arch::x86_64::*;

use super::{Lanes, WithLanes};

/// AVX-512 F, BW and VNNI lanes: one register each.
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

/// AVX2 (FMA, F16C) lanes: two 256-bit registers each, rows 0-7 and 8-15. `VNNI`:
/// dot products with AVX-VNNI's `vpdpbusd` instead of `vpmaddubsw` + `vpmaddwd`.
#[derive(Debug, Clone, Copy)]
pub struct Avx2<const VNNI: bool>(());

/// [`super::dispatch`] for [`super::Tier::Avx512`].
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn run_avx512<W: WithLanes>(work: W) -> W::Output {
    work.run(Avx512(()))
}

/// [`super::dispatch`] for [`super::Tier::AvxVnni`].
///
/// # Safety
/// The CPU must have AVX2, FMA, F16C and AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(super) unsafe fn run_avxvnni<W: WithLanes>(work: W) -> W::Output {
    work.run(Avx2::<true>(()))
}

/// [`super::dispatch`] for [`super::Tier::Avx2`].
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn run_avx2<W: WithLanes>(work: W) -> W::Output {
    work.run(Avx2::<false>(()))
}

impl Lanes for Avx512 {
    type Bytes = __m512i;
    type Int = __m512i;
    type Float = __m512;
    // Eight rows: the weights loaded and unpacked once serve twice as many rows as with
    // four. Eight sequences' decoding of Qwen2.5 1.5B went from 74-75 to 94-95 tokens/s
    // (interleaved runs); one sequence and prompts are unchanged.
    const ROWS: usize = 8;
    const REGISTERS: usize = 32;

    #[inline(always)]
    unsafe fn load(self, p: *const u8) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    fn splat8(self, v: u8) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_set1_epi8(v as i8) }
    }
    #[inline(always)]
    fn and(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_and_si512(a, b) }
    }
    #[inline(always)]
    fn or(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_or_si512(a, b) }
    }
    #[inline(always)]
    fn shr16(self, a: __m512i, n: u32) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_srl_epi16(a, _mm_cvtsi32_si128(n as i32)) }
    }
    #[inline(always)]
    fn shl16(self, a: __m512i, n: u32) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_sll_epi16(a, _mm_cvtsi32_si128(n as i32)) }
    }
    #[inline(always)]
    fn or_where(self, a: __m512i, mask: u64, v: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_or_si512(a, _mm512_maskz_mov_epi8(mask, v)) }
    }
    #[inline(always)]
    fn dot(self, acc: __m512i, w: __m512i, x: i32) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(x)) }
    }
    #[inline(always)]
    fn dot_u8(self, acc: __m512i, w: __m512i, x: i32) -> __m512i {
        self.dot(acc, w, x)
    }
    #[inline(always)]
    fn zero(self) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    fn splat(self, v: i32) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_set1_epi32(v) }
    }
    #[inline(always)]
    fn add(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_sub_epi32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_mullo_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const u8) -> __m512i {
        // SAFETY: see the module docs.
        unsafe { _mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    fn to_float(self, a: __m512i) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cvtepi32_ps(a) }
    }
    #[inline(always)]
    fn fsplat(self, v: f32) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn loadf(self, p: *const f32) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    fn fadd(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn fmul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fnmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fsum(self, v: __m512) -> f32 {
        // SAFETY: see the module docs.
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            sum8(_mm256_add_ps(_mm512_castps512_ps256(v), hi))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u8) -> __m512 {
        // SAFETY: see the module docs.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512, valid: usize) {
        let mask = ((1u32 << valid.min(16)) - 1) as u16;
        // SAFETY: see the module docs; the store is masked to the `valid` lanes.
        unsafe { _mm512_mask_storeu_ps(p, mask, v) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: see the module docs; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
}

/// The sum of eight lanes in [`Lanes::fsum`]'s order (its last three steps).
///
/// # Safety
/// The CPU has AVX.
#[inline(always)]
unsafe fn sum8(v: __m256) -> f32 {
    // SAFETY: the caller's.
    unsafe {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }
}

/// `f` on both halves of its arguments (no closure: a closure would be compiled
/// without the tier's features, and its intrinsics then called, not inlined).
macro_rules! halves {
    ($f:ident($($a:expr),+)) => {
        [$f($($a[0]),+), $f($($a[1]),+)]
    };
}

impl<const VNNI: bool> Lanes for Avx2<VNNI> {
    type Bytes = [__m256i; 2];
    type Int = [__m256i; 2];
    type Float = [__m256; 2];
    // Sixteen 256-bit registers: four rows of sums (two registers each) spill some,
    // but measured faster than two (Qwen2.5 1.5B prefill: 148 against 140 tokens/s).
    const ROWS: usize = 4;
    const REGISTERS: usize = 8;

    #[inline(always)]
    unsafe fn load(self, p: *const u8) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            [
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            ]
        }
    }
    #[inline(always)]
    fn splat8(self, v: u8) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        let v = unsafe { _mm256_set1_epi8(v as i8) };
        [v, v]
    }
    #[inline(always)]
    fn and(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_and_si256(a, b)) }
    }
    #[inline(always)]
    fn or(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_or_si256(a, b)) }
    }
    #[inline(always)]
    fn shr16(self, a: [__m256i; 2], n: u32) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            let n = [_mm_cvtsi32_si128(n as i32); 2];
            halves!(_mm256_srl_epi16(a, n))
        }
    }
    #[inline(always)]
    fn shl16(self, a: [__m256i; 2], n: u32) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            let n = [_mm_cvtsi32_si128(n as i32); 2];
            halves!(_mm256_sll_epi16(a, n))
        }
    }
    #[inline(always)]
    fn or_where(self, a: [__m256i; 2], mask: u64, v: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            // Each byte of a half gets the mask byte its bit lies in (llama.cpp's
            // `bytes_from_bits_32`), then every bit but its own is set: all ones
            // exactly where its bit was.
            let spread = _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            );
            let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
            let ones = _mm256_set1_epi64x(-1);
            let bits = [
                _mm256_set1_epi32(mask as u32 as i32),
                _mm256_set1_epi32((mask >> 32) as u32 as i32),
            ];
            let (spread, others, ones) = ([spread; 2], [others; 2], [ones; 2]);
            let b = halves!(_mm256_shuffle_epi8(bits, spread));
            let b = halves!(_mm256_or_si256(b, others));
            let m = halves!(_mm256_cmpeq_epi8(b, ones));
            let m = halves!(_mm256_and_si256(m, v));
            halves!(_mm256_or_si256(a, m))
        }
    }
    #[inline(always)]
    fn dot(self, acc: [__m256i; 2], w: [__m256i; 2], x: i32) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            let x = [_mm256_set1_epi32(x); 2];
            if VNNI {
                halves!(_mm256_dpbusd_avx_epi32(acc, w, x))
            } else {
                // Pairs of products fit i16 (below 128 * 128 * 2); the pair sums are
                // then summed in pairs to i32.
                let ones = [_mm256_set1_epi16(1); 2];
                let pairs = halves!(_mm256_maddubs_epi16(w, x));
                let sums = halves!(_mm256_madd_epi16(pairs, ones));
                halves!(_mm256_add_epi32(acc, sums))
            }
        }
    }
    #[inline(always)]
    fn dot2(
        self,
        acc: [__m256i; 2],
        w0: [__m256i; 2],
        x0: i32,
        w1: [__m256i; 2],
        x1: i32,
    ) -> [__m256i; 2] {
        if VNNI {
            return self.dot(self.dot(acc, w0, x0), w1, x1);
        }
        // SAFETY: see the module docs.
        unsafe {
            // Both sets of pair sums are below 2 * 64 * 128 in magnitude: they add in
            // i16 before one widening.
            let (x0, x1) = ([_mm256_set1_epi32(x0); 2], [_mm256_set1_epi32(x1); 2]);
            let ones = [_mm256_set1_epi16(1); 2];
            let p0 = halves!(_mm256_maddubs_epi16(w0, x0));
            let p1 = halves!(_mm256_maddubs_epi16(w1, x1));
            let pairs = halves!(_mm256_add_epi16(p0, p1));
            let sums = halves!(_mm256_madd_epi16(pairs, ones));
            halves!(_mm256_add_epi32(acc, sums))
        }
    }
    #[inline(always)]
    fn dot_u8(self, acc: [__m256i; 2], w: [__m256i; 2], x: i32) -> [__m256i; 2] {
        if VNNI {
            return self.dot(acc, w, x);
        }
        // SAFETY: see the module docs.
        unsafe {
            // A pair of full-range byte products may overflow i16: multiply the low
            // and high nibbles apart and weigh the high ones by 16 when widening.
            let x = [_mm256_set1_epi32(x); 2];
            let nibble = [_mm256_set1_epi8(0x0F); 2];
            let (ones, sixteen) = ([_mm256_set1_epi16(1); 2], [_mm256_set1_epi16(16); 2]);
            let lo = halves!(_mm256_and_si256(w, nibble));
            let shifted = [_mm256_srli_epi16::<4>(w[0]), _mm256_srli_epi16::<4>(w[1])];
            let hi = halves!(_mm256_and_si256(shifted, nibble));
            let lo = halves!(_mm256_maddubs_epi16(lo, x));
            let hi = halves!(_mm256_maddubs_epi16(hi, x));
            let lo = halves!(_mm256_madd_epi16(lo, ones));
            let hi = halves!(_mm256_madd_epi16(hi, sixteen));
            let sum = halves!(_mm256_add_epi32(lo, hi));
            halves!(_mm256_add_epi32(acc, sum))
        }
    }
    #[inline(always)]
    fn zero(self) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        let z = unsafe { _mm256_setzero_si256() };
        [z, z]
    }
    #[inline(always)]
    fn splat(self, v: i32) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        let v = unsafe { _mm256_set1_epi32(v) };
        [v, v]
    }
    #[inline(always)]
    fn add(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_add_epi32(a, b)) }
    }
    #[inline(always)]
    fn sub(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_sub_epi32(a, b)) }
    }
    #[inline(always)]
    fn mul(self, a: [__m256i; 2], b: [__m256i; 2]) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_mullo_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            [
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())),
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(8).cast())),
            ]
        }
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const u8) -> [__m256i; 2] {
        // SAFETY: see the module docs.
        unsafe {
            [
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())),
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(8).cast())),
            ]
        }
    }
    #[inline(always)]
    fn to_float(self, a: [__m256i; 2]) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_cvtepi32_ps(a)) }
    }
    #[inline(always)]
    fn fsplat(self, v: f32) -> [__m256; 2] {
        // SAFETY: see the module docs.
        let v = unsafe { _mm256_set1_ps(v) };
        [v, v]
    }
    #[inline(always)]
    unsafe fn loadf(self, p: *const f32) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }
    #[inline(always)]
    fn fadd(self, a: [__m256; 2], b: [__m256; 2]) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_add_ps(a, b)) }
    }
    #[inline(always)]
    fn fmul(self, a: [__m256; 2], b: [__m256; 2]) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_mul_ps(a, b)) }
    }
    #[inline(always)]
    fn fmadd(self, a: [__m256; 2], b: [__m256; 2], c: [__m256; 2]) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_fmadd_ps(a, b, c)) }
    }
    #[inline(always)]
    fn fnmadd(self, a: [__m256; 2], b: [__m256; 2], c: [__m256; 2]) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe { halves!(_mm256_fnmadd_ps(a, b, c)) }
    }
    #[inline(always)]
    fn fsum(self, v: [__m256; 2]) -> f32 {
        // SAFETY: see the module docs.
        unsafe { sum8(_mm256_add_ps(v[0], v[1])) }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u8) -> [__m256; 2] {
        // SAFETY: see the module docs.
        unsafe {
            [
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(16).cast())),
            ]
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: [__m256; 2], valid: usize) {
        // SAFETY: see the module docs; at most `valid` values are written.
        unsafe {
            if valid >= 16 {
                _mm256_storeu_ps(p, v[0]);
                _mm256_storeu_ps(p.add(8), v[1]);
            } else {
                let mut all = [0f32; 16];
                _mm256_storeu_ps(all.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(all.as_mut_ptr().add(8), v[1]);
                std::ptr::copy_nonoverlapping(all.as_ptr(), p, valid);
            }
        }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: see the module docs; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
}
