//! Access-log line formats: nginx `combined` and one-JSON-object-per-line.
//!
//! Hot path: each function appends one line (ending in `\n`) to a reusable buffer
//! and allocates nothing else. Client-controlled bytes are escaped so a line can
//! never be split or forged, whatever the request contained.

#![deny(missing_docs)]

use crate::util::httpdate::{format_iso8601, format_log_time};
use std::io::Write as _;
use std::net::IpAddr;

/// Everything an access-log line needs about one finished request.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// Client address.
    pub remote_addr: IpAddr,
    /// When the request finished (Unix seconds, UTC).
    pub time_unix: i64,
    /// Request method as received.
    pub method: &'a [u8],
    /// Raw request target as received.
    pub target: &'a [u8],
    /// 0 or 1 for `HTTP/1.0` / `HTTP/1.1`; 9 when the request line was not parsed.
    pub version_minor: u8,
    /// When the request line could not be parsed: what to log as `$request`
    /// (may be empty).
    pub request_line_raw: Option<&'a [u8]>,
    /// Response status code.
    pub status: u16,
    /// Body bytes sent to the client (nginx `$body_bytes_sent`).
    pub body_bytes_sent: u64,
    /// `Referer` header, if any.
    pub referer: Option<&'a [u8]>,
    /// `User-Agent` header, if any.
    pub user_agent: Option<&'a [u8]>,
    /// `Host` header (or absolute-form host), if any.
    pub host: Option<&'a [u8]>,
    /// Time from the first request byte to the last response byte, in microseconds.
    pub request_time_us: u64,
}

impl AccessRecord<'_> {
    /// `version_minor` value meaning the request line was not parsed.
    pub const VERSION_UNPARSED: u8 = 9;
    /// `version_minor` value meaning HTTP/2 (logged `HTTP/2.0`).
    pub const VERSION_H2: u8 = 20;

    /// What to log instead of method/target/version when the request line was not
    /// parsed: `Some(Some(raw))`, or `Some(None)` when there is nothing at all (nginx
    /// logs `-` then, as for any variable that is not found).
    fn unparsed_line(&self) -> Option<Option<&[u8]>> {
        match (self.request_line_raw, self.version_minor) {
            (Some(raw), _) => Some(Some(raw)),
            (None, Self::VERSION_UNPARSED) => Some(None),
            (None, _) => None,
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// nginx's default `log_format` escaping: `"`, `\`, bytes < 0x20 and >= 0x7f become
/// `\xHH` (uppercase hex). Runs of safe bytes are copied at once.
fn push_nginx_escaped(s: &[u8], out: &mut Vec<u8>) {
    let mut run_start = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&s[run_start..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&s[run_start..]);
}

/// Appends `"escaped"` or `-` (nginx's value for an absent variable).
fn push_quoted_or_dash(v: Option<&[u8]>, out: &mut Vec<u8>) {
    out.push(b'"');
    match v {
        Some(v) => push_nginx_escaped(v, out),
        None => out.push(b'-'),
    }
    out.push(b'"');
}

fn push_u64(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_addr(addr: IpAddr, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail; Display for IpAddr does not allocate.
    let _ = write!(out, "{addr}");
}

/// `HTTP/1.<minor>` (the minor digit as a decimal number).
fn push_protocol(version_minor: u8, out: &mut Vec<u8>) {
    if version_minor == AccessRecord::VERSION_H2 {
        out.extend_from_slice(b"HTTP/2.0");
        return;
    }
    out.extend_from_slice(b"HTTP/1.");
    push_u64(u64::from(version_minor), out);
}

/// Seconds with millisecond resolution, truncated, like nginx `$request_time`.
fn push_request_time(request_time_us: u64, out: &mut Vec<u8>) {
    crate::util::units::put_secs_from_ms(request_time_us / 1000, out);
}

/// Appends one nginx `combined` line:
/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"\n`, with `-` for an absent header and nginx's
/// `\xHH` escaping inside the quoted fields. An unparsed request line is logged as
/// received (`request_line_raw`), or as `-` when there is none.
pub fn format_combined(rec: &AccessRecord<'_>, out: &mut Vec<u8>) {
    push_addr(rec.remote_addr, out);
    out.extend_from_slice(b" - - [");
    let mut time = [0u8; 26];
    format_log_time(rec.time_unix, &mut time);
    out.extend_from_slice(&time);
    out.extend_from_slice(b"] \"");
    match rec.unparsed_line() {
        Some(Some(raw)) => push_nginx_escaped(raw, out),
        Some(None) => out.push(b'-'),
        None => {
            push_nginx_escaped(rec.method, out);
            out.push(b' ');
            push_nginx_escaped(rec.target, out);
            out.push(b' ');
            push_protocol(rec.version_minor, out);
        }
    }
    out.extend_from_slice(b"\" ");
    push_u64(u64::from(rec.status), out);
    out.push(b' ');
    push_u64(rec.body_bytes_sent, out);
    out.push(b' ');
    push_quoted_or_dash(rec.referer, out);
    out.push(b' ');
    push_quoted_or_dash(rec.user_agent, out);
    out.push(b'\n');
}

use crate::util::json::escape as push_json_escaped;

/// Appends `,"key":"escaped"` or `,"key":null`.
fn push_json_opt(key: &[u8], v: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":");
    match v {
        Some(v) => {
            out.push(b'"');
            push_json_escaped(v, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends one JSON object and `\n`:
/// `{"time":"1994-11-06T08:49:37+00:00","remote_addr":"…","method":"…","uri":"…",
/// "protocol":"HTTP/1.1","status":200,"body_bytes_sent":612,"referer":"…"|null,
/// "user_agent":"…"|null,"host":"…"|null,"request_time":0.001}`.
///
/// When the request line was not parsed, `uri` holds the raw line (may be empty)
/// and `protocol` is `""`.
pub fn format_json(rec: &AccessRecord<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    let mut time = [0u8; 25];
    format_iso8601(rec.time_unix, &mut time);
    out.extend_from_slice(&time);
    out.extend_from_slice(b"\",\"remote_addr\":\"");
    push_addr(rec.remote_addr, out);
    out.extend_from_slice(b"\",\"method\":\"");
    push_json_escaped(rec.method, out);
    out.extend_from_slice(b"\",\"uri\":\"");
    let unparsed = rec.unparsed_line();
    push_json_escaped(unparsed.map_or(rec.target, |raw| raw.unwrap_or(b"")), out);
    out.extend_from_slice(b"\",\"protocol\":\"");
    if unparsed.is_none() {
        push_protocol(rec.version_minor, out);
    }
    out.extend_from_slice(b"\",\"status\":");
    push_u64(u64::from(rec.status), out);
    out.extend_from_slice(b",\"body_bytes_sent\":");
    push_u64(rec.body_bytes_sent, out);
    push_json_opt(b"referer", rec.referer, out);
    push_json_opt(b"user_agent", rec.user_agent, out);
    push_json_opt(b"host", rec.host, out);
    out.extend_from_slice(b",\"request_time\":");
    push_request_time(rec.request_time_us, out);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn sample() -> AccessRecord<'static> {
        AccessRecord {
            remote_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            time_unix: 784_111_777,
            method: b"GET",
            target: b"/index.html?a=1",
            version_minor: 1,
            request_line_raw: None,
            status: 200,
            body_bytes_sent: 612,
            referer: Some(b"http://example.com/"),
            user_agent: Some(b"curl/8.5.0"),
            host: Some(b"example.com"),
            request_time_us: 1_234,
        }
    }

    fn combined(rec: &AccessRecord<'_>) -> String {
        let mut out = Vec::new();
        format_combined(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn json(rec: &AccessRecord<'_>) -> String {
        let mut out = Vec::new();
        format_json(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_exact_line() {
        assert_eq!(
            combined(&sample()),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /index.html?a=1 HTTP/1.1\" 200 612 \"http://example.com/\" \"curl/8.5.0\"\n"
        );
    }

    #[test]
    fn combined_absent_headers_and_http10_and_ipv6() {
        let rec = AccessRecord {
            remote_addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            version_minor: 0,
            referer: None,
            user_agent: None,
            status: 404,
            body_bytes_sent: 0,
            ..sample()
        };
        assert_eq!(
            combined(&rec),
            "::1 - - [06/Nov/1994:08:49:37 +0000] \"GET /index.html?a=1 HTTP/1.0\" 404 0 \"-\" \"-\"\n"
        );
        let rec = AccessRecord {
            referer: Some(b""),
            ..rec
        };
        assert!(combined(&rec).ends_with(" 404 0 \"\" \"-\"\n"));
    }

    #[test]
    fn combined_unparsed_request_line() {
        let rec = AccessRecord {
            version_minor: 9,
            request_line_raw: Some(b"\x16\x03\x01 junk \"q\""),
            status: 400,
            body_bytes_sent: 150,
            referer: None,
            user_agent: None,
            ..sample()
        };
        assert_eq!(
            combined(&rec),
            "192.0.2.7 - - [06/Nov/1994:08:49:37 +0000] \"\\x16\\x03\\x01 junk \\x22q\\x22\" 400 150 \"-\" \"-\"\n"
        );
        let rec = AccessRecord {
            request_line_raw: None,
            ..rec
        };
        assert!(combined(&rec).contains("] \"-\" 400 150"));
        assert!(json(&rec).contains("\"uri\":\"\",\"protocol\":\"\","));
        let rec = AccessRecord {
            request_line_raw: Some(b""),
            version_minor: 1,
            ..rec
        };
        assert!(combined(&rec).contains("] \"\" 400 150"));
    }

    #[test]
    fn combined_escapes_like_nginx() {
        let rec = AccessRecord {
            target: b"/a b\"c\\d\x7f\xc3\xa9",
            user_agent: Some(b"evil\"\n1.2.3.4 - - [x] \"GET / HTTP/1.1\" 200 0 \"-\" \"-\0"),
            ..sample()
        };
        let line = combined(&rec);
        assert!(
            line.contains("\"GET /a b\\x22c\\x5Cd\\x7F\\xC3\\xA9 HTTP/1.1\""),
            "{line}"
        );
        assert!(line.ends_with(
            "\"evil\\x22\\x0A1.2.3.4 - - [x] \\x22GET / HTTP/1.1\\x22 200 0 \\x22-\\x22 \\x22-\\x00\"\n"
        ), "{line}");
    }

    #[test]
    fn json_exact_line() {
        assert_eq!(
            json(&sample()),
            "{\"time\":\"1994-11-06T08:49:37+00:00\",\"remote_addr\":\"192.0.2.7\",\"method\":\"GET\",\"uri\":\"/index.html?a=1\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"body_bytes_sent\":612,\"referer\":\"http://example.com/\",\"user_agent\":\"curl/8.5.0\",\"host\":\"example.com\",\"request_time\":0.001}\n"
        );
    }

    #[test]
    fn json_nulls_and_unparsed() {
        let rec = AccessRecord {
            version_minor: 9,
            request_line_raw: Some(b"BAD"),
            method: b"",
            referer: None,
            user_agent: None,
            host: None,
            status: 400,
            request_time_us: 12_345_678,
            ..sample()
        };
        assert_eq!(
            json(&rec),
            "{\"time\":\"1994-11-06T08:49:37+00:00\",\"remote_addr\":\"192.0.2.7\",\"method\":\"\",\"uri\":\"BAD\",\"protocol\":\"\",\"status\":400,\"body_bytes_sent\":612,\"referer\":null,\"user_agent\":null,\"host\":null,\"request_time\":12.345}\n"
        );
    }

    #[test]
    fn json_escaping() {
        let rec = AccessRecord {
            user_agent: Some(b"q\"b\\s\n\r\t\0\x1f\x7f caf\xc3\xa9 \xe2\x82\xac bad\xff\xc3"),
            ..sample()
        };
        let line = json(&rec);
        assert!(
            line.contains(
                "\"user_agent\":\"q\\\"b\\\\s\\u000a\\u000d\\u0009\\u0000\\u001f\\u007f café € bad\\u00ff\\u00c3\""
            ),
            "{line}"
        );
    }

    #[test]
    fn request_time_formatting() {
        let mut out = Vec::new();
        for (us, want) in [
            (0u64, "0.000"),
            (999, "0.000"),
            (1_000, "0.001"),
            (1_999_999, "1.999"),
            (60_000_000, "60.000"),
            (u64::MAX, "18446744073709.551"),
        ] {
            out.clear();
            push_request_time(us, &mut out);
            assert_eq!(out, want.as_bytes());
        }
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = b"prev\n".to_vec();
        format_combined(&sample(), &mut out);
        format_json(&sample(), &mut out);
        assert!(out.starts_with(b"prev\n192.0.2.7 "));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3);
    }

    /// Minimal JSON parser for the flat objects we emit: string, integer, decimal
    /// and null values. Returns the decoded (key, value) pairs.
    fn parse_flat_json(s: &str) -> Option<Vec<(String, String)>> {
        let b = s.as_bytes();
        let mut i = 0;
        fn string(b: &[u8], i: &mut usize) -> Option<String> {
            if b.get(*i) != Some(&b'"') {
                return None;
            }
            *i += 1;
            let mut out = String::new();
            loop {
                let c = *b.get(*i)?;
                *i += 1;
                match c {
                    b'"' => return Some(out),
                    b'\\' => {
                        let e = *b.get(*i)?;
                        *i += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'u' => {
                                let hex = std::str::from_utf8(b.get(*i..*i + 4)?).ok()?;
                                *i += 4;
                                out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                            }
                            _ => return None,
                        }
                    }
                    c if c < 0x20 => return None,
                    _ => {
                        // Copy one UTF-8 character.
                        let start = *i - 1;
                        let len = match c {
                            0..=0x7f => 1,
                            0xc0..=0xdf => 2,
                            0xe0..=0xef => 3,
                            _ => 4,
                        };
                        out.push_str(std::str::from_utf8(b.get(start..start + len)?).ok()?);
                        *i = start + len;
                    }
                }
            }
        }
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        let mut pairs = Vec::new();
        loop {
            let key = string(b, &mut i)?;
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            let value = if b.get(i) == Some(&b'"') {
                string(b, &mut i)?
            } else {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                let v = &s[start..i];
                let ok = v == "null" || (!v.is_empty() && v.parse::<f64>().is_ok());
                if !ok {
                    return None;
                }
                v.to_string()
            };
            pairs.push((key, value));
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    return (b.get(i + 1..) == Some(&b"\n"[..])).then_some(pairs);
                }
                _ => return None,
            }
        }
    }

    #[test]
    fn json_parses_with_hand_parser() {
        let pairs = parse_flat_json(&json(&sample())).unwrap();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "time",
                "remote_addr",
                "method",
                "uri",
                "protocol",
                "status",
                "body_bytes_sent",
                "referer",
                "user_agent",
                "host",
                "request_time"
            ]
        );
        assert_eq!(pairs[3].1, "/index.html?a=1");
    }

    #[test]
    fn hostile_bytes_keep_one_line_and_valid_json() {
        let mut state = 3u64;
        let mut line = Vec::new();
        for round in 0..3_000 {
            let mut ua = Vec::new();
            for _ in 0..(round % 40) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let r = (state >> 33) as u8;
                // Bias toward the dangerous bytes.
                let b = match r % 8 {
                    0 => b'"',
                    1 => b'\n',
                    2 => b'\\',
                    3 => 0,
                    4 => b'\r',
                    _ => r,
                };
                ua.push(b);
            }
            let rec = AccessRecord {
                user_agent: Some(&ua),
                referer: Some(&ua),
                target: &ua,
                host: Some(&ua),
                ..sample()
            };
            line.clear();
            format_combined(&rec, &mut line);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            assert!(line[..line.len() - 1]
                .iter()
                .all(|&b| (0x20..0x7f).contains(&b)));
            // Exactly the 6 structural quotes survive unescaped.
            assert_eq!(line.iter().filter(|&&b| b == b'"').count(), 6);

            line.clear();
            format_json(&rec, &mut line);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let text = std::str::from_utf8(&line).expect("JSON line is UTF-8");
            let pairs = parse_flat_json(text).expect("JSON line parses");
            assert_eq!(pairs.len(), 11);
            if let Ok(valid) = std::str::from_utf8(&ua) {
                assert_eq!(pairs[8].1, valid, "valid UTF-8 round-trips");
            }
        }
    }
}
