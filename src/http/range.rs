//! `Range: bytes=...` parsing for a single byte range (RFC 9110 §14).
//!
//! We serve one range or the whole representation: a multi-range request gets a
//! plain 200 (which the RFC allows), an invalid header is ignored, and only a range
//! set that cannot be satisfied at all gets 416.

#![deny(missing_docs)]

/// What to send for a `Range` header.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RangeResult {
    /// Ignore the header: send the whole representation (200).
    Full,
    /// Send bytes `start..=end_inclusive` (206); both are within the representation.
    Single {
        /// Offset of the first byte.
        start: u64,
        /// Offset of the last byte, inclusive (`< size`).
        end_inclusive: u64,
    },
    /// No requested range overlaps the representation (416).
    Unsatisfiable,
}

/// One parsed `range-spec`.
enum Spec {
    /// `first-last` or `first-` (`last` = `None`).
    Int { first: u64, last: Option<u64> },
    /// `-suffix_len`.
    Suffix { suffix_len: u64 },
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Parses a non-empty run of ASCII digits; `None` if empty, not digits or > u64::MAX.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Parses one `range-spec` (already trimmed, non-empty); `None` = syntax error.
fn parse_spec(s: &[u8]) -> Option<Spec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (trim_ows(&s[..dash]), trim_ows(&s[dash + 1..]));
    if first.is_empty() {
        return Some(Spec::Suffix {
            suffix_len: parse_u64(last)?,
        });
    }
    let first = parse_u64(first)?;
    if last.is_empty() {
        return Some(Spec::Int { first, last: None });
    }
    let last = parse_u64(last)?;
    if last < first {
        return None;
    }
    Some(Spec::Int {
        first,
        last: Some(last),
    })
}

/// Resolves a spec against the representation size; `None` = unsatisfiable.
fn resolve(spec: &Spec, size: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    match *spec {
        Spec::Int { first, last } => {
            if first >= size {
                return None;
            }
            let end = last.map_or(size - 1, |l| l.min(size - 1));
            Some((first, end))
        }
        Spec::Suffix { suffix_len } => {
            if suffix_len == 0 {
                return None;
            }
            Some((size.saturating_sub(suffix_len), size - 1))
        }
    }
}

/// Decides what to send for a `Range` header value and a representation of `size`
/// bytes.
///
/// `bytes=0-99`, `bytes=100-` and `bytes=-500` (a suffix longer than the
/// representation means all of it) give `Single`, with the end clamped to `size - 1`.
/// The unit is case-insensitive and whitespace around tokens is tolerated. Several
/// ranges give `Full`, unless none is satisfiable (`Unsatisfiable`). A syntax error
/// (`bytes=abc`, `bytes=5-2`, another unit, no range, a number above `u64::MAX`)
/// gives `Full`: the header is ignored.
pub fn parse_range(header: &[u8], size: u64) -> RangeResult {
    let Some(eq) = header.iter().position(|&b| b == b'=') else {
        return RangeResult::Full;
    };
    if !trim_ows(&header[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeResult::Full;
    }
    let mut specs = 0usize;
    let mut single = None;
    let mut any_satisfiable = false;
    // Empty list elements (`bytes=0-1,,`) are allowed by the list rule (RFC 9110 §5.6.1).
    for part in header[eq + 1..].split(|&b| b == b',').map(trim_ows) {
        if part.is_empty() {
            continue;
        }
        let Some(spec) = parse_spec(part) else {
            return RangeResult::Full;
        };
        specs += 1;
        if let Some(range) = resolve(&spec, size) {
            any_satisfiable = true;
            single = Some(range);
        }
    }
    match (specs, any_satisfiable, single) {
        (0, _, _) => RangeResult::Full,
        (_, false, _) => RangeResult::Unsatisfiable,
        (1, true, Some((start, end_inclusive))) => RangeResult::Single {
            start,
            end_inclusive,
        },
        _ => RangeResult::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(start: u64, end_inclusive: u64) -> RangeResult {
        RangeResult::Single {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn basic_forms() {
        assert_eq!(parse_range(b"bytes=0-99", 1000), single(0, 99));
        assert_eq!(parse_range(b"bytes=100-", 1000), single(100, 999));
        assert_eq!(parse_range(b"bytes=-500", 1000), single(500, 999));
        assert_eq!(parse_range(b"bytes=0-0", 1000), single(0, 0));
        assert_eq!(parse_range(b"bytes=999-999", 1000), single(999, 999));
    }

    #[test]
    fn clamping() {
        assert_eq!(parse_range(b"bytes=0-5000", 1000), single(0, 999));
        assert_eq!(parse_range(b"bytes=-5000", 1000), single(0, 999));
        assert_eq!(parse_range(b"bytes=-1000", 1000), single(0, 999));
        assert_eq!(
            parse_range(b"bytes=990-18446744073709551615", 1000),
            single(990, 999)
        );
    }

    #[test]
    fn unit_case_and_whitespace() {
        assert_eq!(parse_range(b"BYTES=1-2", 10), single(1, 2));
        assert_eq!(parse_range(b"Bytes=1-2", 10), single(1, 2));
        assert_eq!(parse_range(b"  bytes = 1 - 2  ", 10), single(1, 2));
        assert_eq!(parse_range(b"bytes=\t-3\t", 10), single(7, 9));
        assert_eq!(parse_range(b"bytes=1-2,", 10), single(1, 2));
        assert_eq!(parse_range(b"bytes=, ,1-2", 10), single(1, 2));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(
            parse_range(b"bytes=1000-", 1000),
            RangeResult::Unsatisfiable
        );
        assert_eq!(
            parse_range(b"bytes=1000-2000", 1000),
            RangeResult::Unsatisfiable
        );
        assert_eq!(parse_range(b"bytes=-0", 1000), RangeResult::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-0", 0), RangeResult::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-5", 0), RangeResult::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), RangeResult::Unsatisfiable);
        assert_eq!(
            parse_range(b"bytes=2000-,3000-4000", 1000),
            RangeResult::Unsatisfiable
        );
        assert_eq!(
            parse_range(b"bytes=-0,5000-", 1000),
            RangeResult::Unsatisfiable
        );
    }

    #[test]
    fn multiple_ranges_serve_full() {
        assert_eq!(parse_range(b"bytes=0-1,5-6", 1000), RangeResult::Full);
        assert_eq!(parse_range(b"bytes=0-1, 2000-", 1000), RangeResult::Full);
        assert_eq!(parse_range(b"bytes=2000-, -5", 1000), RangeResult::Full);
    }

    #[test]
    fn invalid_is_ignored() {
        for h in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=,",
            b"bytes=abc",
            b"bytes=5-2",
            b"bytes=-",
            b"bytes=--5",
            b"bytes=1-2-3",
            b"bytes=+1-2",
            b"bytes=0x10-20",
            b"bytes=1 2-3",
            b"bytes=0-1,abc",
            b"items=0-5",
            b"bits=0-5",
            b"=0-5",
            b"bytes=18446744073709551616-",
            b"bytes=-18446744073709551616",
            b"bytes=0-99999999999999999999999",
            b"bytes=\xff-1",
        ] {
            assert_eq!(
                parse_range(h, 1000),
                RangeResult::Full,
                "{:?}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn max_u64_values() {
        assert_eq!(parse_range(b"bytes=0-", u64::MAX), single(0, u64::MAX - 1));
        assert_eq!(
            parse_range(b"bytes=-18446744073709551615", 10),
            single(0, 9)
        );
        assert_eq!(
            parse_range(b"bytes=18446744073709551615-", 10),
            RangeResult::Unsatisfiable
        );
    }

    #[test]
    fn property_results_are_within_size() {
        let pieces: &[&[u8]] = &[
            b"bytes=",
            b"0",
            b"1",
            b"9",
            b"-",
            b",",
            b" ",
            b"99",
            b"x",
            b"18446744073709551615",
        ];
        let mut state = 7u64;
        let mut rnd = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut singles = 0;
        for _ in 0..20_000 {
            let mut h = b"bytes=".to_vec();
            for _ in 0..rnd() % 8 {
                h.extend_from_slice(pieces[rnd() % pieces.len()]);
            }
            for size in [0u64, 1, 10, 100, u64::MAX] {
                match parse_range(&h, size) {
                    RangeResult::Single {
                        start,
                        end_inclusive,
                    } => {
                        singles += 1;
                        assert!(
                            start <= end_inclusive && end_inclusive < size,
                            "{h:?} {size}"
                        );
                    }
                    RangeResult::Unsatisfiable => {
                        // Nothing can be unsatisfiable when the header has no range.
                        assert!(h.iter().any(|b| b.is_ascii_digit()), "{h:?}");
                    }
                    RangeResult::Full => {}
                }
            }
        }
        assert!(
            singles > 1_000,
            "generator reaches the Single case ({singles})"
        );
    }
}
