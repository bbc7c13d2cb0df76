//! Attention of query rows over their sequences' caches ([`SeqCache`]).
//!
//! Attention is computed per query row over the rows its position may see, one head at a
//! time and always in the same order ([`attend`]), so a row's result does not depend on
//! which other rows, of its own sequence or of others, are computed in the same step:
//! that is what makes a request's output the same alone and batched.

use crate::kv::SeqCache;
use crate::panel::SendPtr;
use tarjama_kernels::numerics::{exp_fast, LANES};
use tarjama_kernels::simd::{self, Lanes, WithLanes};

/// One query row: its heads side by side, and the positions `from..to` of `cache` it
/// attends to in `layer`.
pub(crate) struct Query<'a> {
    pub q: &'a [f32],
    pub cache: &'a SeqCache,
    pub from: usize,
    pub to: usize,
}

/// Attention of every query row over its own cached positions, every head: query head
/// `h` reads key/value head `h / (heads / kv_heads)` (grouped-query attention). Returns
/// one row of `heads * d` per query.
///
/// Each (row, key/value head) pair is one task, computed the same way whatever the other
/// tasks: the scores of the query heads sharing that key/value head, in position order,
/// a softmax, then the values summed in position order and divided by the softmax's sum
/// at the end. Keys and values come in blocks ([`BLOCK`]) read from memory once for all
/// those heads while the next block is fetched, and every sum is a fused multiply-add
/// in 16 lanes. Through tensor ops a decoding step's attention (two small batched
/// matmuls over a narrowed view of the cache, which made them copy it, a scale and a
/// softmax) cost Qwen2.5 1.5B 6.1 ms of a 31 ms step at a 600-token context. The
/// key-by-key loops that replaced them (a dot product and a sum of 16 lanes per key and
/// head, with the heads' rows a position's whole row apart) still took 14.8 ms of an
/// eight-sequence step at about 190 positions, 19% of it; these take 7.3-7.5 ms.
pub(crate) fn attend(
    queries: &[Query<'_>],
    layer: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    scale: f32,
) -> Vec<f32> {
    let rep = heads / kv_heads;
    let mut out = vec![0f32; queries.len() * heads * d];
    let ptr = SendPtr(out.as_mut_ptr());
    let keys: usize = queries.iter().map(|q| q.to - q.from).sum::<usize>() / queries.len().max(1);
    // Spread tasks over threads only when each chunk gets enough work.
    let min_tasks = (32_768 / (keys * d * rep).max(1)).max(1);
    let tier = tarjama_kernels::cpu::Tier::active();
    tarjama_kernels::runtime::parallel_chunks(queries.len() * kv_heads, min_tasks, |tasks| {
        let work = Attend {
            queries,
            tasks,
            layer,
            kv_heads,
            rep,
            d,
            scale,
            out: &ptr,
        };
        // The loops below vectorize as wide as the tier allows.
        simd::dispatch(tier, work);
    });
    out
}

/// Tasks `tasks` of [`attend`], for one thread.
struct Attend<'a> {
    queries: &'a [Query<'a>],
    tasks: std::ops::Range<usize>,
    layer: usize,
    kv_heads: usize,
    /// Query heads per key/value head.
    rep: usize,
    d: usize,
    scale: f32,
    out: &'a SendPtr<f32>,
}

impl WithLanes for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, l: L) {
        let Attend {
            queries,
            layer,
            kv_heads,
            rep,
            d,
            scale,
            ..
        } = self;
        let heads = kv_heads * rep;
        // Scores of the group's query heads, head after head, `n` each.
        let mut scores: Vec<f32> = Vec::new();
        // Their softmax sums.
        let mut sums = vec![0f32; rep];
        for task in self.tasks {
            let (r, g) = (task / kv_heads, task % kv_heads);
            let query = &queries[r];
            let n = query.to - query.from;
            let rows = query.cache.runs(layer, g, query.from, query.to);
            let keys = Rows::new([rows[0].0, rows[1].0], d);
            let values = Rows::new([rows[0].1, rows[1].1], d);
            // The first values stream in while the scores are computed.
            values.prefetch(l, 0..BLOCK);
            scores.clear();
            scores.resize(rep * n, 0.0);
            score(
                l,
                &query.q[g * rep * d..][..rep * d],
                &keys,
                n,
                d,
                scale,
                &mut scores,
            );
            for (h, sum) in sums.iter_mut().enumerate() {
                let row = &mut scores[h * n..][..n];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                // Separate passes so that each vectorizes: exp, then a lane-wise sum.
                for s in row.iter_mut() {
                    *s = exp_fast(*s - max);
                }
                *sum = lane_sum(row);
            }
            // SAFETY: the `rep * d` outputs of row r's heads g*rep.. are written by this
            // task only, and `out` outlives the parallel loop.
            let o = unsafe {
                std::slice::from_raw_parts_mut(self.out.0.add((r * heads + g * rep) * d), rep * d)
            };
            weigh(l, &scores, &sums, &values, n, d, o);
        }
    }
}

/// One key/value head's keys (or values) of a query's positions: rows of `d` values in
/// at most two runs (a shared prefix's, then the sequence's own).
struct Rows<'a> {
    runs: [&'a [f32]; 2],
    d: usize,
    /// Rows in the first run.
    first: usize,
}

impl<'a> Rows<'a> {
    fn new(runs: [&'a [f32]; 2], d: usize) -> Self {
        let first = runs[0].len() / d;
        Rows { runs, d, first }
    }

    /// Asks for rows `range` (those that exist) to be fetched into the cache.
    #[inline(always)]
    fn prefetch<L: Lanes>(&self, l: L, range: std::ops::Range<usize>) {
        let first = self.first;
        for (run, range) in [
            (self.runs[0], range.start.min(first)..range.end.min(first)),
            (
                self.runs[1],
                range.start.max(first) - first..range.end.max(first) - first,
            ),
        ] {
            let bytes = run.get(range.start * self.d..(range.end * self.d).min(run.len()));
            for line in bytes.unwrap_or(&[]).chunks(LANES) {
                l.prefetch(line.as_ptr().cast());
            }
        }
    }

    /// Row `i`, in position order.
    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f32] {
        let (run, i) = if i < self.first {
            (self.runs[0], i)
        } else {
            (self.runs[1], i - self.first)
        };
        &run[i * self.d..][..self.d]
    }

    /// The block of rows from `b0` (of `n`) into `block`, while the next block is
    /// fetched; returns how many rows it holds.
    #[inline(always)]
    fn block<L: Lanes>(&self, l: L, b0: usize, n: usize, block: &mut [&'a [f32]; BLOCK]) -> usize {
        let m = BLOCK.min(n - b0);
        for (i, row) in block[..m].iter_mut().enumerate() {
            *row = self.row(b0 + i);
        }
        self.prefetch(l, b0 + BLOCK..b0 + 2 * BLOCK);
        m
    }
}

/// Keys (or values) a kernel takes per block: read from memory once, then from the
/// first-level cache for every head of the group (32 KB at 128 values a head).
const BLOCK: usize = 64;

/// The scaled dot products of each query head of `q` (`d` values each, side by side)
/// with every key, into `scores` (head after head, `n` each). Each dot product sums 16
/// lanes of fused multiply-adds over the head's values in order, then the lanes
/// ([`Lanes::fsum`]), then the products of a last partial chunk in order. Keys in blocks
/// (see [`BLOCK`]), four at a time for each head.
#[inline(always)]
fn score<L: Lanes>(
    l: L,
    q: &[f32],
    keys: &Rows<'_>,
    n: usize,
    d: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let (heads, chunks) = (q.len() / d, d / LANES);
    let mut block = [&[][..]; BLOCK];
    for b0 in (0..n).step_by(BLOCK) {
        let m = keys.block(l, b0, n, &mut block);
        for h in 0..heads {
            let qh = &q[h * d..][..d];
            let out = &mut scores[h * n + b0..][..m];
            let mut i = 0;
            while i < m {
                // Four keys (or fewer at the end: the missing ones repeat the last).
                let k: [&[f32]; 4] = std::array::from_fn(|j| block[(i + j).min(m - 1)]);
                let mut acc = [l.fsplat(0.0); 4];
                for c in 0..chunks {
                    // SAFETY: chunk c lies inside every row of d values.
                    unsafe {
                        let at = c * LANES;
                        let x = l.loadf(qh.as_ptr().add(at));
                        for j in 0..4 {
                            acc[j] = l.fmadd(x, l.loadf(k[j].as_ptr().add(at)), acc[j]);
                        }
                    }
                }
                for j in 0..4.min(m - i) {
                    let mut tail = 0f32;
                    for t in chunks * LANES..d {
                        tail += qh[t] * k[j][t];
                    }
                    out[i + j] = (l.fsum(acc[j]) + tail) * scale;
                }
                i += 4;
            }
        }
    }
}

/// `o` for the query heads of `p` (their softmax numerators, `n` a head, side by side):
/// the weights times the values, summed in position order with fused multiply-adds,
/// then divided by each head's sum in `sums`. Values in blocks (see [`BLOCK`]); for each
/// head, up to eight chunks of 16 outputs at a time, their sums in registers.
#[inline(always)]
fn weigh<L: Lanes>(
    l: L,
    p: &[f32],
    sums: &[f32],
    values: &Rows<'_>,
    n: usize,
    d: usize,
    o: &mut [f32],
) {
    let heads = sums.len();
    let chunks = d / LANES;
    let mut block = [&[][..]; BLOCK];
    for b0 in (0..n).step_by(BLOCK) {
        let m = values.block(l, b0, n, &mut block);
        let block = &block[..m];
        for h in 0..heads {
            let (ph, oh) = (&p[h * n + b0..][..m], &mut o[h * d..][..d]);
            let first = b0 == 0;
            let mut c0 = 0;
            while c0 < chunks {
                c0 += match chunks - c0 {
                    8.. => weigh_chunks::<L, 8>(l, ph, block, c0, first, oh),
                    4.. => weigh_chunks::<L, 4>(l, ph, block, c0, first, oh),
                    2.. => weigh_chunks::<L, 2>(l, ph, block, c0, first, oh),
                    _ => weigh_chunks::<L, 1>(l, ph, block, c0, first, oh),
                };
            }
            for t in chunks * LANES..d {
                let mut s = if first { 0.0 } else { oh[t] };
                for (w, v) in ph.iter().zip(block) {
                    s += w * v[t];
                }
                oh[t] = s;
            }
        }
    }
    for (h, &sum) in sums.iter().enumerate() {
        let inv = 1.0 / sum;
        for o in o[h * d..][..d].iter_mut() {
            *o *= inv;
        }
    }
}

/// `C` chunks of 16 sums from chunk `c0` of one head's output `o`: from zero when
/// `first`, else from what `o` holds, plus each weight of `p` times its row of `rows`.
/// Returns `C`.
#[inline(always)]
fn weigh_chunks<L: Lanes, const C: usize>(
    l: L,
    p: &[f32],
    rows: &[&[f32]],
    c0: usize,
    first: bool,
    o: &mut [f32],
) -> usize {
    let o = &mut o[c0 * LANES..][..C * LANES];
    let mut acc = [l.fsplat(0.0); C];
    if !first {
        for (c, a) in acc.iter_mut().enumerate() {
            // SAFETY: chunk c lies inside `o`.
            *a = unsafe { l.loadf(o.as_ptr().add(c * LANES)) };
        }
    }
    for (&w, v) in p.iter().zip(rows) {
        let v = &v[c0 * LANES..][..C * LANES];
        let w = l.fsplat(w);
        for (c, a) in acc.iter_mut().enumerate() {
            // SAFETY: chunk c lies inside `v`.
            *a = l.fmadd(w, unsafe { l.loadf(v.as_ptr().add(c * LANES)) }, *a);
        }
    }
    for (c, a) in acc.iter().enumerate() {
        // SAFETY: chunk c lies inside `o`.
        unsafe { l.store(o.as_mut_ptr().add(c * LANES), *a, LANES) };
    }
    C
}

/// Sum of `xs` in [`LANES`] independent lanes (vectorizes; the order is fixed by the
/// length alone).
#[inline(always)]
fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::{Device, Tensor};

    use super::*;
    use crate::kv::testing::vals;

    /// Reference attention through candle's tensor ops: one query row at position
    /// `pos` over keys `from..=pos`.
    fn reference(
        q: &[f32],
        cache: &SeqCache,
        heads: usize,
        kv_heads: usize,
        d: usize,
        from: usize,
        to: usize,
    ) -> Vec<f32> {
        let dev = Device::Cpu;
        let (kt, vt) = cache.tensors(0, &dev).unwrap();
        let (kt, vt) = (
            kt.narrow(2, from, to - from).unwrap(),
            vt.narrow(2, from, to - from).unwrap(),
        );
        let qt = Tensor::from_slice(q, (1, kv_heads, heads / kv_heads, d), &dev).unwrap();
        let att = (qt.matmul(&kt.t().unwrap()).unwrap() * 0.3).unwrap();
        let att = candle_nn::ops::softmax_last_dim(&att).unwrap();
        att.matmul(&vt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn attention_matches_tensor_attention() {
        // 4 query heads over 2 key/value heads (grouped); heads of 8 values, of 32 (two
        // 16-lane chunks in the dot products) and of 40 (two and a part); 7 positions,
        // and 70 (blocks of keys, and four keys at a time, with a remainder); all keys, and
        // a window.
        for (d, len) in [(8, 7), (32, 7), (40, 7), (32, 70), (40, 70)] {
            let (heads, kv_heads) = (4, 2);
            let w = kv_heads * d;
            let mut cache = SeqCache::new(1, kv_heads, d);
            cache.append(0, &vals(len * w, 0.1), &vals(len * w, 0.7));
            cache.commit(len);
            let q = vals(heads * d, 1.9);
            for from in [0, 4] {
                let query = Query {
                    q: &q,
                    cache: &cache,
                    from,
                    to: len,
                };
                let got = attend(&[query], 0, heads, kv_heads, d, 0.3);
                let want = reference(&q, &cache, heads, kv_heads, d, from, len);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-5,
                        "d {d}, len {len}, from {from}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_row_is_the_same_alone_and_among_others() {
        let (heads, kv_heads, d, len) = (4, 2, 16, 70);
        let w = kv_heads * d;
        let mut a = SeqCache::new(1, kv_heads, d);
        a.append(0, &vals(len * w, 0.1), &vals(len * w, 0.7));
        a.commit(len);
        let mut b = SeqCache::new(1, kv_heads, d);
        b.append(0, &vals(9 * w, 2.1), &vals(9 * w, 1.7));
        b.commit(9);
        let qs: Vec<Vec<f32>> = (0..6).map(|i| vals(heads * d, i as f32)).collect();
        let alone = attend(
            &[Query {
                q: &qs[0],
                cache: &a,
                from: 0,
                to: len,
            }],
            0,
            heads,
            kv_heads,
            d,
            0.3,
        );
        let mut many: Vec<Query> = (1..6)
            .map(|i| Query {
                q: &qs[i],
                cache: if i % 2 == 0 { &a } else { &b },
                from: 0,
                to: if i % 2 == 0 { len - i } else { 9 },
            })
            .collect();
        many.insert(
            3,
            Query {
                q: &qs[0],
                cache: &a,
                from: 0,
                to: len,
            },
        );
        let together = attend(&many, 0, heads, kv_heads, d, 0.3);
        let row = &together[3 * heads * d..][..heads * d];
        assert!(alone
            .iter()
            .zip(row)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn attention_over_a_shared_prefix_equals_attention_over_the_flat_cache() {
        // 70 positions, the first 45 (not a multiple of the block or of four) from a
        // frozen prefix: every block that crosses into the sequence's own rows must read
        // the same values in the same order.
        let (heads, kv_heads, d, len, plen) = (4, 2, 32, 70, 45);
        let w = kv_heads * d;
        let (k, v) = (vals(len * w, 0.3), vals(len * w, 1.1));
        let mut flat = SeqCache::new(1, kv_heads, d);
        flat.append(0, &k, &v);
        flat.commit(len);
        let mut shared = SeqCache::with_prefix(Arc::new(flat.freeze(plen)), plen);
        shared.append(0, &k[plen * w..], &v[plen * w..]);
        shared.commit(len - plen);
        let q = vals(heads * d, 2.7);
        for from in [0, 10, 50] {
            let query = |cache| Query {
                q: &q,
                cache,
                from,
                to: len,
            };
            let a = attend(&[query(&flat)], 0, heads, kv_heads, d, 0.3);
            let b = attend(&[query(&shared)], 0, heads, kv_heads, d, 0.3);
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "from {from}"
            );
        }
    }
}
