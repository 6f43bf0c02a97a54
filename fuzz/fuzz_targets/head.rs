#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::http::request::{self, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        line_bytes: 8192,
        total_bytes: 32768,
    };
    if let Ok(Some(h)) = request::parse(data, &limits) {
        assert!(h.len <= data.len());
        let (a, b) = h.target;
        assert!(a <= b && b as usize <= h.len);
    }
});
