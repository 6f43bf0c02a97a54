//! HPACK (RFC 7541) for our HTTP/2 connections.
//!
//! Decoding uses the `loona-hpack` crate (the maintained fork of `hpack`,
//! as `fluke-hpack` was before it): it decodes one complete header block
//! from a byte slice into a callback, keeps the dynamic table, and is
//! tested against the RFC's examples and the hpack-test-case corpus. That
//! is the sans-I/O shape our connection needs (the connection assembles
//! HEADERS + CONTINUATION, then decodes once). On top we count the
//! decoded size so an HPACK bomb (a small block that references a large
//! table entry over and over) is measured, not materialized: indexed
//! fields arrive borrowed, nothing is copied.
//!
//! Encoding is our own and deliberately simple: every field is a literal
//! without indexing, its name indexed from the static table where it is
//! there, no Huffman coding. No dynamic table means no encoder state to
//! keep in step with the client's SETTINGS_HEADER_TABLE_SIZE, whatever it
//! is, and no allocation; responses are small next to their bodies.

use std::borrow::Cow;

/// The static table's names (RFC 7541 Appendix A), index = position + 1.
const STATIC_NAMES: [&[u8]; 61] = [
    b":authority",
    b":method",
    b":method",
    b":path",
    b":path",
    b":scheme",
    b":scheme",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b"accept-charset",
    b"accept-encoding",
    b"accept-language",
    b"accept-ranges",
    b"accept",
    b"access-control-allow-origin",
    b"age",
    b"allow",
    b"authorization",
    b"cache-control",
    b"content-disposition",
    b"content-encoding",
    b"content-language",
    b"content-length",
    b"content-location",
    b"content-range",
    b"content-type",
    b"cookie",
    b"date",
    b"etag",
    b"expect",
    b"expires",
    b"from",
    b"host",
    b"if-match",
    b"if-modified-since",
    b"if-none-match",
    b"if-range",
    b"if-unmodified-since",
    b"last-modified",
    b"link",
    b"location",
    b"max-forwards",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"range",
    b"referer",
    b"refresh",
    b"retry-after",
    b"server",
    b"set-cookie",
    b"strict-transport-security",
    b"transfer-encoding",
    b"user-agent",
    b"vary",
    b"via",
    b"www-authenticate",
];

/// Indexed `:status` values of the static table (8..=14).
const STATIC_STATUS: [(u16, u8); 7] = [
    (200, 8),
    (204, 9),
    (206, 10),
    (304, 11),
    (400, 12),
    (404, 13),
    (500, 14),
];

/// Append an HPACK integer with an `prefix_bits`-bit prefix; `first` holds
/// the representation's high bits (§5.1).
fn put_int(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Append `:status` (indexed when the static table has it).
pub fn encode_status(out: &mut Vec<u8>, status: u16) {
    if let Some(&(_, i)) = STATIC_STATUS.iter().find(|(s, _)| *s == status) {
        put_int(out, 0x80, 7, i as usize);
        return;
    }
    let mut digits = [b'0'; 3];
    let s = status.min(999);
    digits[0] += (s / 100) as u8;
    digits[1] += (s / 10 % 10) as u8;
    digits[2] += (s % 10) as u8;
    put_int(out, 0x00, 4, 8);
    put_str(out, &digits);
}

/// Append one field as a literal without indexing; `name` must already
/// be lowercase (HTTP/2 field names are).
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match STATIC_NAMES.iter().position(|n| *n == name) {
        Some(i) => put_int(out, 0x00, 4, i + 1),
        None => {
            out.push(0x00);
            put_str(out, name);
        }
    }
    put_str(out, value);
}

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Broken HPACK: the connection's compression state is lost.
    Compression,
}

/// The decoding side of a connection (one dynamic table).
pub struct Decoder {
    inner: loona_hpack::Decoder<'static>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder whose dynamic table is at most 4096 bytes (the default of
    /// SETTINGS_HEADER_TABLE_SIZE, which we never raise).
    pub fn new() -> Decoder {
        let mut inner = loona_hpack::Decoder::new();
        inner.set_max_allowed_table_size(4096);
        Decoder { inner }
    }

    /// Decode the complete block `block`, handing each field to `field`;
    /// returns the decoded size as RFC 9113 counts it (name + value + 32
    /// per field), saturating.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, DecodeError> {
        let mut size = 0usize;
        self.inner
            .decode_with_cb(block, |n: Cow<[u8]>, v: Cow<[u8]>| {
                size = size.saturating_add(n.len() + v.len() + 32);
                field(&n, &v);
            })
            .map_err(|_| DecodeError::Compression)?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut v = Vec::new();
        d.decode(block, |n, val| {
            v.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(val).into_owned(),
            ))
        })
        .unwrap();
        v
    }

    #[test]
    fn integers_follow_rfc7541_c1() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix.
        let mut out = Vec::new();
        put_int(&mut out, 0, 5, 10);
        assert_eq!(out, [0x0a]);
        out.clear();
        put_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        out.clear();
        put_int(&mut out, 0, 8, 42);
        assert_eq!(out, [42]);
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman_decode_with_the_dynamic_table() {
        let mut d = Decoder::new();
        let r1 = decode_all(&mut d, &hex("828684410f7777772e6578616d706c652e636f6d"));
        assert_eq!(r1[3], (":authority".into(), "www.example.com".into()));
        let r2 = decode_all(&mut d, &hex("828684be58086e6f2d6361636865"));
        assert_eq!(r2[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(r2[4], ("cache-control".into(), "no-cache".into()));
        let r3 = decode_all(
            &mut d,
            &hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
        );
        assert_eq!(r3[1], (":scheme".into(), "https".into()));
        assert_eq!(r3[2], (":path".into(), "/index.html".into()));
        assert_eq!(r3[4], ("custom-key".into(), "custom-value".into()));
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman_decode() {
        let mut d = Decoder::new();
        let r1 = decode_all(&mut d, &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"));
        assert_eq!(r1[3], (":authority".into(), "www.example.com".into()));
        let r2 = decode_all(&mut d, &hex("828684be5886a8eb10649cbf"));
        assert_eq!(r2[4], ("cache-control".into(), "no-cache".into()));
        let r3 = decode_all(
            &mut d,
            &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
        );
        assert_eq!(r3[4], ("custom-key".into(), "custom-value".into()));
    }

    #[test]
    fn what_we_encode_decodes_to_the_same_fields() {
        let mut out = Vec::new();
        encode_status(&mut out, 200);
        encode_status(&mut out, 302);
        encode_field(&mut out, b"content-type", b"text/html");
        encode_field(&mut out, b"x-long", &[b'a'; 300]);
        let mut d = Decoder::new();
        let got = decode_all(&mut d, &out);
        assert_eq!(got[0], (":status".into(), "200".into()));
        assert_eq!(got[1], (":status".into(), "302".into()));
        assert_eq!(got[2], ("content-type".into(), "text/html".into()));
        assert_eq!(got[3].1.len(), 300);
    }

    #[test]
    fn broken_blocks_and_oversized_table_updates_are_compression_errors() {
        let mut d = Decoder::new();
        // Index 70 does not exist; a literal cut short; table size 8192.
        assert!(d.decode(&[0x80 | 70], |_, _| {}).is_err());
        assert!(d.decode(&[0x00, 0x05, b'a'], |_, _| {}).is_err());
        let mut up = Vec::new();
        put_int(&mut up, 0x20, 5, 8192);
        up.push(0x82);
        assert!(Decoder::new().decode(&up, |_, _| {}).is_err());
    }

    #[test]
    fn an_hpack_bomb_is_measured_without_being_copied() {
        // One 4000-byte entry in the table, then 2000 one-byte references.
        let mut block = Vec::new();
        block.push(0x40);
        put_str(&mut block, b"x-big");
        put_str(&mut block, &[b'v'; 4000]);
        block.extend(std::iter::repeat_n(0x80 | 62, 2000));
        let mut d = Decoder::new();
        let mut n = 0;
        let size = d.decode(&block, |_, _| n += 1).unwrap();
        assert_eq!(n, 2001);
        assert!(size > 8_000_000, "{size}");
    }
}
