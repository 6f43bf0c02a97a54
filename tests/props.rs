//! Property tests over everything that reads hostile bytes: the HTTP head
//! parser, the chunked decoder, the Range parser, URI normalisation, the
//! config lexer + parser + resolver, cache entry files, waiting-room tokens
//! and cookies, nginx units. The same inputs feed the cargo-fuzz targets in
//! `fuzz/` (see fuzz/README.md); here they run on stable for a bounded number
//! of cases (`PROPTEST_CASES` raises it).
//!
//! Properties: never panic, never read past the input, normalised paths never
//! leave the root, and a round trip where one exists.

use proptest::prelude::*;
use sluice::cache::entry::{self, EntryMeta};
use sluice::http::chunked::{encode_chunk, ChunkedDecoder, ChunkedError};
use sluice::http::range::{parse_range, RangeResult};
use sluice::http::request::{self, at, BodyFraming, HeadLimits};
use sluice::http::uri::normalize_path;
use sluice::http::vars::{arg, cookie};
use sluice::util::units::{parse_duration_ms, parse_size, MAX_DURATION_MS, MAX_SIZE_BYTES};
use sluice::waiting_room::b64;
use sluice::waiting_room::token::{Claims, Kind, Scope, Signer};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// Cases per property: proptest's default unless `PROPTEST_CASES` is set.
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const LIMITS: HeadLimits = HeadLimits {
    line_bytes: 8192,
    total_bytes: 32768,
};

/// Bytes that are mostly HTTP-ish, so the parser gets past the first byte.
fn http_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"GET ".to_vec()),
        Just(b"POST ".to_vec()),
        Just(b"/a/b?x=1".to_vec()),
        Just(b" HTTP/1.1".to_vec()),
        Just(b" HTTP/1.0".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"Host: h".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"Transfer-Encoding: chunked".to_vec()),
        Just(b"Connection: close".to_vec()),
        Just(b"Expect: 100-continue".to_vec()),
        Just(b": ".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        "[0-9]{1,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn check_head(buf: &[u8]) {
    match request::parse(buf, &LIMITS) {
        Ok(Some(h)) => {
            assert!(h.len <= buf.len(), "head longer than the input");
            assert!(buf[..h.len].ends_with(b"\n"), "head ends at a line end");
            for (a, b) in [Some(h.method_span), Some(h.target), h.host, h.range]
                .into_iter()
                .flatten()
            {
                assert!(a <= b && b as usize <= h.len, "span past the head");
            }
            let _ = at(buf, h.target);
        }
        Ok(None) => assert!(buf.len() <= LIMITS.total_bytes, "an over-long head waits"),
        Err(e) => assert!([400, 414, 431, 501, 505, 417].contains(&e.status())),
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn head_parser_never_panics_on_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_head(&buf);
    }

    #[test]
    fn head_parser_never_panics_on_http_like_bytes(buf in http_bytes()) {
        check_head(&buf);
    }

    /// A well-formed head parses to what was sent, and every strict prefix of
    /// it is "not yet complete", never an error or a different head.
    #[test]
    fn valid_heads_parse_and_their_prefixes_wait(
        method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("DELETE")],
        path in "/[a-zA-Z0-9._~/-]{0,40}",
        query in proptest::option::of("[a-z0-9=&]{1,20}"),
        host in "[a-z][a-z0-9.-]{0,20}",
        extra in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..6),
        body_len in proptest::option::of(0u64..100_000),
    ) {
        let target = match &query { Some(q) => format!("{path}?{q}"), None => path.clone() };
        let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
        for (n, v) in &extra {
            let lower = n.to_ascii_lowercase();
            if ["host", "content-length", "transfer-encoding", "expect", "connection", "te",
                "upgrade", "range", "if-range"].contains(&lower.as_str())
                || lower.starts_with("if-") || lower.starts_with("proxy-") {
                continue;
            }
            raw.push_str(&format!("{n}: {}\r\n", v.trim()));
        }
        if let Some(n) = body_len {
            raw.push_str(&format!("Content-Length: {n}\r\n"));
        }
        raw.push_str("\r\n");
        let buf = raw.as_bytes();
        let h = request::parse(buf, &LIMITS).expect("valid head").expect("complete");
        prop_assert_eq!(h.len, buf.len());
        prop_assert_eq!(at(buf, h.target), target.as_bytes());
        prop_assert_eq!(h.host.map(|s| at(buf, s)), Some(host.as_bytes()));
        match body_len {
            Some(n) if n > 0 => prop_assert_eq!(h.body, BodyFraming::Length(n)),
            _ => prop_assert!(matches!(h.body, BodyFraming::None | BodyFraming::Length(0))),
        }
        for cut in 0..buf.len() {
            prop_assert!(matches!(request::parse(&buf[..cut], &LIMITS), Ok(None)),
                "prefix of {} bytes did not wait", cut);
        }
    }

    /// A body chunked at random sizes and fed in random pieces decodes to
    /// itself, and the bytes after it (a pipelined request) stay unconsumed.
    #[test]
    fn chunked_round_trip_in_any_split(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        sizes in proptest::collection::vec(1usize..700, 1..20),
        cuts in proptest::collection::vec(1usize..200, 1..40),
    ) {
        let mut wire = Vec::new();
        let (mut i, mut k) = (0, 0);
        while i < body.len() {
            let n = sizes[k % sizes.len()].min(body.len() - i);
            encode_chunk(&mut wire, &body[i..i + n]);
            i += n;
            k += 1;
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let body_end = wire.len();
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut k = 0;
        let mut done = false;
        while !done && pos < wire.len() {
            let end = (pos + cuts[k % cuts.len()]).min(wire.len());
            k += 1;
            let (used, fin) = d.feed(&wire[pos..end], &mut |b| out.extend_from_slice(b)).expect("valid chunked");
            prop_assert!(used <= end - pos);
            pos += used;
            done = fin;
        }
        prop_assert!(done);
        prop_assert_eq!(pos, body_end);
        prop_assert_eq!(&out, &body);
        prop_assert_eq!(d.body_bytes(), body.len() as u64);
    }

    /// Any bytes: no panic, consumption within the input, data only from the
    /// input, and after an error the same error every time.
    #[test]
    fn chunked_decoder_never_panics(
        pieces in proptest::collection::vec(prop_oneof![
            "[0-9a-fA-F]{1,18}".prop_map(String::into_bytes),
            Just(b"\r\n".to_vec()), Just(b"\n".to_vec()), Just(b";ext=v".to_vec()),
            Just(b"0\r\n\r\n".to_vec()), Just(b"X-T: v\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
        ], 0..30),
        limit in prop_oneof![Just(0u64), 1u64..10_000],
    ) {
        let input = pieces.concat();
        let mut d = ChunkedDecoder::with_limit(limit);
        let mut total = 0usize;
        match d.feed(&input, &mut |b| total += b.len()) {
            Ok((used, _)) => {
                prop_assert!(used <= input.len());
                prop_assert!(total <= used);
                if limit > 0 { prop_assert!(d.body_bytes() <= limit); }
            }
            Err(e) => {
                prop_assert!(total <= input.len());
                prop_assert_eq!(d.feed(b"0\r\n\r\n", &mut |_| {}), Err(e));
                prop_assert!(matches!(e, ChunkedError::Malformed | ChunkedError::TooLarge));
            }
        }
    }

    #[test]
    fn range_parser_stays_inside_the_representation(
        header in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60),
            ("(bytes|BYTES|items)", proptest::collection::vec(
                (proptest::option::of(0u64..5000), proptest::option::of(0u64..5000)), 0..5))
                .prop_map(|(u, specs)| {
                    let list: Vec<String> = specs.iter().map(|(a, b)| format!(
                        "{}-{}",
                        a.map(|v| v.to_string()).unwrap_or_default(),
                        b.map(|v| v.to_string()).unwrap_or_default())).collect();
                    format!("{u}={}", list.join(",")).into_bytes()
                }),
        ],
        size in 0u64..4000,
    ) {
        match parse_range(&header, size) {
            RangeResult::Single { start, end_inclusive } => {
                prop_assert!(start <= end_inclusive);
                prop_assert!(end_inclusive < size);
            }
            RangeResult::Full | RangeResult::Unsatisfiable => {}
        }
    }

    /// A normalised path starts with `/`, has no empty, `.` or `..` segment,
    /// and so joined under a root never leaves it; normalising it again (when
    /// it has no `%` left to decode) changes nothing.
    #[test]
    fn normalised_paths_never_leave_the_root(
        raw in proptest::collection::vec(prop_oneof![
            Just(b"/".to_vec()), Just(b"..".to_vec()), Just(b".".to_vec()),
            Just(b"%2e".to_vec()), Just(b"%2E%2e".to_vec()), Just(b"%2f".to_vec()),
            Just(b"%5c".to_vec()), Just(b"%00".to_vec()), Just(b"%".to_vec()),
            Just(b"\\".to_vec()), "[a-z]{1,4}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..3),
        ], 0..20),
    ) {
        let mut raw = raw.concat();
        raw.insert(0, b'/');
        let mut out = Vec::new();
        if normalize_path(&raw, &mut out).is_ok() {
            prop_assert_eq!(out.first(), Some(&b'/'));
            prop_assert!(!out.contains(&0));
            let inner = &out[1..];
            let segs: Vec<&[u8]> = inner.split(|&b| b == b'/').collect();
            for (i, s) in segs.iter().enumerate() {
                prop_assert!(*s != b"..".as_slice() && *s != b".".as_slice(), "dot segment in {:?}", out);
                prop_assert!(!s.is_empty() || i + 1 == segs.len(), "empty segment in {:?}", out);
            }
            let root = Path::new("/srv/www");
            let joined = root.join(std::str::from_utf8(inner).unwrap_or("x"));
            prop_assert!(joined.starts_with(root));
            if !out.contains(&b'%') {
                let mut again = Vec::new();
                normalize_path(&out, &mut again).expect("a normalised path normalises");
                prop_assert_eq!(again, out);
            }
        }
    }

    #[test]
    fn units_never_panic_and_stay_capped(s in "[0-9a-zA-Z ]{0,30}") {
        if let Some(v) = parse_size(&s) { prop_assert!(v <= MAX_SIZE_BYTES); }
        if let Some(v) = parse_duration_ms(&s) { prop_assert!(v <= MAX_DURATION_MS); }
    }

    #[test]
    fn units_round_trip(n in 0u64..1_000_000, unit in 0usize..4) {
        let (suffix, scale) = [("", 1u64), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)][unit];
        let want = n.checked_mul(scale).filter(|&v| v <= MAX_SIZE_BYTES);
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")), want);
        let (dsuf, dscale) = [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
        prop_assert_eq!(
            parse_duration_ms(&format!("{n}{dsuf}")),
            Some(n * dscale).filter(|&v| v <= MAX_DURATION_MS)
        );
    }

    #[test]
    fn base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut text = Vec::new();
        b64::encode(&data, &mut text);
        let mut back = vec![0u8; data.len() + 3];
        let n = b64::decode(&text, &mut back).expect("own encoding decodes");
        prop_assert_eq!(&back[..n], &data[..]);
    }

    #[test]
    fn base64_decode_never_overruns(text in proptest::collection::vec(any::<u8>(), 0..120), cap in 0usize..100) {
        let mut out = vec![0u8; cap];
        if let Some(n) = b64::decode(&text, &mut out) { prop_assert!(n <= cap); }
    }

    #[test]
    fn cookie_and_arg_lookups_return_slices_of_the_input(
        header in "[ -~]{0,80}", name in "[a-z_]{1,8}",
    ) {
        let h = header.as_bytes();
        for v in [cookie(h, name.as_bytes()), arg(h, name.as_bytes())].into_iter().flatten() {
            if v.is_empty() {
                continue; // a name without a value may be a static ""
            }
            let start = v.as_ptr() as usize - h.as_ptr() as usize;
            prop_assert!(start + v.len() <= h.len());
        }
    }
}

fn signer() -> Signer {
    Signer::new(&[("k1".to_string(), b"a secret of enough length!".to_vec())])
}

proptest! {
    #![proptest_config(cases(1000))]

    /// A signed token verifies for its own scope only; any other text —
    /// random bytes or the token with one character changed — is refused or
    /// decodes to the very same claims (base64's unused low bits), never panics.
    #[test]
    fn waiting_room_tokens_verify_only_unchanged(
        issued in 0u64..1 << 45, slot_delta in 0u64..1 << 20, life in 1u64..1 << 30,
        bound in any::<bool>(), session in any::<bool>(),
        path in "/[a-z/]{0,20}", flip_at in any::<prop::sample::Index>(), flip_to in any::<u8>(),
        junk in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let s = signer();
        let kind = if session { Kind::Session } else { Kind::Ticket };
        let c = Claims { kind, issued_ms: issued, slot_ms: issued + slot_delta,
            expires_ms: issued + life, ip_bound: bound };
        let scope = Scope { zone: b"room", path: path.as_bytes(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST) };
        let mut tok = Vec::new();
        s.sign(&c, &scope, &mut tok);
        let got = s.verify(&tok, kind, &scope, issued).expect("own token verifies");
        prop_assert_eq!(got.expires_ms, c.expires_ms);
        prop_assert_eq!(got.slot_ms, c.slot_ms);
        let other = Scope { zone: b"other", ..scope };
        prop_assert!(s.verify(&tok, kind, &other, issued).is_err());
        if bound {
            let moved = Scope { ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), ..scope };
            prop_assert!(s.verify(&tok, kind, &moved, issued).is_err());
        }
        let i = flip_at.index(tok.len());
        let mut bad = tok.clone();
        bad[i] = flip_to;
        if bad != tok {
            if let Ok(g) = s.verify(&bad, kind, &scope, issued) {
                prop_assert_eq!(g.expires_ms, c.expires_ms);
                prop_assert_eq!(g.issued_ms, c.issued_ms);
            }
        }
        let _ = s.verify(&junk, kind, &scope, issued);
    }

    /// An entry header decodes to what was encoded; a cut, a flipped byte or
    /// random bytes are refused or decode, never panic or read past the input.
    #[test]
    fn cache_entry_headers_round_trip_and_survive_damage(
        key in proptest::collection::vec(any::<u8>(), 0..80),
        status in 100u16..600,
        headers in proptest::collection::vec((
            proptest::collection::vec(any::<u8>(), 1..20),
            proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
        times in (any::<i32>(), any::<i32>(), proptest::option::of(any::<i32>()), any::<i32>()),
        flags in (any::<bool>(), any::<bool>(), any::<u32>(), any::<u32>(), any::<u32>()),
        etag in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        vary in proptest::collection::vec("[a-z-]{1,12}", 0..3),
        variant in proptest::option::of(any::<[u8; 16]>()),
        body_len in any::<u32>(),
        cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), flip_to in any::<u8>(),
    ) {
        let meta = EntryMeta {
            key, status, headers,
            request_time: times.0.into(), response_time: times.1.into(),
            date: times.2.map(Into::into), expires_at: times.3.into(),
            must_revalidate: flags.0, no_cache: flags.1, age_value_s: flags.2,
            stale_while_revalidate_s: flags.3, stale_if_error_s: flags.4,
            etag, last_modified: None,
            vary: vary.into_iter().map(String::into_bytes).collect(),
            variant, body_len: body_len.into(),
            ..EntryMeta::default()
        };
        let bytes = entry::encode_header(&meta).expect("small header encodes");
        let (back, off) = entry::decode_header(&bytes).expect("own header decodes");
        prop_assert_eq!(off, bytes.len());
        prop_assert_eq!(&back, &meta);
        prop_assert!(entry::decode_for_key(&bytes, &meta.key).is_ok());
        let c = cut.index(bytes.len());
        prop_assert!(entry::decode_header(&bytes[..c]).is_err(), "a cut header decoded");
        let mut bad = bytes.clone();
        let f = flip.index(bad.len());
        bad[f] = flip_to;
        if let Ok((_, off)) = entry::decode_header(&bad) { prop_assert!(off <= bad.len()); }
        if let Ok(n) = entry::header_len(&bad) { prop_assert!(n > 0); }
    }

    #[test]
    fn cache_entry_decoder_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok((_, off)) = entry::decode_header(&bytes) { prop_assert!(off <= bytes.len()); }
        let _ = entry::read_header(&mut &bytes[..]);
    }
}

// ---- config: lexer + parser + resolver ----

/// Directive names the generator draws from: real ones of every context,
/// some with blocks, plus a few unknown names.
const NAMES: &[&str] = &[
    "worker_processes",
    "pid",
    "error_log",
    "events",
    "worker_connections",
    "http",
    "server",
    "listen",
    "server_name",
    "root",
    "index",
    "location",
    "return",
    "proxy_pass",
    "upstream",
    "keepalive_timeout",
    "client_header_timeout",
    "client_max_body_size",
    "proxy_cache_path",
    "proxy_cache",
    "proxy_cache_valid",
    "limit_req_zone",
    "limit_req",
    "limit_count_zone",
    "waiting_room_zone",
    "waiting_room",
    "map",
    "log_format",
    "access_log",
    "try_files",
    "error_page",
    "alias",
    "gzip",
    "gzip_types",
    "expires",
    "allow",
    "deny",
    "add_header",
    "proxy_set_header",
    "types",
    "default_type",
    "status",
    "ssl_certificate",
    "include",
    "if",
    "set",
    "rewrite",
    "bogus_directive",
    "charset",
];

const VALUES: &[&str] = &[
    "on",
    "off",
    "1",
    "0",
    "-1",
    "auto",
    "10s",
    "1h30m",
    "99999999999999999999",
    "18446744073709551615ms",
    "64k",
    "1g",
    "127.0.0.1:0",
    "[::1]:0",
    "localhost",
    "/",
    "=",
    "~",
    "~*",
    "^~",
    "@named",
    "/tmp/x",
    "http://127.0.0.1:1",
    "\"a b\"",
    "'q'",
    "$uri",
    "${host}x",
    "zone=z:1m",
    "zone=z",
    "rate=10r/s",
    "burst=5",
    "=404",
    "200",
    "301",
    "\"\"",
    "\\",
    "#c",
    "{",
    "}",
    ";",
    "(",
    ")",
    "$",
    "levels=1:2",
    "keys_zone=c:1m",
    "max=10",
    "\u{fffd}",
    "\"unterminated",
];

fn config_text() -> impl Strategy<Value = String> {
    let directive = (
        prop::sample::select(NAMES),
        proptest::collection::vec(prop::sample::select(VALUES), 0..4),
        prop_oneof![
            Just(";"),
            Just(" {"),
            Just(" }"),
            Just("}"),
            Just(""),
            Just(";\n")
        ],
    )
        .prop_map(|(n, vs, end)| format!("{n} {}{end}\n", vs.join(" ")));
    proptest::collection::vec(directive, 0..30).prop_map(|v| v.concat())
}

fn check_config(text: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fuzz.conf");
    let lines = text.lines().count().max(1);
    if let Err(e) = sluice::config::load_str(text, &file, None) {
        let shown = e.to_string();
        assert!(
            shown.starts_with(&file.display().to_string()),
            "error not located: {shown}"
        );
        assert!(
            e.line <= lines + 1,
            "line {} past the text's {lines}: {shown}",
            e.line
        );
        assert!(!e.message.is_empty());
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn config_loader_never_panics_and_locates_errors(text in config_text()) {
        check_config(&text);
    }

    #[test]
    fn config_loader_never_panics_on_any_text(text in "[ -~\n\t{};#\"'$\\\\]{0,300}") {
        check_config(&text);
    }

    /// The shipped config with one line deleted, duplicated or replaced.
    #[test]
    fn damaged_shipped_config_gives_a_located_error_or_loads(
        line in any::<prop::sample::Index>(),
        op in 0u8..3,
        junk in prop::sample::select(VALUES),
    ) {
        let shipped = include_str!("../conf/sluice.conf");
        let mut lines: Vec<String> = shipped.lines().map(String::from).collect();
        let i = line.index(lines.len());
        match op {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(i, l); }
            _ => lines[i] = format!("{} {junk}", lines[i]),
        }
        check_config(&lines.join("\n"));
    }
}
