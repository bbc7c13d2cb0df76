//! Sixteen lanes at a time on every kernel tier, and the dispatch to the active one.
//!
//! tarjama's quantized kernels are written once, generic over [`Lanes`]: 64 bytes of
//! weights (16 rows x 4 consecutive inputs, the panel order of the GGUF panels (`tarjama-gguf`)),
//! 16 i32 sums and 16 f32 results. Each tier implements the operations with its own
//! instructions ([`Avx512`]: one 512-bit register; [`Avx2`]: two 256-bit ones, with or
//! without AVX-VNNI; [`Scalar`]: arrays the compiler vectorizes as the build allows), and
//! [`dispatch`] runs a kernel compiled with the active tier's target features.
//!
//! Every tier computes the same integers and rounds the same float operations in the same
//! order (`fmadd` is one fused rounding everywhere, `f32::mul_add` in [`Scalar`]), so a
//! kernel gives bit-identical results on every tier; the tests hold them to that.
//!
//! A value of a [`Lanes`] type is the proof that the CPU has its tier's features: it is
//! made only by [`dispatch`], inside a function compiled for that tier, after the tier
//! was found [available](Tier::available). The operations are `#[inline(always)]` so
//! that they compile into that function, with its features.

use crate::cpu::Tier;

/// The operations the kernels need, on 64 bytes, 16 i32 and 16 f32 lanes.
///
/// Byte lane `4 i + j` of [`Lanes::Bytes`] belongs to i32 lane `i` (as `vpdpbusd` pairs
/// them). Pointer arguments need no alignment.
pub trait Lanes: Copy {
    /// 64 bytes.
    type Bytes: Copy;
    /// 16 i32 values.
    type Int: Copy;
    /// 16 f32 values.
    type Float: Copy;
    /// How many input rows a kernel should multiply per pass over the weights (at most
    /// the GGUF panels' row count): as many as keep its sums in registers.
    const ROWS: usize;
    /// How many [`Lanes::Int`] values fit in the vector registers at once.
    const REGISTERS: usize;

    /// Loads 64 bytes.
    ///
    /// # Safety
    /// `p..p + 64` must be readable.
    unsafe fn load(self, p: *const u8) -> Self::Bytes;
    /// Every byte `v`.
    fn splat8(self, v: u8) -> Self::Bytes;
    /// Bitwise and.
    fn and(self, a: Self::Bytes, b: Self::Bytes) -> Self::Bytes;
    /// Bitwise or.
    fn or(self, a: Self::Bytes, b: Self::Bytes) -> Self::Bytes;
    /// Each little-endian 16-bit lane shifted right by `n` (logical; `n < 16`).
    fn shr16(self, a: Self::Bytes, n: u32) -> Self::Bytes;
    /// Each 16-bit lane shifted left by `n` (`n < 16`).
    fn shl16(self, a: Self::Bytes, n: u32) -> Self::Bytes;
    /// `a | v` in the bytes whose bit of `mask` is set (byte `i`: bit `i`), `a` elsewhere.
    fn or_where(self, a: Self::Bytes, mask: u64, v: Self::Bytes) -> Self::Bytes;
    /// `acc + sum_j w[4 i + j] * x[j]` in lane `i`, the bytes of `w` unsigned and below
    /// 128, those of `x` (little-endian) signed.
    fn dot(self, acc: Self::Int, w: Self::Bytes, x: i32) -> Self::Int;
    /// As [`Lanes::dot`] for any unsigned bytes `w`.
    fn dot_u8(self, acc: Self::Int, w: Self::Bytes, x: i32) -> Self::Int;
    /// `dot(dot(acc, w0, x0), w1, x1)` for bytes of `w0` and `w1` below 64 (the sum of
    /// the eight products then fits 16 bits, which [`Avx2`] uses).
    fn dot2(self, acc: Self::Int, w0: Self::Bytes, x0: i32, w1: Self::Bytes, x1: i32) -> Self::Int {
        self.dot(self.dot(acc, w0, x0), w1, x1)
    }

    /// Every lane 0.
    fn zero(self) -> Self::Int;
    /// Every lane `v`.
    fn splat(self, v: i32) -> Self::Int;
    /// Lane-wise sum (wrapping).
    fn add(self, a: Self::Int, b: Self::Int) -> Self::Int;
    /// Lane-wise difference (wrapping).
    fn sub(self, a: Self::Int, b: Self::Int) -> Self::Int;
    /// Lane-wise product (the low 32 bits).
    fn mul(self, a: Self::Int, b: Self::Int) -> Self::Int;
    /// 16 unsigned bytes, widened.
    ///
    /// # Safety
    /// `p..p + 16` must be readable.
    unsafe fn load_u8(self, p: *const u8) -> Self::Int;
    /// 16 signed bytes, widened.
    ///
    /// # Safety
    /// `p..p + 16` must be readable.
    unsafe fn load_i8(self, p: *const u8) -> Self::Int;

    /// Lane-wise conversion (rounded to nearest).
    fn to_float(self, a: Self::Int) -> Self::Float;
    /// Every lane `v`.
    fn fsplat(self, v: f32) -> Self::Float;
    /// 16 f32 values.
    ///
    /// # Safety
    /// `p..p + 16` f32s must be readable.
    unsafe fn loadf(self, p: *const f32) -> Self::Float;
    /// Lane-wise sum.
    fn fadd(self, a: Self::Float, b: Self::Float) -> Self::Float;
    /// Lane-wise product.
    fn fmul(self, a: Self::Float, b: Self::Float) -> Self::Float;
    /// `a * b + c`, rounded once.
    fn fmadd(self, a: Self::Float, b: Self::Float, c: Self::Float) -> Self::Float;
    /// `c - a * b`, rounded once.
    fn fnmadd(self, a: Self::Float, b: Self::Float, c: Self::Float) -> Self::Float;
    /// The sum of the 16 lanes, as a tree: lane `i` plus lane `i + 8`, then of those
    /// eight `i` plus `i + 4`, then `i + 2`, then the last two.
    fn fsum(self, v: Self::Float) -> f32;
    /// 16 little-endian f16 values, widened (exactly).
    ///
    /// # Safety
    /// `p..p + 32` must be readable.
    unsafe fn load_f16(self, p: *const u8) -> Self::Float;
    /// Stores the first `valid` lanes (at most 16) at `p`.
    ///
    /// # Safety
    /// `p..p + valid` f32s must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::Float, valid: usize);
    /// Asks for the cache line at `p` to be fetched. `p` may point anywhere: a prefetch
    /// never faults.
    fn prefetch(self, p: *const u8);
}

/// Work to run with the lanes of the active tier: [`dispatch`] calls `run` inside a
/// function compiled with that tier's target features. `run` must be `#[inline(always)]`,
/// as must everything it calls that should get those features.
pub trait WithLanes {
    /// What the work returns.
    type Output;
    /// Does the work.
    fn run<L: Lanes>(self, lanes: L) -> Self::Output;
}

/// Runs `work` on `tier`'s lanes. Panics when the CPU lacks the tier (a tier from
/// [`Tier::active`] never does).
pub fn dispatch<W: WithLanes>(tier: Tier, work: W) -> W::Output {
    assert!(
        tier.available(),
        "the {tier} kernels do not run on this CPU"
    );
    match tier {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the tier's features (just checked).
        Tier::Avx512 => unsafe { x86::run_avx512(work) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::AvxVnni => unsafe { x86::run_avxvnni(work) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Tier::Avx2 => unsafe { x86::run_avx2(work) },
        _ => work.run(Scalar),
    }
}

/// The portable tier: plain arrays.
#[derive(Debug, Clone, Copy)]
pub struct Scalar;

impl Lanes for Scalar {
    // Eight little-endian words: whole-word logic and shifts, bytes picked out for the
    // dot products.
    type Bytes = [u64; 8];
    type Int = [i32; 16];
    type Float = [f32; 16];
    const ROWS: usize = 2;
    // Sixteen SSE registers hold four values of 16 lanes.
    const REGISTERS: usize = 4;

    #[inline(always)]
    unsafe fn load(self, p: *const u8) -> [u64; 8] {
        // SAFETY: the caller's: 64 readable bytes.
        let w = unsafe { p.cast::<[u64; 8]>().read_unaligned() };
        w.map(u64::from_le)
    }
    #[inline(always)]
    fn splat8(self, v: u8) -> [u64; 8] {
        [u64::from(v) * 0x0101_0101_0101_0101; 8]
    }
    #[inline(always)]
    fn and(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        let mut out = a;
        for i in 0..8 {
            out[i] &= b[i];
        }
        out
    }
    #[inline(always)]
    fn or(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        let mut out = a;
        for i in 0..8 {
            out[i] |= b[i];
        }
        out
    }
    #[inline(always)]
    fn shr16(self, a: [u64; 8], n: u32) -> [u64; 8] {
        // Shift whole words, then clear the bits each 16-bit lane took from its neighbour.
        let keep = u64::from(u16::MAX >> n) * 0x0001_0001_0001_0001;
        let mut out = a;
        for w in &mut out {
            *w = (*w >> n) & keep;
        }
        out
    }
    #[inline(always)]
    fn shl16(self, a: [u64; 8], n: u32) -> [u64; 8] {
        let keep = u64::from(u16::MAX << n) * 0x0001_0001_0001_0001;
        let mut out = a;
        for w in &mut out {
            *w = (*w << n) & keep;
        }
        out
    }
    #[inline(always)]
    fn or_where(self, a: [u64; 8], mask: u64, v: [u64; 8]) -> [u64; 8] {
        let mut out = a;
        for (k, w) in out.iter_mut().enumerate() {
            let bits = mask >> (8 * k);
            let mut select = 0u64;
            for j in 0..8 {
                select |= (bits >> j & 1) * (0xFF << (8 * j));
            }
            *w |= v[k] & select;
        }
        out
    }
    #[inline(always)]
    fn dot(self, acc: [i32; 16], w: [u64; 8], x: i32) -> [i32; 16] {
        // Bytes widened to i16 and multiplied in pairs summed to i32: the shape of SSE2's
        // `pmaddwd` (and NEON's widening multiply-adds).
        let x = x.to_le_bytes().map(|b| i16::from(b as i8));
        let mut bytes = [0i16; 64];
        for (k, word) in w.iter().enumerate() {
            for j in 0..8 {
                bytes[8 * k + j] = ((word >> (8 * j)) & 0xFF) as i16;
            }
        }
        let mut out = acc;
        for i in 0..16 {
            let b = &bytes[4 * i..][..4];
            let pairs = [
                i32::from(b[0]) * i32::from(x[0]) + i32::from(b[1]) * i32::from(x[1]),
                i32::from(b[2]) * i32::from(x[2]) + i32::from(b[3]) * i32::from(x[3]),
            ];
            out[i] = out[i].wrapping_add(pairs[0] + pairs[1]);
        }
        out
    }
    #[inline(always)]
    fn dot_u8(self, acc: [i32; 16], w: [u64; 8], x: i32) -> [i32; 16] {
        self.dot(acc, w, x)
    }
    #[inline(always)]
    fn zero(self) -> [i32; 16] {
        [0; 16]
    }
    #[inline(always)]
    fn splat(self, v: i32) -> [i32; 16] {
        [v; 16]
    }
    #[inline(always)]
    fn add(self, a: [i32; 16], b: [i32; 16]) -> [i32; 16] {
        let mut out = a;
        for i in 0..16 {
            out[i] = a[i].wrapping_add(b[i]);
        }
        out
    }
    #[inline(always)]
    fn sub(self, a: [i32; 16], b: [i32; 16]) -> [i32; 16] {
        let mut out = a;
        for i in 0..16 {
            out[i] = a[i].wrapping_sub(b[i]);
        }
        out
    }
    #[inline(always)]
    fn mul(self, a: [i32; 16], b: [i32; 16]) -> [i32; 16] {
        let mut out = a;
        for i in 0..16 {
            out[i] = a[i].wrapping_mul(b[i]);
        }
        out
    }
    #[inline(always)]
    unsafe fn load_u8(self, p: *const u8) -> [i32; 16] {
        // SAFETY: the caller's: 16 readable bytes.
        let b = unsafe { p.cast::<[u8; 16]>().read_unaligned() };
        b.map(i32::from)
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const u8) -> [i32; 16] {
        // SAFETY: the caller's: 16 readable bytes.
        let b = unsafe { p.cast::<[u8; 16]>().read_unaligned() };
        b.map(|v| i32::from(v as i8))
    }
    #[inline(always)]
    fn to_float(self, a: [i32; 16]) -> [f32; 16] {
        a.map(|v| v as f32)
    }
    #[inline(always)]
    fn fsplat(self, v: f32) -> [f32; 16] {
        [v; 16]
    }
    #[inline(always)]
    unsafe fn loadf(self, p: *const f32) -> [f32; 16] {
        // SAFETY: the caller's: 16 readable f32s.
        unsafe { p.cast::<[f32; 16]>().read_unaligned() }
    }
    #[inline(always)]
    fn fadd(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        let mut out = a;
        for i in 0..16 {
            out[i] = a[i] + b[i];
        }
        out
    }
    #[inline(always)]
    fn fmul(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        let mut out = a;
        for i in 0..16 {
            out[i] = a[i] * b[i];
        }
        out
    }
    #[inline(always)]
    fn fmadd(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        let mut out = c;
        for i in 0..16 {
            out[i] = a[i].mul_add(b[i], c[i]);
        }
        out
    }
    #[inline(always)]
    fn fnmadd(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        let mut out = c;
        for i in 0..16 {
            out[i] = (-a[i]).mul_add(b[i], c[i]);
        }
        out
    }
    #[inline(always)]
    fn fsum(self, v: [f32; 16]) -> f32 {
        let s8: [f32; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
        let s4: [f32; 4] = std::array::from_fn(|i| s8[i] + s8[i + 4]);
        (s4[0] + s4[2]) + (s4[1] + s4[3])
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u8) -> [f32; 16] {
        // SAFETY: the caller's: 32 readable bytes.
        let b = unsafe { p.cast::<[[u8; 2]; 16]>().read_unaligned() };
        b.map(|h| half::f16::from_le_bytes(h).to_f32())
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: [f32; 16], valid: usize) {
        let n = valid.min(16);
        // SAFETY: the caller's: `valid` writable f32s at `p`; `v` is a separate local.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, n) };
    }
    #[inline(always)]
    fn prefetch(self, _: *const u8) {}
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every operation on fixed inputs and returns all results as bits, so that two
    /// tiers can be compared whole.
    struct Exercise;

    impl WithLanes for Exercise {
        type Output = Vec<u32>;

        #[inline(always)]
        fn run<L: Lanes>(self, l: L) -> Vec<u32> {
            let bytes: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
            let f16s: Vec<u8> = (0..16)
                .flat_map(|i| half::f16::from_f32(i as f32 * 0.37 - 2.5).to_le_bytes())
                .collect();
            let mut out = Vec::new();
            let mut ints = |v: L::Int, l: L| {
                let mut f = [0f32; 16];
                // SAFETY: `f` holds 16 values.
                unsafe { l.store(f.as_mut_ptr(), l.to_float(v), 16) };
                out.extend(f.map(f32::to_bits));
            };
            // SAFETY: `bytes` holds 64 bytes and `f16s` 32.
            let (w, lo, f) = unsafe {
                (
                    l.load(bytes.as_ptr()),
                    l.load_u8(bytes.as_ptr()),
                    l.load_f16(f16s.as_ptr()),
                )
            };
            let nibbles = l.and(w, l.splat8(0x0F));
            let x = i32::from_le_bytes([0x80, 0x7F, 0xFE, 0x03]);
            ints(l.dot(l.splat(5), nibbles, x), l);
            ints(l.dot(l.zero(), l.and(l.shr16(w, 2), l.splat8(0x7F)), x), l);
            ints(l.dot_u8(l.zero(), w, x), l);
            ints(
                l.dot_u8(
                    l.zero(),
                    l.or(
                        l.shl16(w, 4),
                        l.or_where(nibbles, 0xF0F0_3C3C_8181_0FF0, l.splat8(0x10)),
                    ),
                    -x,
                ),
                l,
            );
            // SAFETY: `bytes` holds 64 bytes.
            let hi = unsafe { l.load_i8(bytes.as_ptr().add(16)) };
            ints(l.mul(l.sub(lo, hi), l.add(hi, l.splat(-7))), l);
            let g = l.fmadd(f, l.fsplat(1.0 / 3.0), l.fmul(f, f));
            let g = l.fnmadd(g, l.fsplat(0.1), f);
            out.push(l.fsum(g).to_bits());
            let mut part = [f32::NAN; 16];
            // SAFETY: `part` holds 16 values; 11 are written.
            unsafe { l.store(part.as_mut_ptr(), g, 11) };
            out.extend(part.map(f32::to_bits));
            out
        }
    }

    #[test]
    fn every_tier_computes_the_same_bits() {
        let want = dispatch(Tier::Scalar, Exercise);
        // A spot check of the scalar reference itself: lane 0 of the first dot product.
        let x = [-128i32, 127, -2, 3];
        let lane0: i32 = 5
            + (0..4)
                .map(|j| i32::from((j * 37 + 11) as u8 & 0x0F) * x[j as usize])
                .sum::<i32>();
        assert_eq!(f32::from_bits(want[0]), lane0 as f32);
        for tier in Tier::ALL {
            if !tier.available() {
                continue;
            }
            assert_eq!(dispatch(tier, Exercise), want, "{tier}");
        }
    }
}
