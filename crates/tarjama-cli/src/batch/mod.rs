//! The machinery behind `tarjama translate` on many files: finding inputs, reading
//! structured formats, rendering outputs, writing them atomically, remembering what is
//! done (the manifest), caching repeated sentences, and stopping cleanly on Ctrl-C.
//!
//! Nothing here knows which model runs: translation goes through `dyn Translator`.

pub mod atomic;
pub mod cache;
pub mod formats;
pub mod inputs;
pub mod lines;
pub mod manifest;
pub mod render;
pub mod signal;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, what shells report).
pub const INTERRUPTED: i32 = 130;
