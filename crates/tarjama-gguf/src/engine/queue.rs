//! What the callers' threads and the engine thread share: the queue of waiting requests,
//! the condition variable that wakes the engine, the statistics, and the events sent
//! back to each caller.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use tarjama_chat::{Completion, SamplingParams};

use super::options::EngineStats;
use crate::Result;

/// What the engine thread sends back to a waiting caller.
pub(super) enum Event {
    Text(String),
    Done(Result<Completion>),
}

/// A request waiting for a slot.
pub(super) struct Request {
    pub(super) ids: Vec<u32>,
    pub(super) params: SamplingParams,
    pub(super) tx: mpsc::Sender<Event>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) waiting: VecDeque<Request>,
    pub(super) shutdown: bool,
}

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    pub(super) stats: Mutex<EngineStats>,
}
