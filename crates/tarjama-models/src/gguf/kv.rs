//! The keys and values of one sequence, and attention over them.
//!
//! A [`SeqCache`] holds, for every layer, one row of keys and one of values per position
//! (`kv_heads * head_dim` values each, heads side by side). Many sequences decode in one
//! step by each bringing its own cache; a prompt prefix that many sequences start with
//! (system prompt, instructions) is computed once, frozen, and shared read-only by every
//! sequence that starts with it ([`SeqCache::with_prefix`]).
//!
//! Attention is computed per query row over the rows its position may see, one head at a
//! time and always in the same order ([`attend`]), so a row's result does not depend on
//! which other rows, of its own sequence or of others, are computed in the same step:
//! that is what makes a request's output the same alone and batched.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::panel::SendPtr;
use crate::numerics::{dot, exp_fast, LANES};
use crate::simd::{self, Lanes, WithLanes};
use crate::Result;

/// One layer's rows.
#[derive(Debug, Default, Clone)]
struct LayerRows {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// The keys and values of one sequence's positions, every layer.
#[derive(Debug, Clone)]
pub struct SeqCache {
    /// Positions `0..plen` are read from this frozen cache (which has no prefix itself).
    prefix: Option<Arc<SeqCache>>,
    plen: usize,
    /// Positions `plen..len`, per layer.
    layers: Vec<LayerRows>,
    len: usize,
    /// Values per row (`kv_heads * head_dim`).
    width: usize,
}

impl SeqCache {
    /// An empty cache for `layers` layers of rows `width` wide.
    pub fn new(layers: usize, width: usize) -> Self {
        SeqCache {
            prefix: None,
            plen: 0,
            layers: vec![LayerRows::default(); layers],
            len: 0,
            width,
        }
    }

    /// A cache whose first `plen` positions are those of `prefix`, shared, not copied.
    /// `plen` is cut to what `prefix` holds.
    pub fn with_prefix(prefix: Arc<SeqCache>, plen: usize) -> Self {
        let mut c = SeqCache::new(prefix.layers.len(), prefix.width);
        // Shared prefixes are flat: a cache with a prefix of its own shares that one, or
        // is flattened first.
        let plen = plen.min(prefix.len);
        let prefix = match &prefix.prefix {
            None => prefix,
            Some(p) if plen <= prefix.plen => p.clone(),
            Some(_) => Arc::new(prefix.freeze(plen)),
        };
        c.plen = plen;
        c.len = plen;
        c.prefix = (plen > 0).then_some(prefix);
        c
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions read from a shared prefix.
    pub fn shared_len(&self) -> usize {
        self.plen
    }

    /// Bytes of the rows this cache holds itself (a shared prefix is not counted).
    pub fn own_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.k.capacity() + l.v.capacity()) * 4)
            .sum()
    }

    /// Bytes one position takes over all layers.
    pub fn bytes_per_position(&self) -> usize {
        self.layers.len() * 2 * self.width * 4
    }

    /// Makes room for `positions` more positions at once (a request's prompt and longest
    /// answer), instead of growing by doubling.
    pub fn reserve(&mut self, positions: usize) {
        for l in &mut self.layers {
            l.k.reserve_exact(positions * self.width);
            l.v.reserve_exact(positions * self.width);
        }
    }

    /// Cuts the cache back to its first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if len <= self.plen {
            self.plen = len;
            if len == 0 {
                self.prefix = None;
            }
        }
        let own = (len - self.plen) * self.width;
        for l in &mut self.layers {
            l.k.truncate(own);
            l.v.truncate(own);
        }
        self.len = len;
    }

    /// A flat copy of the first `len` positions, for sharing as a prefix.
    pub fn freeze(&self, len: usize) -> SeqCache {
        let len = len.min(self.len);
        let w = self.width;
        let layers = (0..self.layers.len())
            .map(|l| {
                let mut rows = LayerRows {
                    k: Vec::with_capacity(len * w),
                    v: Vec::with_capacity(len * w),
                };
                for j in 0..len {
                    let (k, v) = self.row(l, j);
                    rows.k.extend_from_slice(k);
                    rows.v.extend_from_slice(v);
                }
                rows
            })
            .collect();
        SeqCache {
            prefix: None,
            plen: 0,
            layers,
            len,
            width: w,
        }
    }

    /// Appends `n` rows of keys and values (row-major, `width` each) to `layer`, after
    /// the `len()` positions already committed; [`SeqCache::commit`] makes them count once
    /// every layer has its rows. Rows a failed step left behind are dropped first.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let own = (self.len - self.plen) * self.width;
        let l = &mut self.layers[layer];
        l.k.truncate(own);
        l.v.truncate(own);
        l.k.extend_from_slice(k);
        l.v.extend_from_slice(v);
    }

    /// Counts `n` appended positions.
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Positions `layer` holds, committed or not.
    fn rows_in(&self, layer: usize) -> usize {
        self.plen + self.layers[layer].k.len() / self.width.max(1)
    }

    /// The key and value rows of position `j` in `layer`.
    fn row(&self, layer: usize, j: usize) -> (&[f32], &[f32]) {
        let w = self.width;
        let (src, j) = match &self.prefix {
            Some(p) if j < self.plen => (&p.layers[layer], j),
            _ => (&self.layers[layer], j - self.plen),
        };
        (&src.k[j * w..][..w], &src.v[j * w..][..w])
    }

    /// The keys and values of positions `0..rows_in(layer)` as tensors of shape
    /// `(1, kv_heads, len, head_dim)`, for attention through tensor ops.
    pub(crate) fn tensors(
        &self,
        layer: usize,
        kv_heads: usize,
        d: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let len = self.rows_in(layer);
        let (mut k, mut v) = (
            Vec::with_capacity(len * self.width),
            Vec::with_capacity(len * self.width),
        );
        for j in 0..len {
            let (kr, vr) = self.row(layer, j);
            k.extend_from_slice(kr);
            v.extend_from_slice(vr);
        }
        let t = |xs: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(xs, (1, len, kv_heads, d), device)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        Ok((t(k)?, t(v)?))
    }
}

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
/// tasks: the scores of the query heads sharing that key/value head, key by key in
/// position order (each key row read once for all of them), a softmax, then the values
/// summed in position order and divided by the softmax's sum at the end. Through tensor
/// ops a decoding step's attention (two small batched matmuls over a narrowed view of the
/// cache, which made them copy it, a scale and a softmax) cost Qwen2.5 1.5B 6.1 ms of a
/// 31 ms step at a 600-token context.
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
    let tier = crate::cpu::Tier::active();
    crate::runtime::parallel_chunks(queries.len() * kv_heads, min_tasks, |tasks| {
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
    fn run<L: Lanes>(self, _: L) {
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
            scores.clear();
            scores.resize(rep * n, 0.0);
            for (i, j) in (query.from..query.to).enumerate() {
                let (k, _) = query.cache.row(layer, j);
                let k = &k[g * d..][..d];
                for h in 0..rep {
                    let qh = &query.q[(g * rep + h) * d..][..d];
                    scores[h * n + i] = dot(qh, k) * scale;
                }
            }
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
            for (i, j) in (query.from..query.to).enumerate() {
                let (_, v) = query.cache.row(layer, j);
                let v = &v[g * d..][..d];
                for h in 0..rep {
                    let p = scores[h * n + i];
                    for (o, &x) in o[h * d..][..d].iter_mut().zip(v) {
                        *o += p * x;
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
    }
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
    use super::*;

    fn vals(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.37 + seed).sin() * 1.3)
            .collect()
    }

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
        let (kt, vt) = cache.tensors(0, kv_heads, d, &dev).unwrap();
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
        // 4 query heads over 2 key/value heads (grouped), 7 positions; heads of 8 values
        // and of 32 (two 16-lane chunks in the dot products); all keys, and a window.
        for d in [8, 32] {
            let (heads, kv_heads, len) = (4, 2, 7);
            let w = kv_heads * d;
            let mut cache = SeqCache::new(1, w);
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
                    assert!((g - w).abs() < 1e-5, "d {d}, from {from}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn a_row_is_the_same_alone_and_among_others() {
        let (heads, kv_heads, d, len) = (4, 2, 16, 40);
        let w = kv_heads * d;
        let mut a = SeqCache::new(1, w);
        a.append(0, &vals(len * w, 0.1), &vals(len * w, 0.7));
        a.commit(len);
        let mut b = SeqCache::new(1, w);
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
    fn a_shared_prefix_reads_as_its_own_rows() {
        let w = 8;
        let mut full = SeqCache::new(2, w);
        for l in 0..2 {
            full.append(l, &vals(10 * w, l as f32), &vals(10 * w, 3.0 + l as f32));
        }
        full.commit(10);
        let frozen = Arc::new(full.freeze(6));
        assert_eq!(frozen.len(), 6);
        let mut shared = SeqCache::with_prefix(frozen.clone(), 4);
        assert_eq!((shared.len(), shared.shared_len()), (4, 4));
        for l in 0..2 {
            let (k, v) = (full.row(l, 4).0.to_vec(), full.row(l, 4).1.to_vec());
            let (k2, v2) = (full.row(l, 5).0.to_vec(), full.row(l, 5).1.to_vec());
            shared.append(l, &[k, k2].concat(), &[v, v2].concat());
        }
        shared.commit(2);
        for l in 0..2 {
            for j in 0..6 {
                assert_eq!(shared.row(l, j), full.row(l, j), "layer {l} position {j}");
            }
        }
        assert!(shared.own_bytes() > 0);
        // Cutting back into the prefix, then growing again.
        shared.truncate(3);
        assert_eq!((shared.len(), shared.shared_len()), (3, 3));
        assert_eq!(shared.row(1, 2), full.row(1, 2));
        let copy = shared.freeze(3);
        assert_eq!(copy.shared_len(), 0);
        assert_eq!(copy.row(0, 2), full.row(0, 2));
        shared.truncate(0);
        assert!(shared.is_empty() && shared.prefix.is_none());
    }
}
