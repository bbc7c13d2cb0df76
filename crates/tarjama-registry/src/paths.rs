//! Where tarjama keeps its files outside the repository.

use std::path::PathBuf;

/// The root of tarjama's own files: `$TARJAMA_HOME`, else `<user cache dir>/tarjama`.
pub fn tarjama_home() -> PathBuf {
    if let Some(home) = std::env::var_os("TARJAMA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("tarjama")
}

/// The folder downloaded model files are kept in: `<tarjama home>/models`.
pub fn models_dir() -> PathBuf {
    tarjama_home().join("models")
}
