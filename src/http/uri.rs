//! Request-target handling: split the target, decode and normalize the path so that a
//! request can never name a file outside the document root, and re-encode a path for
//! a `Location` header.
//!
//! Normalization follows nginx: percent-decode first, then merge `//`, drop `.` and
//! resolve `..` segments; a `..` above `/` is a 400, not a silent clamp.

#![deny(missing_docs)]

/// Why a request target was refused. Always answered with 400 Bad Request.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum UriError {
    /// The target is malformed or tries to leave the root.
    BadRequest,
}

/// The parts of a request target, borrowed from the request line.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Target<'a> {
    /// `host[:port]` of an absolute-form target; `None` for origin-form.
    pub host: Option<&'a [u8]>,
    /// The raw (still percent-encoded) path; always starts with `/`.
    pub path: &'a [u8],
    /// The raw query after `?`, without the `?`; `Some(b"")` for a bare `?`.
    pub query: Option<&'a [u8]>,
}

/// Strips a `#fragment` (clients must not send one, but some do).
fn strip_fragment(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == b'#') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Splits `path?query` (the input has no fragment any more).
fn split_query(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b'?') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Length of the `http://` / `https://` prefix (scheme matched case-insensitively).
fn absolute_prefix_len(target: &[u8]) -> Option<usize> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(scheme.len());
        }
    }
    None
}

/// RFC 3986 `unreserved` (letters, digits, `-._~`) or `sub-delims` (`!$&'()*+,;=`).
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// Whether `b` may appear in a `host[:port]` authority (reg-name, IPv4, `[IPv6]`, port).
/// Userinfo (`@`) is refused: RFC 9110 §4.2.4 says to treat it as an error.
fn is_authority_byte(b: u8) -> bool {
    is_unreserved_or_sub_delim(b) || matches!(b, b':' | b'[' | b']' | b'%')
}

/// Splits a request target into host, path and query.
///
/// Accepts origin-form (`/a/b?x=1`) and absolute-form (`http://Host:8080/a?q`, scheme
/// `http` or `https`, any case; an empty path becomes `/`). `*` and anything else
/// that does not yield a path starting with `/` is `BadRequest`. A fragment is
/// stripped.
pub fn split_target(target: &[u8]) -> Result<Target<'_>, UriError> {
    let target = strip_fragment(target);
    if target.first() == Some(&b'/') {
        let (path, query) = split_query(target);
        return Ok(Target {
            host: None,
            path,
            query,
        });
    }
    let prefix_len = absolute_prefix_len(target).ok_or(UriError::BadRequest)?;
    let rest = &target[prefix_len..];
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let host = &rest[..authority_len];
    if host.is_empty() || !host.iter().all(|&b| is_authority_byte(b)) {
        return Err(UriError::BadRequest);
    }
    let (path, query) = split_query(&rest[authority_len..]);
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    Ok(Target {
        host: Some(host),
        path,
        query,
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Closes the segment that starts at `seg_start` in `out` (`out[seg_start - 1]` is
/// the `/` before it). `at_end` says whether the input ended here (no `/` follows).
fn finish_segment(out: &mut Vec<u8>, seg_start: &mut usize, at_end: bool) -> Result<(), UriError> {
    let seg = &out[*seg_start..];
    if seg.is_empty() {
        // `//` merges into one `/`; at the end it is the trailing slash we keep.
    } else if seg == b"." {
        out.truncate(*seg_start);
    } else if seg == b".." {
        if *seg_start <= 1 {
            return Err(UriError::BadRequest);
        }
        // Drop "/..", then the previous segment, keeping its leading '/'.
        out.truncate(*seg_start - 1);
        let prev_slash = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
        out.truncate(prev_slash + 1);
        *seg_start = out.len();
    } else if !at_end {
        out.push(b'/');
        *seg_start = out.len();
    }
    Ok(())
}

/// Percent-decodes and normalizes a raw path into `out` (cleared first).
///
/// Decoding happens first, so `%2F` acts as a separator and `%2e%2e` as `..`.
/// Then `//` merges, `.` segments go and `..` segments remove their parent. A `..`
/// above `/`, a bad escape (`%zz`, `%4`), a NUL byte or a path not starting with `/`
/// is `BadRequest`. The result starts with `/` and keeps a trailing `/` if the path
/// ended with one or with a `.`/`..` segment (`/a/b/..` → `/a/`). Other bytes,
/// including `\` and UTF-8, are kept as they are.
pub fn normalize_path(raw: &[u8], out: &mut Vec<u8>) -> Result<(), UriError> {
    out.clear();
    if raw.first() != Some(&b'/') {
        return Err(UriError::BadRequest);
    }
    out.reserve(raw.len());
    out.push(b'/');
    let mut seg_start = 1;
    let mut i = 1;
    while i < raw.len() {
        let mut b = raw[i];
        i += 1;
        if b == b'%' {
            let hi = raw.get(i).copied().and_then(hex_value);
            let lo = raw.get(i + 1).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => b = hi << 4 | lo,
                _ => return Err(UriError::BadRequest),
            }
            i += 2;
        }
        match b {
            0 => return Err(UriError::BadRequest),
            b'/' => finish_segment(out, &mut seg_start, false)?,
            _ => out.push(b),
        }
    }
    finish_segment(out, &mut seg_start, true)
}

/// Whether a path byte may stay as it is: unreserved, `/` or a sub-delim (RFC 3986).
fn is_path_safe(b: u8) -> bool {
    is_unreserved_or_sub_delim(b) || b == b'/'
}

/// Appends `path` to `out`, percent-encoding (uppercase hex) every byte that is not
/// unreserved, `/` or a sub-delim, so the result is safe in a `Location` header.
/// `out` is not cleared.
pub fn percent_encode_path(path: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(path.len());
    for &b in path {
        if is_path_safe(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Percent-encodes, in place, every control byte (0x00-0x1F, 0x7F) of
/// `buf[from..]`: a value expanded from the request (`$uri` is decoded, so
/// `%0D%0A` in a path is CR LF) then cannot end a header line it is written
/// into. No work when there is none (the usual case).
pub fn escape_controls(buf: &mut Vec<u8>, from: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let is_ctl = |b: u8| b < 0x20 || b == 0x7f;
    let Some(first) = buf[from..].iter().position(|&b| is_ctl(b)) else {
        return;
    };
    let tail = buf.split_off(from + first);
    for b in tail {
        if is_ctl(b) {
            buf.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            buf.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_crlf_in_a_header_value_is_escaped() {
        let mut v = b"Location: /a\r\nSet-Cookie: x=1\x00\x7f\tz".to_vec();
        escape_controls(&mut v, 10);
        assert_eq!(v, b"Location: /a%0D%0ASet-Cookie: x=1%00%7F%09z");
        let mut clean = b"X: /plain/path?a=b".to_vec();
        escape_controls(&mut clean, 0);
        assert_eq!(clean, b"X: /plain/path?a=b");
    }

    fn norm(raw: &[u8]) -> Result<Vec<u8>, UriError> {
        let mut out = Vec::new();
        normalize_path(raw, &mut out).map(|()| out)
    }

    fn ok(raw: &str, want: &str) {
        assert_eq!(
            norm(raw.as_bytes()).map(|v| String::from_utf8_lossy(&v).into_owned()),
            Ok(want.to_string()),
            "input {raw:?}"
        );
    }

    fn bad(raw: &[u8]) {
        assert_eq!(
            norm(raw),
            Err(UriError::BadRequest),
            "input {:?}",
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn split_origin_form() {
        let t = split_target(b"/a/b?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: None,
                path: b"/a/b",
                query: Some(b"x=1")
            }
        );
        let t = split_target(b"/").unwrap();
        assert_eq!(
            t,
            Target {
                host: None,
                path: b"/",
                query: None
            }
        );
        let t = split_target(b"/a?").unwrap();
        assert_eq!(t.query, Some(&b""[..]));
        let t = split_target(b"/a?b?c").unwrap();
        assert_eq!((t.path, t.query), (&b"/a"[..], Some(&b"b?c"[..])));
    }

    #[test]
    fn split_double_slash_is_origin_form() {
        // Not a network-path reference here: `normalize_path` merges the slashes.
        let t = split_target(b"//evil.example/x").unwrap();
        assert_eq!((t.host, t.path), (None, &b"//evil.example/x"[..]));
    }

    #[test]
    fn split_strips_fragment() {
        let t = split_target(b"/a/b#frag?notquery").unwrap();
        assert_eq!((t.path, t.query), (&b"/a/b"[..], None));
        let t = split_target(b"/a?q=1#f").unwrap();
        assert_eq!(t.query, Some(&b"q=1"[..]));
        assert_eq!(split_target(b"#/a"), Err(UriError::BadRequest));
    }

    #[test]
    fn split_absolute_form() {
        let t = split_target(b"http://Host:8080/a?q").unwrap();
        assert_eq!(
            t,
            Target {
                host: Some(b"Host:8080"),
                path: b"/a",
                query: Some(b"q")
            }
        );
        let t = split_target(b"HTTPS://example.com").unwrap();
        assert_eq!(
            t,
            Target {
                host: Some(b"example.com"),
                path: b"/",
                query: None
            }
        );
        let t = split_target(b"HtTp://h?x=1").unwrap();
        assert_eq!((t.path, t.query), (&b"/"[..], Some(&b"x=1"[..])));
        let t = split_target(b"http://[::1]:80/x#y").unwrap();
        assert_eq!((t.host, t.path), (Some(&b"[::1]:80"[..]), &b"/x"[..]));
    }

    #[test]
    fn split_rejects_other_forms() {
        for t in [
            &b"*"[..],
            b"",
            b"a/b",
            b"ftp://h/a",
            b"http:/h/a",
            b"http://",
            b"http:///a",
            b"http://user@h/a",
            b"http://h h/a",
            b"example.com:443",
        ] {
            assert_eq!(split_target(t), Err(UriError::BadRequest), "{:?}", t);
        }
    }

    #[test]
    fn split_then_normalize_absolute_form_traversal() {
        let t = split_target(b"http://h/%2e%2e/etc/passwd?x").unwrap();
        assert_eq!(norm(t.path), Err(UriError::BadRequest));
        let t = split_target(b"http://h?x").unwrap();
        assert_eq!(norm(t.path).unwrap(), b"/");
    }

    #[test]
    fn normalize_plain_paths() {
        ok("/", "/");
        ok("/index.html", "/index.html");
        ok("/a/b/c", "/a/b/c");
        ok("/a/b/", "/a/b/");
        ok("/a%20b", "/a b");
        ok("/%41%42c", "/ABc");
        ok("/a\\..\\b", "/a\\..\\b");
        ok("/...", "/...");
        ok("/a/.../b", "/a/.../b");
        ok("/.hidden/..x", "/.hidden/..x");
    }

    #[test]
    fn normalize_dot_segments() {
        ok("/./././", "/");
        ok("/a/./b", "/a/b");
        ok("/a/b/..", "/a/");
        ok("/a/b/.", "/a/b/");
        ok("/a/b/../c", "/a/c");
        ok("/a/b/../../c", "/c");
        ok("/a/..", "/");
        ok("/a/../", "/");
        ok("/.", "/");
        ok("/a/b/c/../../..", "/");
    }

    #[test]
    fn normalize_merges_slashes() {
        ok("//etc//passwd", "/etc/passwd");
        ok("///", "/");
        ok("/a//b///c////", "/a/b/c/");
        ok("/a//..//b", "/b");
    }

    #[test]
    fn normalize_traversal_is_rejected() {
        bad(b"/..");
        bad(b"/../x");
        bad(b"/../");
        bad(b"/%2e%2e/x");
        bad(b"/%2E%2E/x");
        bad(b"/.%2e/x");
        bad(b"/a/%2e%2e/%2e%2e/x");
        bad(b"/a/../../x");
        bad(b"/a/b/../../../etc/passwd");
        bad(b"/%2e%2e%2fetc%2fpasswd");
        bad(b"//..//x");
        bad(b"/./../x");
    }

    #[test]
    fn normalize_decodes_before_splitting() {
        ok("/a/..%2fb", "/b");
        ok("/a%2Fb", "/a/b");
        ok("/a%2f%2e%2e%2fb", "/b");
        ok("/a/%2e/b", "/a/b");
        ok("/%2e", "/");
        // A decoded `%25` is a literal percent sign, not another escape.
        ok("/%252e%252e/x", "/%2e%2e/x");
    }

    #[test]
    fn normalize_bad_escapes_and_nul() {
        bad(b"/%zz");
        bad(b"/%4");
        bad(b"/%");
        bad(b"/a%g0");
        bad(b"/%00");
        bad(b"/a\0b");
        bad(b"/a/%00/../b");
        bad(b"");
        bad(b"a/b");
        bad(b"%2Fa");
    }

    #[test]
    fn normalize_keeps_utf8_and_high_bytes() {
        ok("/caf%C3%A9/ü", "/café/ü");
        assert_eq!(norm(b"/\xff\xfe/x").unwrap(), b"/\xff\xfe/x");
    }

    #[test]
    fn normalize_clears_out_and_reuses_buffer() {
        let mut out = b"garbage".to_vec();
        normalize_path(b"/a", &mut out).unwrap();
        assert_eq!(out, b"/a");
        assert!(normalize_path(b"/..", &mut out).is_err());
        normalize_path(b"/b/c", &mut out).unwrap();
        assert_eq!(out, b"/b/c");
    }

    #[test]
    fn normalize_long_inputs() {
        let mut raw = Vec::new();
        for _ in 0..10_000 {
            raw.extend_from_slice(b"/abc");
        }
        assert_eq!(norm(&raw).unwrap(), raw);
        let mut deep = Vec::new();
        for _ in 0..5_000 {
            deep.extend_from_slice(b"/d");
        }
        for _ in 0..5_000 {
            deep.extend_from_slice(b"/..");
        }
        assert_eq!(norm(&deep).unwrap(), b"/");
        deep.extend_from_slice(b"/..");
        bad(&deep);
        let slashes = vec![b'/'; 100_000];
        assert_eq!(norm(&slashes).unwrap(), b"/");
    }

    /// Tiny deterministic generator so property loops need no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    /// Reference model: split decoded path on '/', resolve with a stack.
    fn model(raw: &[u8]) -> Option<Vec<u8>> {
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' {
                let h = hex_value(*raw.get(i + 1)?)?;
                let l = hex_value(*raw.get(i + 2)?)?;
                decoded.push(h << 4 | l);
                i += 3;
            } else {
                decoded.push(raw[i]);
                i += 1;
            }
        }
        if decoded.contains(&0) || raw.first() != Some(&b'/') {
            return None;
        }
        let parts: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
        let mut stack: Vec<&[u8]> = Vec::new();
        let last = parts.len() - 1;
        let mut trailing = false;
        for (n, p) in parts.iter().enumerate() {
            trailing = n == last && (p.is_empty() || *p == b"." || *p == b"..");
            match *p {
                b"" | b"." => {}
                b".." => {
                    stack.pop()?;
                }
                seg => stack.push(seg),
            }
        }
        let mut out = Vec::new();
        for s in &stack {
            out.push(b'/');
            out.extend_from_slice(s);
        }
        if out.is_empty() || trailing {
            out.push(b'/');
        }
        Some(out)
    }

    #[test]
    fn normalize_property_random_paths() {
        let alphabet: &[&[u8]] = &[
            b"/",
            b"/",
            b".",
            b"..",
            b"a",
            b"b",
            b"%2e",
            b"%2E",
            b"%2f",
            b"%2F",
            b"%",
            b"%0",
            b"%00",
            b"\\",
            b"\xc3\xa9",
            b"\xff",
            b"%41",
            b"?",
            b"%zz",
        ];
        let mut rng = Lcg(42);
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let mut raw = Vec::new();
            if !rng.next().is_multiple_of(8) {
                raw.push(b'/');
            }
            for _ in 0..rng.next() % 14 {
                raw.extend_from_slice(alphabet[(rng.next() as usize) % alphabet.len()]);
            }
            let got = normalize_path(&raw, &mut out).ok().map(|()| out.clone());
            assert_eq!(
                got,
                model(&raw),
                "input {:?}",
                String::from_utf8_lossy(&raw)
            );
            if got.is_some() {
                assert_eq!(out.first(), Some(&b'/'));
                for bad in [&b"/../"[..], b"/./", b"//"] {
                    assert!(!out.windows(bad.len()).any(|w| w == bad), "{:?}", out);
                }
                assert!(!out.ends_with(b"/..") && !out.ends_with(b"/."));
                assert!(!out.contains(&0));
                // Idempotent once '%' bytes are re-escaped.
                let mut again = Vec::new();
                let mut reenc = Vec::new();
                percent_encode_path(&out, &mut reenc);
                normalize_path(&reenc, &mut again).unwrap();
                assert_eq!(again, out);
            }
        }
    }

    #[test]
    fn percent_encode_known() {
        let mut out = b"http://h".to_vec();
        percent_encode_path(b"/a b/caf\xc3\xa9/%?#\"<>\r\n", &mut out);
        assert_eq!(out, b"http://h/a%20b/caf%C3%A9/%25%3F%23%22%3C%3E%0D%0A");
        let mut out = Vec::new();
        percent_encode_path(b"/AZaz09-._~!$&'()*+,;=/", &mut out);
        assert_eq!(out, b"/AZaz09-._~!$&'()*+,;=/");
    }

    #[test]
    fn percent_encode_round_trips_every_byte() {
        let all: Vec<u8> = (1..=255u8).filter(|&b| b != b'/').collect();
        let mut raw = b"/".to_vec();
        raw.extend_from_slice(&all);
        let mut enc = Vec::new();
        percent_encode_path(&raw, &mut enc);
        assert!(enc.iter().all(|&b| b.is_ascii_graphic()));
        assert_eq!(norm(&enc).unwrap(), raw);
    }
}
