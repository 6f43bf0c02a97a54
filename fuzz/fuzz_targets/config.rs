#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent-fuzz/fuzz.conf");
    if let Err(e) = sluice::config::load_str(text, file, None) {
        assert!(e.line <= text.lines().count() + 1);
    }
});
