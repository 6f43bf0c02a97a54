//! `Cache-Control` parsing (RFC 9111 §5.2) and small helpers over plain
//! header lists `&[(&[u8], &[u8])]` (names compared case-insensitively).
//!
//! Request and response directives parse into one [`CacheControl`]; the
//! caller knows which side it came from. Repeated or conflicting directives
//! resolve to the most restrictive reading (§4.2.1): the smallest `max-age`,
//! `s-maxage`, `max-stale`, `stale-*`, the largest `min-fresh`; a malformed
//! `max-age`/`s-maxage` counts as 0 (stale), other malformed arguments are
//! ignored. Delta-seconds above 2^31 are 2^31 (§1.2.2).

#![deny(missing_docs)]

/// A header list: (name, value) pairs in wire order.
pub type Headers<'a, 'b> = &'a [(&'b [u8], &'b [u8])];

/// Largest delta-seconds value (RFC 9111 §1.2.2).
pub const DELTA_MAX: u64 = 1 << 31;

/// `max-stale` without a value: any staleness is acceptable.
pub const MAX_STALE_ANY: u64 = u64::MAX;

/// The directives of one or more `Cache-Control` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age=N` (request and response).
    pub max_age: Option<u64>,
    /// `s-maxage=N` (response; shared caches).
    pub s_maxage: Option<u64>,
    /// `max-stale[=N]` (request); [`MAX_STALE_ANY`] without a value.
    pub max_stale: Option<u64>,
    /// `min-fresh=N` (request).
    pub min_fresh: Option<u64>,
    /// `stale-while-revalidate=N` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861; request or response).
    pub stale_if_error: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `no-cache`.
    pub no_cache: bool,
    /// Field names of qualified `no-cache="a, b"` (lowercase).
    pub no_cache_fields: Vec<Vec<u8>>,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `public`.
    pub public: bool,
    /// Unqualified `private`.
    pub private: bool,
    /// Field names of qualified `private="a, b"` (lowercase).
    pub private_fields: Vec<Vec<u8>>,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
}

/// Values of every header named `name`, in order.
pub fn header_values<'h>(
    headers: &'h [(&'h [u8], &'h [u8])],
    name: &'h [u8],
) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The first header named `name`, trimmed.
pub fn first_header<'h>(headers: &[(&'h [u8], &'h [u8])], name: &[u8]) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_ascii())
}

/// Is there a header named `name`?
pub fn has_header(headers: Headers<'_, '_>, name: &[u8]) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// The non-empty, trimmed elements of a comma-separated list (quotes are not
/// special: for `Vary`, `Connection` and field-name lists).
pub fn comma_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|s| !s.is_empty())
}

/// Parses delta-seconds: digits only; overflow and values above 2^31 give 2^31.
pub fn delta_seconds(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        if v > DELTA_MAX {
            return Some(DELTA_MAX);
        }
    }
    Some(v)
}

fn min_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits one directive off `s`: returns (name, argument, rest). Commas inside
/// a quoted argument do not split; backslash escapes are resolved.
fn next_directive(s: &[u8]) -> (&[u8], Option<Vec<u8>>, &[u8]) {
    let name_end = s
        .iter()
        .position(|&b| b == b'=' || b == b',' || is_ows(b))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let mut i = name_end;
    while i < s.len() && is_ows(s[i]) {
        i += 1;
    }
    let mut arg = None;
    if s.get(i) == Some(&b'=') {
        i += 1;
        while i < s.len() && is_ows(s[i]) {
            i += 1;
        }
        let mut v = Vec::new();
        if s.get(i) == Some(&b'"') {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                v.push(s[i]);
                i += 1;
            }
            i = (i + 1).min(s.len()); // closing quote (or end of an unterminated string)
        } else {
            while i < s.len() && s[i] != b',' && !is_ows(s[i]) {
                v.push(s[i]);
                i += 1;
            }
        }
        arg = Some(v);
    }
    // Skip anything else up to the next comma.
    let rest = match s[i..].iter().position(|&b| b == b',') {
        Some(p) => &s[i + p + 1..],
        None => &[],
    };
    (name, arg, rest)
}

impl CacheControl {
    /// Parses every `Cache-Control` header in `headers`.
    pub fn from_headers(headers: Headers<'_, '_>) -> CacheControl {
        parse_cache_control(header_values(headers, b"cache-control"))
    }

    /// A request's directives: its `Cache-Control`, or, when it has none,
    /// `Pragma: no-cache` read as `no-cache` (RFC 7234 §5.4; HTTP/1.0 clients).
    pub fn from_request(headers: Headers<'_, '_>) -> CacheControl {
        if has_header(headers, b"cache-control") {
            return CacheControl::from_headers(headers);
        }
        let pragma_no_cache = header_values(headers, b"pragma")
            .flat_map(comma_list)
            .any(|t| t.eq_ignore_ascii_case(b"no-cache"));
        CacheControl {
            no_cache: pragma_no_cache,
            ..CacheControl::default()
        }
    }

    fn apply(&mut self, name: &[u8], arg: Option<Vec<u8>>) {
        let lower = name.to_ascii_lowercase();
        let delta = arg.as_deref().and_then(delta_seconds);
        let fields = |arg: &[u8]| -> Vec<Vec<u8>> {
            comma_list(arg).map(<[u8]>::to_ascii_lowercase).collect()
        };
        match lower.as_slice() {
            // Malformed freshness: treat as already stale (most restrictive).
            b"max-age" => self.max_age = min_opt(self.max_age, delta.unwrap_or(0)),
            b"s-maxage" => self.s_maxage = min_opt(self.s_maxage, delta.unwrap_or(0)),
            b"max-stale" => match (&arg, delta) {
                (None, _) => self.max_stale = min_opt(self.max_stale, MAX_STALE_ANY),
                (Some(_), Some(d)) => self.max_stale = min_opt(self.max_stale, d),
                (Some(_), None) => {}
            },
            b"min-fresh" => {
                if let Some(d) = delta {
                    self.min_fresh = Some(self.min_fresh.map_or(d, |m| m.max(d)));
                }
            }
            b"stale-while-revalidate" => {
                if let Some(d) = delta {
                    self.stale_while_revalidate = min_opt(self.stale_while_revalidate, d);
                }
            }
            b"stale-if-error" => {
                if let Some(d) = delta {
                    self.stale_if_error = min_opt(self.stale_if_error, d);
                }
            }
            b"no-store" => self.no_store = true,
            b"no-cache" => match arg.as_deref().map(fields) {
                Some(f) if !f.is_empty() => self.no_cache_fields.extend(f),
                _ => self.no_cache = true,
            },
            b"private" => match arg.as_deref().map(fields) {
                Some(f) if !f.is_empty() => self.private_fields.extend(f),
                _ => self.private = true,
            },
            b"must-revalidate" => self.must_revalidate = true,
            b"proxy-revalidate" => self.proxy_revalidate = true,
            b"public" => self.public = true,
            b"only-if-cached" => self.only_if_cached = true,
            b"no-transform" => self.no_transform = true,
            b"immutable" => self.immutable = true,
            _ => {} // unknown extensions are ignored (§5.2.3)
        }
    }
}

/// Parses the directives of the given `Cache-Control` field values
/// (case-insensitive names, token or quoted arguments, duplicates resolved to
/// the most restrictive). Never fails: unknown or garbled directives are skipped.
pub fn parse_cache_control<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> CacheControl {
    let mut cc = CacheControl::default();
    for value in values {
        let mut rest = value;
        while !rest.is_empty() {
            let start = rest
                .iter()
                .position(|&b| b != b',' && !is_ows(b))
                .unwrap_or(rest.len());
            rest = &rest[start..];
            if rest.is_empty() {
                break;
            }
            let (name, arg, next) = next_directive(rest);
            if !name.is_empty() {
                cc.apply(name, arg);
            }
            rest = next;
        }
    }
    cc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(v: &str) -> CacheControl {
        parse_cache_control([v.as_bytes()])
    }

    #[test]
    fn parses_all_directives_case_insensitively() {
        let c = cc(
            "Public, MAX-AGE=60, s-maxage=30, must-revalidate, Proxy-Revalidate, \
                    no-transform, immutable, stale-while-revalidate=5, stale-if-error=600",
        );
        assert!(
            c.public && c.must_revalidate && c.proxy_revalidate && c.no_transform && c.immutable
        );
        assert_eq!((c.max_age, c.s_maxage), (Some(60), Some(30)));
        assert_eq!(
            (c.stale_while_revalidate, c.stale_if_error),
            (Some(5), Some(600))
        );
        let r = cc("no-cache, no-store, max-stale, min-fresh=10, only-if-cached");
        assert!(r.no_cache && r.no_store && r.only_if_cached);
        assert_eq!((r.max_stale, r.min_fresh), (Some(MAX_STALE_ANY), Some(10)));
        assert_eq!(cc("max-stale=20").max_stale, Some(20));
        assert_eq!(cc(""), CacheControl::default());
    }

    #[test]
    fn quoted_arguments_and_commas_inside_quotes() {
        let c = cc(r#"max-age="120", private="Set-Cookie, X-Token", no-cache="a\"b""#);
        assert_eq!(c.max_age, Some(120));
        assert!(!c.private && !c.no_cache);
        assert_eq!(
            c.private_fields,
            vec![b"set-cookie".to_vec(), b"x-token".to_vec()]
        );
        assert_eq!(c.no_cache_fields, vec![b"a\"b".to_vec()]);
        let c = cc("private, no-cache=\"\"");
        assert!(c.private && c.no_cache);
        let c = cc("max-age = 5 , public");
        assert_eq!(c.max_age, Some(5));
        assert!(c.public);
    }

    #[test]
    fn duplicates_take_the_most_restrictive_value() {
        let c = parse_cache_control([
            &b"max-age=60, max-age=10"[..],
            b"max-age=30, min-fresh=5, min-fresh=9",
        ]);
        assert_eq!((c.max_age, c.min_fresh), (Some(10), Some(9)));
        let c = cc("max-stale, max-stale=7, stale-if-error=100, stale-if-error=50");
        assert_eq!((c.max_stale, c.stale_if_error), (Some(7), Some(50)));
        // Malformed freshness means stale; malformed other arguments are ignored.
        let c =
            cc("max-age=abc, s-maxage=-1, min-fresh=x, stale-while-revalidate=1.5, max-stale=q");
        assert_eq!((c.max_age, c.s_maxage), (Some(0), Some(0)));
        assert_eq!(
            (c.min_fresh, c.stale_while_revalidate, c.max_stale),
            (None, None, None)
        );
        assert_eq!(cc("max-age").max_age, Some(0));
    }

    #[test]
    fn huge_delta_seconds_cap_at_2_pow_31() {
        assert_eq!(
            cc("max-age=99999999999999999999999").max_age,
            Some(DELTA_MAX)
        );
        assert_eq!(cc("max-age=2147483649").max_age, Some(DELTA_MAX));
        assert_eq!(cc("max-age=2147483647").max_age, Some(DELTA_MAX - 1));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            ",,,",
            "=",
            "\"",
            "max-age=\"",
            "no-cache=\"a,",
            "\\",
            "a=b=c, ,=,",
            "private=\"\\",
        ] {
            let _ = cc(s);
        }
        let mut seed = 12345u64;
        for _ in 0..5000 {
            let v: Vec<u8> = (0..(seed % 40))
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"a=\",\\ -m0x"[(seed >> 60) as usize % 10]
                })
                .collect();
            let _ = parse_cache_control([v.as_slice()]);
        }
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        let h: &[(&[u8], &[u8])] = &[(b"Pragma", b"no-cache")];
        assert!(CacheControl::from_request(h).no_cache);
        let h: &[(&[u8], &[u8])] = &[(b"Pragma", b"no-cache"), (b"Cache-Control", b"max-age=5")];
        let c = CacheControl::from_request(h);
        assert!(!c.no_cache);
        assert_eq!(c.max_age, Some(5));
    }

    #[test]
    fn header_helpers() {
        let h: &[(&[u8], &[u8])] = &[(b"Vary", b" Accept ,, Cookie"), (b"vary", b"X")];
        let names: Vec<&[u8]> = header_values(h, b"VARY").flat_map(comma_list).collect();
        assert_eq!(names, vec![&b"Accept"[..], b"Cookie", b"X"]);
        assert_eq!(first_header(h, b"vary"), Some(&b"Accept ,, Cookie"[..]));
        assert!(has_header(h, b"VaRy") && !has_header(h, b"etag"));
        assert_eq!(delta_seconds(b""), None);
        assert_eq!(delta_seconds(b"007"), Some(7));
    }
}
