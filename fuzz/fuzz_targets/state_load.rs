//! Any bytes as the state file: loading sets a bad file aside, it never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gslb-fuzz-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("state.json");
    std::fs::write(&path, data).unwrap();
    let _ = gslb::state::StateStore::open(&path);
});
