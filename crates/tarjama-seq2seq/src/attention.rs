//! Attention on plain buffers (the encoder's and the decoder's), and the vectorizable
//! arithmetic beam search needs.
//!
//! A decoding step attends one query per row over a few dozen cached keys. Done with
//! tensor ops (split heads, a batched matmul per head, mask, softmax, a second matmul,
//! merge heads) each of those is a pass over memory plus an allocation, and together they
//! cost several times the step's projections. Here one pass per query row computes the
//! scores, the softmax and the weighted sum of values, reading each key and value once,
//! with rows spread over rayon's threads.
//!
//! Keys and values are rows of width `d_model` (all heads side by side, as the
//! projections produce them) in one buffer; a query names the rows it may see by index
//! ("slots"). That makes the beam-search cache append-only: a beam that takes over
//! another's history takes over its list of slots, and no key or value is ever copied.

use rayon::prelude::*;

pub(crate) use tarjama_kernels::numerics::{dot, exp_fast, LANES};

/// `out = softmax(scale * q . k_j) . v_j` over the key rows `slots`, all heads at once:
/// each key and value row (`d` values, heads side by side) is read once, in order.
/// `scratch` is reused between calls.
#[allow(clippy::too_many_arguments)]
fn attend_one(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    heads: usize,
    scale: f32,
    slots: &[u32],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = q.len();
    let hd = d / heads;
    scratch.clear();
    scratch.resize((slots.len() + 2) * heads, 0.0);
    // Per head: running max, then sum of exponentials; then `heads` scores per key.
    let (stats, scores) = scratch.split_at_mut(2 * heads);
    let (max, sums) = stats.split_at_mut(heads);
    max.fill(f32::NEG_INFINITY);
    for (s, &slot) in scores.chunks_exact_mut(heads).zip(slots) {
        let key = &k[slot as usize * d..][..d];
        for (h, (qh, kh)) in q.chunks_exact(hd).zip(key.chunks_exact(hd)).enumerate() {
            s[h] = dot(qh, kh) * scale;
            max[h] = max[h].max(s[h]);
        }
    }
    for s in scores.chunks_exact_mut(heads) {
        for h in 0..heads {
            s[h] = exp_fast(s[h] - max[h]);
            sums[h] += s[h];
        }
    }
    out.fill(0.0);
    for (p, &slot) in scores.chunks_exact(heads).zip(slots) {
        let value = &v[slot as usize * d..][..d];
        for (h, (oh, vh)) in out
            .chunks_exact_mut(hd)
            .zip(value.chunks_exact(hd))
            .enumerate()
        {
            let p = p[h] / sums[h];
            for (o, &x) in oh.iter_mut().zip(vh) {
                *o += p * x;
            }
        }
    }
}

/// Attention of every query row of `q` (rows of `d` values) over the key/value rows that
/// `slots(row)` names; returns the outputs, rows of `d` values, heads concatenated as
/// `out_proj` expects them. A query with no keys gets zeros.
pub(crate) fn attend<'a, F>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: usize,
    heads: usize,
    scale: f32,
    slots: F,
) -> Vec<f32>
where
    F: Fn(usize) -> &'a [u32] + Sync,
{
    let mut out = vec![0f32; q.len()];
    out.par_chunks_mut(d)
        .enumerate()
        .for_each_init(Vec::new, |scores, (row, o)| {
            let keys = slots(row);
            if !keys.is_empty() {
                let q = &q[row * d..(row + 1) * d];
                attend_one(q, k, v, heads, scale, keys, scores, o);
            }
        });
    out
}

/// `log(sum(exp(row)))`, computed stably; `-inf` for an empty or all `-inf` row.
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut max = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        for i in 0..LANES {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    max = lanes.iter().fold(max, |m, &x| m.max(x));
    if max == f32::NEG_INFINITY || max.is_nan() {
        return max;
    }
    let mut sums = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| exp_fast(x - max)).sum();
    for c in chunks {
        for i in 0..LANES {
            sums[i] += exp_fast(c[i] - max);
        }
    }
    max + (sums.iter().sum::<f32>() + tail).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_matches_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_fast(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_3;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp_fast(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp_fast(0.0), 1.0);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let row: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 30.0).collect();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want = max as f64
            + row
                .iter()
                .map(|&x| ((x - max) as f64).exp())
                .sum::<f64>()
                .ln();
        assert!((log_sum_exp(&row) as f64 - want).abs() < 1e-5);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[1e4, f32::NEG_INFINITY]), 1e4);
    }

    #[test]
    fn attention_matches_direct_softmax() {
        // Two heads of width 3, three keys; the query sees keys 2 and 0 only.
        let d = 6;
        let k: Vec<f32> = (0..18).map(|i| (i as f32 * 0.7).cos()).collect();
        let v: Vec<f32> = (0..18).map(|i| (i as f32 * 0.3).sin()).collect();
        let q: Vec<f32> = (0..6).map(|i| i as f32 * 0.25 - 0.5).collect();
        let slots = [2u32, 0];
        let got = attend(&q, &k, &v, d, 2, 0.5, |_| &slots[..]);
        for h in 0..2 {
            let s: Vec<f32> = slots
                .iter()
                .map(|&j| {
                    (0..3)
                        .map(|c| q[h * 3 + c] * k[j as usize * d + h * 3 + c])
                        .sum::<f32>()
                        * 0.5
                })
                .collect();
            let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for c in 0..3 {
                let want: f32 = slots
                    .iter()
                    .zip(&e)
                    .map(|(&j, &p)| p / z * v[j as usize * d + h * 3 + c])
                    .sum();
                assert!((got[h * 3 + c] - want).abs() < 1e-6);
            }
        }
        let none: [u32; 0] = [];
        assert_eq!(attend(&q, &k, &v, d, 2, 0.5, |_| &none[..]), vec![0.0; 6]);
    }
}
