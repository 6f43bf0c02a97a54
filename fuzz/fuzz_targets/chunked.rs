#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::http::chunked::ChunkedDecoder;

// The first byte picks where the input is split in two feeds.
fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(rest.len());
    let mut d = ChunkedDecoder::with_limit(1 << 16);
    let mut seen = 0usize;
    if let Ok((used, done)) = d.feed(&rest[..cut], &mut |b| seen += b.len()) {
        assert!(used <= cut);
        if !done && used == cut {
            if let Ok((more, _)) = d.feed(&rest[cut..], &mut |b| seen += b.len()) {
                assert!(more <= rest.len() - cut);
            }
        }
    }
    assert!(seen <= rest.len());
});
