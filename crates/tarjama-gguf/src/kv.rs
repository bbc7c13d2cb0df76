//! The keys and values of one sequence.
//!
//! A [`SeqCache`] holds, for every layer and key/value head, one row of keys and one of
//! values per position (`head_dim` values each). Many sequences decode in one
//! step by each bringing its own cache; a prompt prefix that many sequences start with
//! (system prompt, instructions) is computed once, frozen, and shared read-only by every
//! sequence that starts with it ([`SeqCache::with_prefix`]). Attention over the cache is
//! computed in the crate's `attend` module.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::Result;
use tarjama_kernels::numerics::LANES;

/// f32 values from a 64-byte boundary (a cache line, one vector of 16 lanes), so that in
/// rows of a multiple of 16 values every row starts a line and no load splits across two.
#[derive(Debug, Default, Clone)]
struct Aligned {
    lines: Vec<Line>,
    /// Values held.
    len: usize,
}

#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
struct Line([f32; LANES]);

impl Aligned {
    fn as_slice(&self) -> &[f32] {
        // SAFETY: the lines are plain f32s, contiguous, and hold at least `len` of them.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }

    fn extend_from_slice(&mut self, xs: &[f32]) {
        let end = self.len + xs.len();
        let lines = end.div_ceil(LANES);
        if lines > self.lines.len() {
            self.lines.resize(lines, Line([0.0; LANES]));
        }
        // SAFETY: as in `as_slice`; the lines now hold `lines * LANES` values, and
        // `&mut self` makes this the only view of them.
        let all = unsafe {
            std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), lines * LANES)
        };
        all[self.len..end].copy_from_slice(xs);
        self.len = end;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn reserve_exact(&mut self, more: usize) {
        let lines = (self.len + more).div_ceil(LANES);
        self.lines
            .reserve_exact(lines.saturating_sub(self.lines.len()));
    }

    /// Bytes allocated.
    fn bytes(&self) -> usize {
        self.lines.capacity() * std::mem::size_of::<Line>()
    }
}

/// One layer's keys and values, a buffer per key/value head: its rows of `head_dim`
/// values one after another, so that attention, which reads one head's rows for a
/// position after another, reads each buffer in order. (With the heads of a position
/// side by side instead, one head's rows lay a whole row apart, and that stride mapped
/// them onto half the sets of a core's first-level cache: Qwen2.5 1.5B's attention read
/// its values at a third of the speed of consecutive rows.)
#[derive(Debug, Default, Clone)]
struct LayerRows {
    k: Vec<Aligned>,
    v: Vec<Aligned>,
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
    kv_heads: usize,
    /// Values per head and position.
    head_dim: usize,
}

impl SeqCache {
    /// An empty cache for `layers` layers of `kv_heads` heads of `head_dim` values.
    pub fn new(layers: usize, kv_heads: usize, head_dim: usize) -> Self {
        let heads = LayerRows {
            k: vec![Aligned::default(); kv_heads],
            v: vec![Aligned::default(); kv_heads],
        };
        SeqCache {
            prefix: None,
            plen: 0,
            layers: vec![heads; layers],
            len: 0,
            kv_heads,
            head_dim,
        }
    }

    /// A cache whose first `plen` positions are those of `prefix`, shared, not copied.
    /// `plen` is cut to what `prefix` holds.
    pub fn with_prefix(prefix: Arc<SeqCache>, plen: usize) -> Self {
        let mut c = SeqCache::new(prefix.layers.len(), prefix.kv_heads, prefix.head_dim);
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
            .flat_map(|l| l.k.iter().chain(&l.v))
            .map(Aligned::bytes)
            .sum()
    }

    /// Bytes one position takes over all layers.
    pub fn bytes_per_position(&self) -> usize {
        self.layers.len() * 2 * self.width() * 4
    }

    /// Values of one position in one layer (`kv_heads * head_dim`).
    fn width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Makes room for `positions` more positions at once (a request's prompt and longest
    /// answer), instead of growing by doubling.
    pub fn reserve(&mut self, positions: usize) {
        for head in self
            .layers
            .iter_mut()
            .flat_map(|l| l.k.iter_mut().chain(&mut l.v))
        {
            head.reserve_exact(positions * self.head_dim);
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
        let own = (len - self.plen) * self.head_dim;
        for head in self
            .layers
            .iter_mut()
            .flat_map(|l| l.k.iter_mut().chain(&mut l.v))
        {
            head.truncate(own);
        }
        self.len = len;
    }

    /// A flat copy of the first `len` positions, for sharing as a prefix.
    pub fn freeze(&self, len: usize) -> SeqCache {
        let len = len.min(self.len);
        let mut copy = SeqCache::new(self.layers.len(), self.kv_heads, self.head_dim);
        for (l, rows) in copy.layers.iter_mut().enumerate() {
            for g in 0..self.kv_heads {
                let (k, v) = (&mut rows.k[g], &mut rows.v[g]);
                k.reserve_exact(len * self.head_dim);
                v.reserve_exact(len * self.head_dim);
                for (kr, vr) in self.runs(l, g, 0, len) {
                    k.extend_from_slice(kr);
                    v.extend_from_slice(vr);
                }
            }
        }
        copy.len = len;
        copy
    }

    /// Appends rows of keys and values (row-major, `kv_heads * head_dim` each, heads
    /// side by side) to `layer`, after the `len()` positions already committed;
    /// [`SeqCache::commit`] makes them count once every layer has its rows. Rows a failed
    /// step left behind are dropped first.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let (d, w) = (self.head_dim, self.width());
        let own = (self.len - self.plen) * d;
        let l = &mut self.layers[layer];
        for (g, (kh, vh)) in l.k.iter_mut().zip(&mut l.v).enumerate() {
            kh.truncate(own);
            vh.truncate(own);
            for (kr, vr) in k.chunks_exact(w).zip(v.chunks_exact(w)) {
                kh.extend_from_slice(&kr[g * d..][..d]);
                vh.extend_from_slice(&vr[g * d..][..d]);
            }
        }
    }

    /// Counts `n` appended positions.
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Positions `layer` holds, committed or not.
    fn rows_in(&self, layer: usize) -> usize {
        let own = self.layers[layer].k.first().map_or(0, |h| h.len);
        self.plen + own / self.head_dim.max(1)
    }

    /// Head `g`'s keys and values of positions `from..to` in `layer`, as at most two
    /// runs of consecutive rows of `head_dim` values: the shared prefix's, then this
    /// cache's own.
    pub(crate) fn runs(
        &self,
        layer: usize,
        g: usize,
        from: usize,
        to: usize,
    ) -> [(&[f32], &[f32]); 2] {
        let d = self.head_dim;
        let in_prefix = from.min(self.plen)..to.min(self.plen);
        let prefix = match &self.prefix {
            Some(p) if !in_prefix.is_empty() => {
                let rows = &p.layers[layer];
                let span = in_prefix.start * d..in_prefix.end * d;
                (
                    &rows.k[g].as_slice()[span.clone()],
                    &rows.v[g].as_slice()[span],
                )
            }
            _ => (&[][..], &[][..]),
        };
        let own = &self.layers[layer];
        let span = (from.max(self.plen) - self.plen) * d..(to.max(self.plen) - self.plen) * d;
        [
            prefix,
            (
                &own.k[g].as_slice()[span.clone()],
                &own.v[g].as_slice()[span],
            ),
        ]
    }

    /// The keys and values of positions `0..rows_in(layer)` as tensors of shape
    /// `(1, kv_heads, len, head_dim)`, for attention through tensor ops.
    pub(crate) fn tensors(&self, layer: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let len = self.rows_in(layer);
        let (mut k, mut v) = (
            Vec::with_capacity(len * self.width()),
            Vec::with_capacity(len * self.width()),
        );
        for g in 0..self.kv_heads {
            for (kr, vr) in self.runs(layer, g, 0, len) {
                k.extend_from_slice(kr);
                v.extend_from_slice(vr);
            }
        }
        let shape = (1, self.kv_heads, len, self.head_dim);
        let t = |xs: Vec<f32>| Tensor::from_vec(xs, shape, device);
        Ok((t(k)?, t(v)?))
    }
}

/// What the tests of the cache and of attention over it share.
#[cfg(test)]
pub(crate) mod testing {
    /// `n` test values, from `seed`.
    pub(crate) fn vals(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.37 + seed).sin() * 1.3)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::vals;
    use super::*;

    impl SeqCache {
        /// The key and value rows of position `j` in `layer`, heads side by side.
        fn row(&self, layer: usize, j: usize) -> (Vec<f32>, Vec<f32>) {
            let (mut k, mut v) = (Vec::new(), Vec::new());
            for g in 0..self.kv_heads {
                for (kr, vr) in self.runs(layer, g, j, j + 1) {
                    k.extend_from_slice(kr);
                    v.extend_from_slice(vr);
                }
            }
            (k, v)
        }
    }

    #[test]
    fn a_shared_prefix_reads_as_its_own_rows() {
        // Two heads of four values.
        let w = 8;
        let mut full = SeqCache::new(2, 2, 4);
        for l in 0..2 {
            full.append(l, &vals(10 * w, l as f32), &vals(10 * w, 3.0 + l as f32));
        }
        full.commit(10);
        let frozen = Arc::new(full.freeze(6));
        assert_eq!(frozen.len(), 6);
        let mut shared = SeqCache::with_prefix(frozen.clone(), 4);
        assert_eq!((shared.len(), shared.shared_len()), (4, 4));
        for l in 0..2 {
            let ((k, v), (k2, v2)) = (full.row(l, 4), full.row(l, 5));
            shared.append(l, &[k, k2].concat(), &[v, v2].concat());
        }
        shared.commit(2);
        for l in 0..2 {
            for j in 0..6 {
                assert_eq!(shared.row(l, j), full.row(l, j), "layer {l} position {j}");
                // Heads side by side, as appended.
                let (k, _) = full.row(l, j);
                assert_eq!(k, vals(10 * w, l as f32)[j * w..][..w]);
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
