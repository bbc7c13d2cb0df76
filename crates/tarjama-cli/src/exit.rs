//! Process exit codes, so scripts can tell "nothing worked" from "some inputs failed".

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// Nothing useful was done: a fatal error (bad model, bad flags after parsing, I/O).
pub const FAILURE: i32 = 1;
/// The command line could not be parsed (clap uses 2 as well).
#[allow(dead_code)]
pub const USAGE: i32 = 2;
/// The run went through, but some inputs failed; the others were done.
#[allow(dead_code)]
pub const SOME_FAILED: i32 = 3;
