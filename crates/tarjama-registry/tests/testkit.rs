//! The test kit finds models without depending on this crate (see its Cargo.toml), by
//! reading the same folders and manifests; here the two lookups are held together.
//!
//! One test in its own binary, because it points `TARJAMA_HOME` and the hub cache at
//! temporary folders for the whole process.

use tarjama_registry::registry::Registry;
use tarjama_registry::{paths, source};

#[test]
fn the_kit_finds_models_where_the_binary_does() {
    let home = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    std::env::set_var("TARJAMA_HOME", home.path());
    std::env::set_var("HF_HUB_CACHE", hub.path());
    // Most models are absent here by design; their lookups must agree on "absent".
    std::env::remove_var("TARJAMA_REQUIRE_MODELS");
    assert_eq!(tarjama_testkit::models_dir(), paths::models_dir());

    let registry = Registry::builtin().unwrap();
    // One model in the model folder, one only in the hub cache, as hf-hub lays it out.
    let local = registry.get("gemma-3-270m").unwrap();
    std::fs::create_dir_all(paths::models_dir()).unwrap();
    std::fs::write(local.local_path(), b"GGUF").unwrap();
    let hub_repo = hub
        .path()
        .join("models--Qwen--Qwen2.5-Coder-0.5B-Instruct-GGUF");
    std::fs::create_dir_all(hub_repo.join("refs")).unwrap();
    std::fs::write(hub_repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = hub_repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(
        snapshot.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        b"GGUF",
    )
    .unwrap();

    let mut found = 0;
    for manifest in registry.models() {
        let ours = source::installed(manifest);
        assert_eq!(
            tarjama_testkit::require_model(&manifest.name),
            ours,
            "{}",
            manifest.name
        );
        found += usize::from(ours.is_some());
    }
    assert_eq!(found, 2, "both planted files are found");
}
