#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::http::range::{parse_range, RangeResult};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let size = u64::from(u16::from_le_bytes([data[0], data[1]]));
    if let RangeResult::Single {
        start,
        end_inclusive,
    } = parse_range(&data[2..], size)
    {
        assert!(start <= end_inclusive && end_inclusive < size);
    }
});
