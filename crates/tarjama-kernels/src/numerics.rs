//! Arithmetic the GGUF and encoder-decoder runners share, written so that the compiler
//! vectorizes it: dot products in independent lanes, an `exp` for softmax and
//! activations, rounding; and the pointer their parallel loops share.

/// Lanes of the vectorized loops: one AVX-512 register of f32, two AVX2 ones.
pub const LANES: usize = 16;

/// Dot product in `LANES` independent sums, so the compiler can keep it in vector
/// registers (a single running sum would force it to add in order).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `exp(x)` to within about one ulp for the `x <= 0` that softmax feeds it (Cephes'
/// `expf`: reduction by `ln 2`, rounded to nearest even, and a degree-6 polynomial),
/// written so that a loop over it vectorizes; glibc's `expf` does not, and the 62k-wide
/// softmax of every beam row made it a tenth of a decoding step. Inputs below -87.3 (and
/// -inf) give about 1e-38.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let n = round_even(x * LOG2E);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n without a float-to-int conversion (Rust's `as` saturates, which does not
    // vectorize): adding 2^23 puts the integer n + 127 in the low mantissa bits, and the
    // shift moves it into the exponent field, dropping the rest.
    let biased = (n + (127.0 + 8_388_608.0)).to_bits();
    y * f32::from_bits(biased << 23)
}

/// `x` rounded to the nearest integer, ties to even, for `|x| < 2^22` (and NaN stays
/// NaN): the same as `f32::round_ties_even` there, but plain additions, which vectorize
/// on any x86-64 (`round_ties_even` needs SSE4.1's `roundps`, else it is a call).
#[inline(always)]
pub fn round_even(x: f32) -> f32 {
    (x + ROUNDING) - ROUNDING
}

/// `1.5 * 2^23`: added to `|x| < 2^22`, it leaves no fraction bits, so the sum is `x`
/// rounded (ties to even), held in the low bits.
const ROUNDING: f32 = 12_582_912.0;

/// `x` rounded to the nearest integer, ties to even, as an integer, for `|x| < 2^22`
/// (llama.cpp's `nearest_int`; NaN gives 0): [`round_even`]'s addition, then the integer
/// read from the low bits. Rust's `as i32` must saturate and send NaN to 0, which made
/// the conversion a branch per value: quantizing the activations was a twentieth of a
/// prefill. Outside the range the result is meaningless; callers clamp.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    ((x + ROUNDING).to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// A raw pointer parallel loops may share: their tasks write disjoint elements.
pub struct SendPtr<T>(pub *mut T);
// SAFETY: a `SendPtr` is only made for a buffer that outlives the parallel loop sharing
// it, and the loop's tasks write disjoint elements through it and never read another
// task's, so no two threads touch one element.
unsafe impl<T> Sync for SendPtr<T> {}
// SAFETY: as for `Sync`: moving the pointer to another thread gives it only its own task's
// elements of a buffer that outlives the loop.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a closure that calls this captures the whole `SendPtr`, which is
    /// `Sync`, where one that reads `.0` would capture the bare pointer, which is not).
    pub fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_even_is_round_ties_even_in_range() {
        let mut x = -4_194_303.5f32;
        while x < 4_190_000.0 {
            for v in [x, x + 0.25, x + 0.5, x + 0.75, -0.5, 0.5, 1.5, 2.5, -2.5] {
                assert_eq!(round_even(v), v.round_ties_even(), "{v}");
            }
            x += 1023.0;
        }
        for v in [127.4999, -127.5, 126.5, 0.49999997, -0.0] {
            assert_eq!(round_even(v), v.round_ties_even(), "{v}");
        }
        assert!(round_even(f32::NAN).is_nan());
    }

    #[test]
    fn nearest_int_is_round_ties_even_in_range() {
        let mut x = -4_194_303.5f32;
        while x < 4_190_000.0 {
            for v in [x, x + 0.25, x + 0.5, x + 0.75, -0.5, 0.5, 1.5, 2.5, -2.5] {
                assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
            }
            x += 1023.0;
        }
        for v in [127.4999, -127.5, 126.5, 0.49999997, -0.0, 127.00001] {
            assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
        }
        assert_eq!(nearest_int(f32::NAN), 0);
    }
}
