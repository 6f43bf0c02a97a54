//! Conditional requests (RFC 9110 §13): entity tags and the `If-None-Match`,
//! `If-Match` and `If-Modified-Since` checks for static files.

#![deny(missing_docs)]

use crate::util::httpdate::parse_http_date;

/// Appends an nginx-style strong ETag, `"<mtime hex>-<size hex>"` with the quotes,
/// lowercase hex and no leading zeros, to `out` (not cleared). A negative mtime is
/// written as its two's-complement `u64`, so distinct mtimes give distinct tags.
pub fn make_etag(mtime_unix: i64, size: u64, out: &mut Vec<u8>) {
    out.push(b'"');
    push_hex(mtime_unix as u64, out);
    out.push(b'-');
    push_hex(size, out);
    out.push(b'"');
}

fn push_hex(v: u64, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros() as usize).div_ceil(4);
    for i in (0..digits.max(1)).rev() {
        out.push(HEX[((v >> (i * 4)) & 15) as usize]);
    }
}

/// `etagc`: `%x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One element of an entity-tag list.
enum Elem<'a> {
    /// `*`.
    Any,
    /// An entity-tag; `opaque` includes the quotes.
    Tag { weak: bool, opaque: &'a [u8] },
}

/// Splits an entity tag into (weak, opaque-tag with quotes); `None` if malformed.
fn split_tag(s: &[u8]) -> Option<(bool, &[u8])> {
    let (weak, opaque) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let valid = opaque.len() >= 2
        && opaque[0] == b'"'
        && opaque[opaque.len() - 1] == b'"'
        && opaque[1..opaque.len() - 1].iter().all(|&b| is_etagc(b));
    valid.then_some((weak, opaque))
}

/// Walks a comma-separated list of `*` / entity tags, calling `f` on each element.
/// Returns false if the list is malformed or has no element.
fn for_each_elem(header: &[u8], mut f: impl FnMut(Elem<'_>)) -> bool {
    let mut rest = header;
    let mut count = 0usize;
    loop {
        while let [b, tail @ ..] = rest {
            if is_ows(*b) || *b == b',' {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.is_empty() {
            return count > 0;
        }
        // An element runs to the closing quote of its opaque tag (commas may be quoted).
        let elem_len = if rest[0] == b'*' {
            1
        } else {
            let open = if rest.starts_with(b"W/\"") { 2 } else { 0 };
            if rest.get(open) != Some(&b'"') {
                return false;
            }
            match rest[open + 1..].iter().position(|&b| b == b'"') {
                Some(close) => open + 1 + close + 1,
                None => return false,
            }
        };
        let elem = &rest[..elem_len];
        rest = &rest[elem_len..];
        // After an element: OWS, then a comma or the end.
        let after = rest.iter().position(|&b| !is_ows(b)).unwrap_or(rest.len());
        if after < rest.len() && rest[after] != b',' {
            return false;
        }
        rest = &rest[after..];
        if elem == b"*" {
            f(Elem::Any);
        } else {
            match split_tag(elem) {
                Some((weak, opaque)) => f(Elem::Tag { weak, opaque }),
                None => return false,
            }
        }
        count += 1;
    }
}

/// `If-None-Match`: true when the list has `*` or an entry that weakly matches
/// `etag` (`W/"x"` matches `"x"`), i.e. when a GET/HEAD may answer 304.
/// A malformed header gives false.
pub fn if_none_match(header: &[u8], etag: &[u8]) -> bool {
    let ours = split_tag(etag).map(|(_, opaque)| opaque);
    let mut matched = false;
    let valid = for_each_elem(header, |elem| match elem {
        Elem::Any => matched = true,
        Elem::Tag { opaque, .. } => matched |= Some(opaque) == ours,
    });
    valid && matched
}

/// `If-Match`: true when the list has `*` or an entry that strongly matches `etag`
/// (neither side weak). A malformed header gives false (answer 412).
pub fn if_match(header: &[u8], etag: &[u8]) -> bool {
    let ours = match split_tag(etag) {
        Some((false, opaque)) => Some(opaque),
        _ => None,
    };
    let mut matched = false;
    let valid = for_each_elem(header, |elem| match elem {
        Elem::Any => matched = true,
        Elem::Tag { weak, opaque } => matched |= !weak && ours.is_some() && Some(opaque) == ours,
    });
    valid && matched
}

/// `If-Modified-Since`: true when the file (modified at `mtime_unix`) has not changed
/// since the header's date, i.e. 304 may be sent. An unparseable date gives false.
pub fn not_modified_since(header: &[u8], mtime_unix: i64) -> bool {
    parse_http_date(header).is_some_and(|since_unix| mtime_unix <= since_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag(mtime: i64, size: u64) -> Vec<u8> {
        let mut v = Vec::new();
        make_etag(mtime, size, &mut v);
        v
    }

    #[test]
    fn etag_format_matches_nginx() {
        assert_eq!(etag(0x5f5e_1000, 0x264), b"\"5f5e1000-264\"");
        assert_eq!(etag(0, 0), b"\"0-0\"");
        assert_eq!(etag(1, 15), b"\"1-f\"");
        assert_eq!(etag(16, 16), b"\"10-10\"");
        assert_eq!(
            etag(i64::MAX, u64::MAX),
            b"\"7fffffffffffffff-ffffffffffffffff\""
        );
        assert_eq!(etag(-1, 1), b"\"ffffffffffffffff-1\"");
        let mut out = b"ETag: ".to_vec();
        make_etag(1, 2, &mut out);
        assert_eq!(out, b"ETag: \"1-2\"");
    }

    #[test]
    fn none_match_basic() {
        let e = b"\"abc-1\"";
        assert!(if_none_match(b"\"abc-1\"", e));
        assert!(if_none_match(b"W/\"abc-1\"", e));
        assert!(if_none_match(b"*", e));
        assert!(if_none_match(b" * ", e));
        assert!(if_none_match(b"\"x\", \"abc-1\"", e));
        assert!(if_none_match(b"\"x\",W/\"abc-1\" ,\"y\"", e));
        assert!(if_none_match(b"\"abc-1\"", b"W/\"abc-1\""));
        assert!(!if_none_match(b"\"abc-2\"", e));
        assert!(!if_none_match(b"\"ABC-1\"", e));
        assert!(!if_none_match(b"", e));
        assert!(!if_none_match(b"  ,  ", e));
    }

    #[test]
    fn none_match_malformed_is_false() {
        let e = b"\"abc-1\"";
        for h in [
            &b"abc-1"[..],
            b"\"abc-1",
            b"\"abc-1\" \"x\"",
            b"\"abc-1\"x",
            b"w/\"abc-1\"",
            b"W/abc-1",
            b"\"abc-1\", bogus",
            b"\"a\"b\"",
            b"\"a b\", \"abc-1\"",
            b"**",
            b"\"abc-1\"\x00",
        ] {
            assert!(!if_none_match(h, e), "{:?}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn quoted_comma_is_part_of_tag() {
        assert!(if_none_match(b"\"a,b\"", b"\"a,b\""));
        assert!(!if_none_match(b"\"a,b\"", b"\"a\""));
    }

    #[test]
    fn if_match_is_strong() {
        let e = b"\"abc-1\"";
        assert!(if_match(b"\"abc-1\"", e));
        assert!(if_match(b"*", e));
        assert!(if_match(b"\"x\" , \"abc-1\"", e));
        assert!(!if_match(b"W/\"abc-1\"", e));
        assert!(!if_match(b"\"abc-1\"", b"W/\"abc-1\""));
        assert!(!if_match(b"\"abc-2\"", e));
        assert!(!if_match(b"\"abc-1\" garbage", e));
        assert!(!if_match(b"", e));
        assert!(if_match(b"*", b"not-a-valid-etag"));
        assert!(!if_match(b"\"x\"", b"not-a-valid-etag"));
    }

    #[test]
    fn modified_since() {
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        assert!(not_modified_since(date, 784_111_777));
        assert!(not_modified_since(date, 784_111_776));
        assert!(!not_modified_since(date, 784_111_778));
        assert!(not_modified_since(
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            784_111_777
        ));
        assert!(not_modified_since(b"Sun Nov  6 08:49:37 1994", 0));
        assert!(!not_modified_since(b"yesterday", 0));
        assert!(!not_modified_since(b"", i64::MIN));
    }

    #[test]
    fn lists_never_panic() {
        let pieces: &[&[u8]] = &[b"\"", b"W/", b"*", b",", b" ", b"a", b"\xff", b"W", b"/"];
        let mut state = 5u64;
        for _ in 0..20_000 {
            let mut h = Vec::new();
            loop {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let r = (state >> 33) as usize;
                if r.is_multiple_of(9) || h.len() > 24 {
                    break;
                }
                h.extend_from_slice(pieces[r % pieces.len()]);
            }
            let _ = if_none_match(&h, b"\"a\"");
            if if_match(&h, b"\"a\"") {
                assert!(
                    if_none_match(&h, b"\"a\""),
                    "strong match implies weak match: {h:?}"
                );
            }
        }
    }
}
