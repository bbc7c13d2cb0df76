//! Helpers shared by the tests that run real model files.

use std::path::PathBuf;

/// The downloaded model file `name` in the model folder. Without it a test prints a note
/// and passes, unless `TARJAMA_REQUIRE_MODELS=1` (CI), where a missing file fails.
pub fn model_file(name: &str) -> Option<PathBuf> {
    let path = tarjama_models::paths::models_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("TARJAMA_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{} is missing and TARJAMA_REQUIRE_MODELS=1", path.display());
    }
    eprintln!("skipped: {} is not downloaded", path.display());
    None
}
