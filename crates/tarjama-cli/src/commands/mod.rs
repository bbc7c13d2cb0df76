//! One module per subcommand: its flags (`Args`) and its `run`.

pub mod bench;
pub mod common;
pub mod completions;
pub mod eval;
mod eval_checks;
pub mod man;
pub mod models;
pub mod prep;
pub mod serve;
pub mod summarize;
pub mod translate;
