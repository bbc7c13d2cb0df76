//! The machinery behind `tarjama bench`: the data a benchmark runs on, the worker that
//! measures one model in its own process, the machine description, and the reports.
//!
//! Each model runs in a child process (the same binary, re-executed with a hidden
//! `--worker` flag) so that its peak resident memory is its own and not the high-water
//! mark of every model loaded before it.

pub mod data;
pub mod machine;
pub mod report;
pub mod stats;
pub mod worker;
