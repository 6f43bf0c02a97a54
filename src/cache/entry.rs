//! The on-disk cache entry: a versioned, checksummed binary header followed
//! by the response body.
//!
//! ```text
//! off  size  field
//!   0     4  magic "SLCE"
//!   4     2  version (u16 LE)            -- ENTRY_VERSION
//!   6     4  header_len (u32 LE)         -- bytes from 0 to the end of the checksum
//!  10     8  body_len (u64 LE)           -- fixed offset: the writer patches it
//!  18     .  fields (see `encode_fields`), integers LE, byte strings u32-length-prefixed
//!  h-8    8  FNV-1a 64 of bytes [0, h-8)
//!   h     .  body (body_len bytes); the file is exactly h + body_len long
//! ```
//!
//! Files are written whole to a temp file and renamed (see `store.rs`), so a
//! reader sees either nothing or a complete file; a wrong length (a file torn
//! by a crash of the file system, or truncated by hand), magic, version or
//! checksum makes the entry unusable. [`decode_header`] never panics and never
//! allocates more than the input's size, whatever the bytes.

#![deny(missing_docs)]

use std::fmt;
use std::io::{self, Read};

/// File magic.
pub const MAGIC: &[u8; 4] = b"SLCE";
/// Current format version; files with another version are ignored.
pub const ENTRY_VERSION: u16 = 1;
/// Largest header accepted or written (a bounded read for the loader).
pub const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Bytes before the variable fields: magic, version, header_len, body_len.
pub const PREFIX_BYTES: usize = 18;
/// Offset of the `body_len` field.
pub const BODY_LEN_OFFSET: usize = 10;
const CHECKSUM_BYTES: usize = 8;

/// Everything stored about a cached response except its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Format version the header was read with (always [`ENTRY_VERSION`] when written).
    pub version: u16,
    /// The evaluated cache key; a file whose key differs from the request's is ignored
    /// (an MD5 collision or a stale file name).
    pub key: Vec<u8>,
    /// Response status.
    pub status: u16,
    /// Stored response headers in order, hop-by-hop, `Content-Length` and `Age`
    /// removed (the server sends `Content-Length: body_len` and a computed `Age`).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Unix seconds when the request that produced this response was sent.
    pub request_time: i64,
    /// Unix seconds when the response was received.
    pub response_time: i64,
    /// The response's `Date`, Unix seconds (`None`: absent or unparseable).
    pub date: Option<i64>,
    /// The response's `Age` header value, seconds (0 if absent).
    pub age_value_s: u32,
    /// End of freshness, Unix seconds: fresh while `now < expires_at`.
    pub expires_at: i64,
    /// `stale-while-revalidate` seconds (0 = none).
    pub stale_while_revalidate_s: u32,
    /// `stale-if-error` seconds (0 = none).
    pub stale_if_error_s: u32,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served stale.
    pub must_revalidate: bool,
    /// Response `no-cache`: every use needs a successful revalidation.
    pub no_cache: bool,
    /// `ETag` value, as received.
    pub etag: Option<Vec<u8>>,
    /// `Last-Modified` value, as received.
    pub last_modified: Option<Vec<u8>>,
    /// Header names of the response's `Vary`, lowercase.
    pub vary: Vec<Vec<u8>>,
    /// For a response with `Vary`: the variant key of the request that produced it.
    pub variant: Option<[u8; 16]>,
    /// Body length in bytes.
    pub body_len: u64,
}

impl Default for EntryMeta {
    fn default() -> Self {
        EntryMeta {
            version: ENTRY_VERSION,
            key: Vec::new(),
            status: 200,
            headers: Vec::new(),
            request_time: 0,
            response_time: 0,
            date: None,
            age_value_s: 0,
            expires_at: 0,
            stale_while_revalidate_s: 0,
            stale_if_error_s: 0,
            must_revalidate: false,
            no_cache: false,
            etag: None,
            last_modified: None,
            vary: Vec::new(),
            variant: None,
            body_len: 0,
        }
    }
}

/// Why an entry header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// Written by another format version.
    BadVersion(u16),
    /// Fewer bytes than the header needs; `need` is the full header length
    /// when known (read that many bytes and try again), else 0.
    Truncated {
        /// Total header bytes needed, 0 if unknown yet.
        need: usize,
    },
    /// `header_len` is below the minimum or above [`MAX_HEADER_BYTES`].
    BadLength,
    /// The checksum does not match (a corrupt header).
    BadChecksum,
    /// The checksum matched but the fields do not parse.
    Malformed(&'static str),
    /// The header is fine but belongs to another key.
    KeyMismatch,
    /// The file's length is not header + body (torn or truncated).
    TornFile,
    /// Reading failed.
    Io(io::ErrorKind),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::BadMagic => f.write_str("not a cache file (bad magic)"),
            EntryError::BadVersion(v) => {
                write!(f, "cache file version {v}, expected {ENTRY_VERSION}")
            }
            EntryError::Truncated { .. } => f.write_str("truncated cache header"),
            EntryError::BadLength => f.write_str("bad cache header length"),
            EntryError::BadChecksum => f.write_str("cache header checksum mismatch"),
            EntryError::Malformed(what) => write!(f, "malformed cache header: {what}"),
            EntryError::KeyMismatch => f.write_str("cache key mismatch"),
            EntryError::TornFile => f.write_str("cache file length does not match its header"),
            EntryError::Io(kind) => write!(f, "cache file read error: {kind}"),
        }
    }
}

impl std::error::Error for EntryError {}

pub use crate::util::hash::fnv1a64;

const F_MUST_REVALIDATE: u8 = 1;
const F_NO_CACHE: u8 = 1 << 1;
const F_DATE: u8 = 1 << 2;
const F_ETAG: u8 = 1 << 3;
const F_LAST_MODIFIED: u8 = 1 << 4;
const F_VARIANT: u8 = 1 << 5;
const F_KNOWN: u8 = (1 << 6) - 1;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), EntryError> {
    let len = u32::try_from(b.len()).map_err(|_| EntryError::BadLength)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_count(out: &mut Vec<u8>, n: usize) -> Result<(), EntryError> {
    let n = u32::try_from(n).map_err(|_| EntryError::BadLength)?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Serializes `meta`'s header (always as [`ENTRY_VERSION`]). The body follows
/// it in the file. Fails only with [`EntryError::BadLength`] when the header
/// would exceed [`MAX_HEADER_BYTES`] (do not cache such a response).
pub fn encode_header(meta: &EntryMeta) -> Result<Vec<u8>, EntryError> {
    let mut out = Vec::with_capacity(256 + meta.key.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&ENTRY_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // header_len, patched below
    out.extend_from_slice(&meta.body_len.to_le_bytes());
    let mut flags = 0u8;
    let set = |cond: bool, bit: u8| if cond { bit } else { 0 };
    flags |= set(meta.must_revalidate, F_MUST_REVALIDATE);
    flags |= set(meta.no_cache, F_NO_CACHE);
    flags |= set(meta.date.is_some(), F_DATE);
    flags |= set(meta.etag.is_some(), F_ETAG);
    flags |= set(meta.last_modified.is_some(), F_LAST_MODIFIED);
    flags |= set(meta.variant.is_some(), F_VARIANT);
    out.extend_from_slice(&meta.status.to_le_bytes());
    out.push(flags);
    for t in [
        meta.request_time,
        meta.response_time,
        meta.date.unwrap_or(0),
        meta.expires_at,
    ] {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for n in [
        meta.age_value_s,
        meta.stale_while_revalidate_s,
        meta.stale_if_error_s,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&meta.variant.unwrap_or([0; 16]));
    put_bytes(&mut out, &meta.key)?;
    put_bytes(&mut out, meta.etag.as_deref().unwrap_or(b""))?;
    put_bytes(&mut out, meta.last_modified.as_deref().unwrap_or(b""))?;
    put_count(&mut out, meta.headers.len())?;
    for (name, value) in &meta.headers {
        put_bytes(&mut out, name)?;
        put_bytes(&mut out, value)?;
    }
    put_count(&mut out, meta.vary.len())?;
    for name in &meta.vary {
        put_bytes(&mut out, name)?;
    }
    let total = out.len() + CHECKSUM_BYTES;
    if total > MAX_HEADER_BYTES {
        return Err(EntryError::BadLength);
    }
    let len = u32::try_from(total).map_err(|_| EntryError::BadLength)?;
    out[6..10].copy_from_slice(&len.to_le_bytes());
    seal(&mut out);
    Ok(out)
}

/// Appends the checksum of `header_without_checksum`.
fn seal(out: &mut Vec<u8>) {
    let sum = fnv1a64(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Rewrites `body_len` in an encoded header (and its checksum) in place; used
/// when the body length is only known once the body is written. `false` if
/// `header` is not a well-formed header.
pub fn patch_body_len(header: &mut [u8], body_len: u64) -> bool {
    let Ok(total) = header_len(header) else {
        return false;
    };
    if header.len() != total {
        return false;
    }
    header[BODY_LEN_OFFSET..BODY_LEN_OFFSET + 8].copy_from_slice(&body_len.to_le_bytes());
    let sum = fnv1a64(&header[..total - CHECKSUM_BYTES]);
    header[total - CHECKSUM_BYTES..].copy_from_slice(&sum.to_le_bytes());
    true
}

/// From the first bytes of a file: the total header length (= body offset),
/// after checking magic, version and bounds. Needs [`PREFIX_BYTES`] bytes at
/// most; with fewer, `Truncated { need: 0 }`.
pub fn header_len(prefix: &[u8]) -> Result<usize, EntryError> {
    if prefix.len() < 4 {
        return Err(if MAGIC.starts_with(prefix) {
            EntryError::Truncated { need: 0 }
        } else {
            EntryError::BadMagic
        });
    }
    if &prefix[..4] != MAGIC {
        return Err(EntryError::BadMagic);
    }
    let (Some(v), Some(l)) = (prefix.get(4..6), prefix.get(6..10)) else {
        return Err(EntryError::Truncated { need: 0 });
    };
    let version = u16::from_le_bytes([v[0], v[1]]);
    if version != ENTRY_VERSION {
        return Err(EntryError::BadVersion(version));
    }
    let total = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
    if !(PREFIX_BYTES + CHECKSUM_BYTES..=MAX_HEADER_BYTES).contains(&total) {
        return Err(EntryError::BadLength);
    }
    Ok(total)
}

/// A bounds-checked cursor over the header's fields.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(EntryError::Malformed("field runs past the header"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, EntryError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, EntryError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    /// A count of items each at least `min_item` bytes long, checked against
    /// what is left so a forged count cannot make us allocate.
    fn count(&mut self, min_item: usize) -> Result<usize, EntryError> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(min_item) > left {
            return Err(EntryError::Malformed("count larger than the header"));
        }
        Ok(n)
    }
}

/// Parses a header from the start of `bytes` (which may continue with the
/// body). Returns the metadata and the body offset. Rejects wrong magic,
/// version, length, checksum and malformed fields; never panics.
pub fn decode_header(bytes: &[u8]) -> Result<(EntryMeta, usize), EntryError> {
    let total = header_len(bytes)?;
    if bytes.len() < total {
        return Err(EntryError::Truncated { need: total });
    }
    let body_end = total - CHECKSUM_BYTES;
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[body_end..total]);
    if fnv1a64(&bytes[..body_end]) != u64::from_le_bytes(sum) {
        return Err(EntryError::BadChecksum);
    }
    let mut r = Reader {
        buf: &bytes[..body_end],
        pos: BODY_LEN_OFFSET,
    };
    let body_len = u64::from_le_bytes(r.array()?);
    let status = u16::from_le_bytes(r.array()?);
    let [flags] = r.array()?;
    if flags & !F_KNOWN != 0 {
        return Err(EntryError::Malformed("unknown flags"));
    }
    let request_time = r.i64()?;
    let response_time = r.i64()?;
    let date = r.i64()?;
    let expires_at = r.i64()?;
    let age_value_s = r.u32()?;
    let stale_while_revalidate_s = r.u32()?;
    let stale_if_error_s = r.u32()?;
    let variant: [u8; 16] = r.array()?;
    let key = r.bytes()?;
    let etag = r.bytes()?;
    let last_modified = r.bytes()?;
    let n = r.count(8)?;
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.bytes()?;
        let value = r.bytes()?;
        headers.push((name, value));
    }
    let n = r.count(4)?;
    let mut vary = Vec::with_capacity(n);
    for _ in 0..n {
        vary.push(r.bytes()?);
    }
    if r.pos != body_end {
        return Err(EntryError::Malformed("trailing bytes in header"));
    }
    let has = |bit: u8| flags & bit != 0;
    let meta = EntryMeta {
        version: ENTRY_VERSION,
        key,
        status,
        headers,
        request_time,
        response_time,
        date: has(F_DATE).then_some(date),
        age_value_s,
        expires_at,
        stale_while_revalidate_s,
        stale_if_error_s,
        must_revalidate: has(F_MUST_REVALIDATE),
        no_cache: has(F_NO_CACHE),
        etag: has(F_ETAG).then_some(etag),
        last_modified: has(F_LAST_MODIFIED).then_some(last_modified),
        vary,
        variant: has(F_VARIANT).then_some(variant),
        body_len,
    };
    Ok((meta, total))
}

/// [`decode_header`], then checks that the entry belongs to `key`.
pub fn decode_for_key(bytes: &[u8], key: &[u8]) -> Result<(EntryMeta, usize), EntryError> {
    let (meta, off) = decode_header(bytes)?;
    if meta.key != key {
        return Err(EntryError::KeyMismatch);
    }
    Ok((meta, off))
}

/// True when a file of `file_len` bytes holds exactly the header (ending at
/// `body_off`) and `meta.body_len` bytes of body. Anything else is torn.
pub fn validate_file_len(meta: &EntryMeta, file_len: u64, body_off: usize) -> bool {
    (body_off as u64).checked_add(meta.body_len) == Some(file_len)
}

/// Reads and decodes just the header of an entry from `r` (positioned at the
/// start of the file): one small read, a second one if the header is longer,
/// never more than [`MAX_HEADER_BYTES`]. Blocking; for the loader and tests
/// (workers read with `preadv2` and call [`decode_header`]).
pub fn read_header(r: &mut impl Read) -> Result<(EntryMeta, usize), EntryError> {
    const FIRST_READ: usize = 4096;
    let mut buf = vec![0u8; FIRST_READ];
    let mut have = read_full(r, &mut buf)?;
    buf.truncate(have);
    match decode_header(&buf) {
        Err(EntryError::Truncated { need }) if need > have => {
            buf.resize(need, 0);
            have += read_full(r, &mut buf[have..])?;
            buf.truncate(have);
            decode_header(&buf)
        }
        other => other,
    }
}

/// Reads until `buf` is full or EOF; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, EntryError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EntryError::Io(e.kind())),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    pub(crate) fn sample() -> EntryMeta {
        EntryMeta {
            key: b"httpexample.com/a?b=1".to_vec(),
            status: 200,
            headers: vec![
                (b"Content-Type".to_vec(), b"text/html".to_vec()),
                (b"Cache-Control".to_vec(), b"max-age=60".to_vec()),
                (b"X-Empty".to_vec(), Vec::new()),
            ],
            request_time: 1_700_000_000,
            response_time: 1_700_000_001,
            date: Some(1_699_999_999),
            age_value_s: 7,
            expires_at: 1_700_000_060,
            stale_while_revalidate_s: 30,
            stale_if_error_s: 600,
            must_revalidate: true,
            no_cache: false,
            etag: Some(b"\"abc\"".to_vec()),
            last_modified: Some(b"Tue, 14 Nov 2023 22:13:20 GMT".to_vec()),
            vary: vec![b"accept-encoding".to_vec()],
            variant: Some([7; 16]),
            body_len: 5,
            ..EntryMeta::default()
        }
    }

    /// Recomputes the checksum of a hand-edited header.
    fn reseal(h: &mut [u8]) {
        let n = h.len() - CHECKSUM_BYTES;
        let sum = fnv1a64(&h[..n]);
        h[n..].copy_from_slice(&sum.to_le_bytes());
    }

    /// xorshift64*: deterministic pseudo-random bytes for fuzz-style tests.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn round_trip_full_and_minimal() {
        let meta = sample();
        let mut file = encode_header(&meta).unwrap();
        let off = file.len();
        file.extend_from_slice(b"hello");
        let (back, body_off) = decode_header(&file).unwrap();
        assert_eq!(back, meta);
        assert_eq!(body_off, off);
        assert_eq!(&file[body_off..], b"hello");
        assert!(validate_file_len(&back, file.len() as u64, body_off));

        let min = EntryMeta::default();
        let h = encode_header(&min).unwrap();
        assert_eq!(decode_header(&h).unwrap(), (min, h.len()));
    }

    #[test]
    fn torn_file_lengths_are_detected() {
        let meta = sample();
        let off = encode_header(&meta).unwrap().len();
        assert!(validate_file_len(&meta, off as u64 + 5, off));
        assert!(!validate_file_len(&meta, off as u64 + 4, off));
        assert!(!validate_file_len(&meta, off as u64 + 6, off));
        assert!(!validate_file_len(&meta, 0, off));
        let huge = EntryMeta {
            body_len: u64::MAX,
            ..meta
        };
        assert!(!validate_file_len(&huge, u64::MAX, off));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let h = encode_header(&sample()).unwrap();
        for n in 0..h.len() {
            match decode_header(&h[..n]) {
                Err(EntryError::Truncated { need }) => assert!(need == 0 || need == h.len()),
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let h = encode_header(&sample()).unwrap();
        for i in 0..h.len() {
            for bit in 0..8 {
                let mut c = h.clone();
                c[i] ^= 1 << bit;
                assert!(decode_header(&c).is_err(), "flip byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn wrong_magic_and_version() {
        let mut h = encode_header(&sample()).unwrap();
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        reseal(&mut h);
        assert_eq!(decode_header(&h), Err(EntryError::BadVersion(2)));
        assert_eq!(
            decode_header(b"GIF89a...................."),
            Err(EntryError::BadMagic)
        );
        assert_eq!(decode_header(b"SL"), Err(EntryError::Truncated { need: 0 }));
        assert_eq!(decode_header(b"XY"), Err(EntryError::BadMagic));
    }

    #[test]
    fn forged_lengths_and_counts_are_malformed_not_huge_allocations() {
        let meta = EntryMeta::default();
        let h = encode_header(&meta).unwrap();
        // The header-count field sits 12 bytes before the checksum (count, vary count).
        let count_at = h.len() - CHECKSUM_BYTES - 8;
        let mut c = h.clone();
        c[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut c);
        assert_eq!(
            decode_header(&c),
            Err(EntryError::Malformed("count larger than the header"))
        );
        // Key length pointing past the end.
        let key_at = PREFIX_BYTES + 2 + 1 + 32 + 12 + 16;
        let mut c = h.clone();
        c[key_at..key_at + 4].copy_from_slice(&1000u32.to_le_bytes());
        reseal(&mut c);
        assert!(matches!(decode_header(&c), Err(EntryError::Malformed(_))));
        // Unknown flag bits.
        let mut c = h.clone();
        c[PREFIX_BYTES + 2] = 0x80;
        reseal(&mut c);
        assert_eq!(
            decode_header(&c),
            Err(EntryError::Malformed("unknown flags"))
        );
        // header_len out of bounds.
        let mut c = h.clone();
        c[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_header(&c), Err(EntryError::BadLength));
        c[6..10].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decode_header(&c), Err(EntryError::BadLength));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let valid = encode_header(&sample()).unwrap();
        for round in 0..20_000 {
            let len = (rng(&mut seed) % 600) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
            if round % 2 == 0 && buf.len() >= PREFIX_BYTES {
                // A plausible prefix so the field parser gets exercised too.
                buf[..4].copy_from_slice(MAGIC);
                buf[4..6].copy_from_slice(&ENTRY_VERSION.to_le_bytes());
                buf[6..10].copy_from_slice(&(len as u32).to_le_bytes());
                if round % 4 == 0 {
                    reseal(&mut buf);
                }
            }
            let _ = decode_header(&buf);
            // Random splices into a valid header.
            let mut c = valid.clone();
            let at = (rng(&mut seed) as usize) % c.len();
            let n = 1 + (rng(&mut seed) as usize) % 8;
            for b in c.iter_mut().skip(at).take(n) {
                *b = rng(&mut seed) as u8;
            }
            if round % 3 == 0 {
                reseal(&mut c);
            }
            if let Ok((m, off)) = decode_header(&c) {
                assert!(off <= c.len());
                let _ = validate_file_len(&m, c.len() as u64, off);
            }
        }
    }

    #[test]
    fn key_mismatch_and_patch_body_len() {
        let meta = sample();
        let mut h = encode_header(&meta).unwrap();
        assert_eq!(decode_for_key(&h, b"other"), Err(EntryError::KeyMismatch));
        assert!(decode_for_key(&h, &meta.key).is_ok());
        assert!(patch_body_len(&mut h, 12345));
        assert_eq!(decode_header(&h).unwrap().0.body_len, 12345);
        assert!(!patch_body_len(&mut h[..20], 1));
        assert!(!patch_body_len(&mut [0u8; 40], 1));
    }

    #[test]
    fn read_header_handles_long_headers_and_short_files() {
        let mut meta = sample();
        meta.headers.push((b"X-Big".to_vec(), vec![b'x'; 10_000]));
        let mut file = encode_header(&meta).unwrap();
        let off = file.len();
        assert!(off > 4096);
        file.extend_from_slice(b"hello");
        let (back, body_off) = read_header(&mut Cursor::new(&file)).unwrap();
        assert_eq!((back, body_off), (meta, off));
        let cut = &file[..off - 1];
        assert_eq!(
            read_header(&mut Cursor::new(cut)),
            Err(EntryError::Truncated { need: off })
        );
        assert_eq!(
            read_header(&mut Cursor::new(b"")),
            Err(EntryError::Truncated { need: 0 })
        );
    }

    #[test]
    fn oversized_header_is_refused_at_encode() {
        let mut meta = sample();
        meta.headers
            .push((b"X-Huge".to_vec(), vec![b'x'; MAX_HEADER_BYTES]));
        assert_eq!(encode_header(&meta), Err(EntryError::BadLength));
    }
}
