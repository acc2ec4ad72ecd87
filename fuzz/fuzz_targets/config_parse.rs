//! Any text as a config file: validation reports problems, it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gslb::config::parse(text, "fuzz");
    }
});
