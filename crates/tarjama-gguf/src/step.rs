//! The parts of a batched step: each sequence's cache and the tokens it feeds
//! ([`Step`]), and where its rows lie in the batch ([`Segment`]).

use crate::kv::SeqCache;

/// One sequence's part of a batched step ([`Transformer::forward_batch`](crate::model::Transformer::forward_batch)): its cache and
/// the tokens that follow what the cache holds.
#[derive(Debug)]
pub struct Step<'a> {
    /// The sequence's keys and values; it gains those of `tokens`.
    pub cache: &'a mut SeqCache,
    /// The tokens to feed, at positions `cache.len()..`.
    pub tokens: &'a [u32],
}

/// Where a sequence's rows lie in a batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    /// Its first row.
    pub(super) start: usize,
    pub(super) rows: usize,
    /// The position of its first row.
    pub(super) pos: usize,
}
