//! Process exit codes, so scripts can tell "nothing worked" from "some inputs failed".
//! A command line that does not parse exits with 2, clap's code for a usage error.

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// Nothing useful was done: a fatal error (bad model, bad flags after parsing, I/O).
pub const FAILURE: i32 = 1;
/// The run went through, but some inputs failed; the others were done.
pub const SOME_FAILED: i32 = 3;
/// Stopped by Ctrl-C (128 + SIGINT, what shells report); a second Ctrl-C exits with it
/// at once, from the signal handler.
pub use tarjama_batch::INTERRUPTED;
