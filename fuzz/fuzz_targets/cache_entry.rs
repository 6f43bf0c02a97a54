#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::cache::entry;

fuzz_target!(|data: &[u8]| {
    if let Ok((meta, off)) = entry::decode_header(data) {
        assert!(off <= data.len());
        // What decodes encodes back to something that decodes the same.
        if let Ok(again) = entry::encode_header(&meta) {
            let (back, _) = entry::decode_header(&again).expect("re-encoded header");
            assert_eq!(back, meta);
        }
    }
});
