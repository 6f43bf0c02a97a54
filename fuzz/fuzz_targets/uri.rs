#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::http::uri::normalize_path;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if normalize_path(data, &mut out).is_ok() {
        assert_eq!(out.first(), Some(&b'/'));
        for seg in out[1..].split(|&b| b == b'/') {
            assert!(seg != b".." && seg != b".");
        }
    }
});
