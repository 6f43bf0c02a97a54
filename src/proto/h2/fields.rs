//! A request's header block as the connection decoded it, checked the way
//! RFC 9113 §8.2–§8.3 asks: pseudo-header fields first, each once, the
//! four request ones only; lowercase names; no connection-specific fields;
//! no CR, LF or NUL in a value; `:method`, `:scheme` and `:path` present
//! (CONNECT aside). A request that breaks a rule is *malformed* (a stream
//! error), one over the size limits is *too large* (answered 431); either
//! way the block was decoded to the end, so the compression state holds.
//!
//! Fields live in one arena whose storage a stream keeps.

/// A field: spans of the arena.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    name_end: u32,
    end: u32,
}

/// Span of the arena.
pub type Span = (u32, u32);

/// A request head from a header block.
#[derive(Debug, Default)]
pub struct ReqFields {
    buf: Vec<u8>,
    fields: Vec<Field>,
    method: Option<Span>,
    scheme: Option<Span>,
    authority: Option<Span>,
    path: Option<Span>,
    /// `content-length`, when sent.
    pub content_length: Option<u64>,
    /// A rule of §8.2–§8.3 was broken (what, for the log).
    pub malformed: Option<&'static str>,
    /// A field or the whole list was over the limits.
    pub too_large: bool,
    regular_seen: bool,
    max_field_bytes: usize,
    max_list_bytes: usize,
    size: usize,
}

/// Fields HTTP/2 forbids (§8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

fn is_name_byte(b: u8) -> bool {
    // tchar without uppercase (RFC 9110 §5.6.2).
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\''
        | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

impl ReqFields {
    /// Start a new block with these limits (storage kept).
    pub fn reset(&mut self, max_field_bytes: usize, max_list_bytes: usize) {
        self.buf.clear();
        self.fields.clear();
        self.method = None;
        self.scheme = None;
        self.authority = None;
        self.path = None;
        self.content_length = None;
        self.malformed = None;
        self.too_large = false;
        self.regular_seen = false;
        self.max_field_bytes = max_field_bytes;
        self.max_list_bytes = max_list_bytes;
        self.size = 0;
    }

    fn bad(&mut self, why: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some(why);
        }
    }

    fn store(&mut self, v: &[u8]) -> Span {
        let s = self.buf.len() as u32;
        self.buf.extend_from_slice(v);
        (s, self.buf.len() as u32)
    }

    /// Take one decoded field (trailers: `trailer` set, no pseudo-fields).
    pub fn add(&mut self, name: &[u8], value: &[u8], trailer: bool) {
        if self.malformed.is_some() || self.too_large {
            return;
        }
        self.size += name.len() + value.len() + 32;
        if name.len() + value.len() > self.max_field_bytes || self.size > self.max_list_bytes {
            self.too_large = true;
            return;
        }
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return self.bad("CR, LF or NUL in a field value");
        }
        if let Some(p) = name.strip_prefix(b":") {
            if self.regular_seen || trailer {
                return self.bad("pseudo-header field after a regular field");
            }
            let slot = match p {
                b"method" => &self.method,
                b"scheme" => &self.scheme,
                b"authority" => &self.authority,
                b"path" => &self.path,
                _ => return self.bad("unknown pseudo-header field"),
            };
            if slot.is_some() {
                return self.bad("repeated pseudo-header field");
            }
            let span = self.store(value);
            match p {
                b"method" => self.method = Some(span),
                b"scheme" => self.scheme = Some(span),
                b"authority" => self.authority = Some(span),
                _ => self.path = Some(span),
            }
            return;
        }
        self.regular_seen = true;
        if name.is_empty() || !name.iter().all(|&b| is_name_byte(b)) {
            return self.bad("invalid field name");
        }
        if CONNECTION_SPECIFIC.contains(&name) {
            return self.bad("connection-specific field");
        }
        if name == b"te" && value != b"trailers" {
            return self.bad("te other than trailers");
        }
        if trailer {
            return; // trailers are checked, not kept
        }
        if name == b"content-length" {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (n, self.content_length) {
                (None, _) => return self.bad("invalid content-length"),
                (Some(a), Some(b)) if a != b => return self.bad("differing content-length"),
                (Some(a), _) => self.content_length = Some(a),
            }
        }
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let name_end = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.fields.push(Field {
            start,
            name_end,
            end: self.buf.len() as u32,
        });
    }

    /// The block is complete: check what must be there.
    pub fn finish(&mut self) {
        if self.malformed.is_some() || self.too_large {
            return;
        }
        let Some(m) = self.method else {
            return self.bad("no :method");
        };
        if self.span(m) == b"CONNECT" {
            if self.authority.is_none() || self.path.is_some() || self.scheme.is_some() {
                self.bad("CONNECT with :path or :scheme or without :authority");
            }
            return;
        }
        match self.path.map(|p| self.span(p)) {
            None | Some(b"") => return self.bad("no :path"),
            Some(p) if p[0] != b'/' && p != b"*" => return self.bad(":path not origin-form"),
            _ => {}
        }
        if self.scheme.is_none() {
            self.bad("no :scheme");
        }
    }

    fn span(&self, s: Span) -> &[u8] {
        &self.buf[s.0 as usize..s.1 as usize]
    }

    /// `:method`.
    pub fn method(&self) -> &[u8] {
        self.method.map_or(&b""[..], |s| self.span(s))
    }

    /// `:path`.
    pub fn path(&self) -> &[u8] {
        self.path.map_or(&b""[..], |s| self.span(s))
    }

    /// `:scheme`.
    pub fn scheme(&self) -> &[u8] {
        self.scheme.map_or(&b""[..], |s| self.span(s))
    }

    /// `:authority`, when sent.
    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.map(|s| self.span(s))
    }

    /// The regular fields in order, as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|f| {
            (
                &self.buf[f.start as usize..f.name_end as usize],
                &self.buf[f.name_end as usize..f.end as usize],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fields: &[(&str, &str)]) -> ReqFields {
        let mut r = ReqFields::default();
        r.reset(8192, 32768);
        for (n, v) in fields {
            r.add(n.as_bytes(), v.as_bytes(), false);
        }
        r.finish();
        r
    }

    const GOOD: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b"),
    ];

    #[test]
    fn a_well_formed_request_keeps_its_pseudo_and_regular_fields() {
        let mut f = GOOD.to_vec();
        f.push(("accept", "*/*"));
        f.push(("content-length", "5"));
        let r = block(&f);
        assert_eq!(r.malformed, None);
        assert_eq!(r.method(), b"GET");
        assert_eq!(r.path(), b"/a?b");
        assert_eq!(r.authority(), Some(&b"example.com"[..]));
        assert_eq!(r.content_length, Some(5));
        assert_eq!(r.fields().count(), 2);
    }

    #[test]
    fn each_rule_of_rfc9113_8_2_and_8_3_makes_a_request_malformed() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![(":method", "GET"), (":scheme", "http")],
            vec![(":method", "GET"), (":path", "/")],
            vec![(":scheme", "http"), (":path", "/")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "x")],
            vec![
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":status", "200"),
            ],
            vec![
                (":method", "GET"),
                ("accept", "x"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("Accept", "x"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("connection", "x"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("x", "a\r\nb: c"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("content-length", "x"),
            ],
            vec![(":method", "CONNECT"), (":scheme", "http"), (":path", "/")],
        ];
        for c in cases {
            assert!(block(&c).malformed.is_some(), "{c:?}");
        }
        let mut te = GOOD.to_vec();
        te.push(("te", "trailers"));
        assert_eq!(block(&te).malformed, None);
    }

    #[test]
    fn fields_over_the_limits_mark_the_request_too_large() {
        let mut r = ReqFields::default();
        r.reset(100, 1000);
        for (n, v) in GOOD {
            r.add(n.as_bytes(), v.as_bytes(), false);
        }
        r.add(b"x-big", &[b'a'; 200], false);
        r.finish();
        assert!(r.too_large);
        r.reset(100, 200);
        for i in 0..10 {
            r.add(format!("x-{i}").as_bytes(), b"0123456789", false);
        }
        assert!(r.too_large);
    }
}
