//! Cache keys and file names: the MD5 of the configured key string, its hex
//! form, the nginx `levels=1:2` directory layout and the secondary (Vary)
//! key of a response variant.
//!
//! Pure functions; the only allocation is the returned `PathBuf`/`Vec`.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// Most directory levels `levels=` may have (nginx: 3).
pub use crate::config::MAX_LEVELS;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// MD5 of the evaluated `proxy_cache_key` string: the entry's primary key.
pub fn cache_key_md5(key: &[u8]) -> [u8; 16] {
    Md5::digest(key).into()
}

/// Lowercase hex of an MD5, as used in file names.
pub fn to_hex(md5: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in md5.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// [`to_hex`] as a `String`.
pub fn hex_string(md5: &[u8; 16]) -> String {
    to_hex(md5).iter().map(|&b| char::from(b)).collect()
}

/// Parses exactly 32 lowercase hex digits (a cache file name). Uppercase is
/// rejected: such a name can never be produced by [`entry_path`].
pub fn from_hex(s: &[u8]) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

pub use crate::config::valid_levels;

/// The level directory names for `md5`, outermost first, taken from the end
/// of the hex name as nginx does (`levels=1:2`, name `...29c` -> `["c", "29"]`).
/// Invalid level widths are clamped to 1..=2 and extra levels ignored, so this
/// never panics; the config parser rejects them anyway.
pub fn level_dirs<'a>(levels: &[u8], hex: &'a [u8; 32]) -> Vec<&'a [u8]> {
    let mut end = hex.len();
    let mut out = Vec::with_capacity(levels.len().min(MAX_LEVELS));
    for &l in levels.iter().take(MAX_LEVELS) {
        let width = usize::from(l.clamp(1, 2));
        out.push(&hex[end - width..end]);
        end -= width;
    }
    out
}

/// Where the entry for `md5` lives: `dir/<levels...>/<32 hex>`, e.g.
/// `dir/c/29/b7f54b2df7773722d382f4809d65029c` for `levels=1:2`.
pub fn entry_path(dir: &Path, levels: &[u8], md5: &[u8; 16]) -> PathBuf {
    let hex = to_hex(md5);
    let mut path = dir.to_path_buf();
    for part in level_dirs(levels, &hex) {
        path.push(ascii(part));
    }
    path.push(ascii(&hex));
    path
}

/// Hex digits are ASCII, so this is lossless.
fn ascii(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// The secondary key of a response variant: MD5 over the primary key and, for
/// each header named by the stored `Vary` (`None` = absent in the request),
/// the lowercased name and the value with surrounding whitespace trimmed.
/// Names are sorted so `Vary: A, B` and `Vary: b, a` select the same variant;
/// every field is length-prefixed so no two inputs collide by concatenation.
pub fn variant_md5(primary: &[u8; 16], vary_values: &[(&[u8], Option<&[u8]>)]) -> [u8; 16] {
    let mut items: Vec<(Vec<u8>, Option<&[u8]>)> = vary_values
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.map(<[u8]>::trim_ascii)))
        .collect();
    items.sort();
    items.dedup_by(|a, b| a.0 == b.0);
    let mut h = Md5::new();
    h.update(b"vary\0");
    h.update(primary);
    for (name, value) in &items {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        match value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
        }
    }
    h.finalize().into()
}

/// The request's values for the header names in `vary` (lowercase), for
/// [`variant_md5`]: several lines of one header are joined with `", "` as
/// RFC 9110 §5.3 allows; a header the request lacks is `None`.
pub fn vary_request_values(
    vary: &[Vec<u8>],
    req_headers: &[(&[u8], &[u8])],
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    vary.iter()
        .map(|name| {
            let mut joined: Option<Vec<u8>> = None;
            for (n, v) in req_headers {
                if n.eq_ignore_ascii_case(name) {
                    let j = joined.get_or_insert_with(Vec::new);
                    if !j.is_empty() {
                        j.extend_from_slice(b", ");
                    }
                    j.extend_from_slice(v.trim_ascii());
                }
            }
            (name.clone(), joined)
        })
        .collect()
}

/// [`variant_md5`] of the request's values for `vary`.
pub fn request_variant(
    primary: &[u8; 16],
    vary: &[Vec<u8>],
    req_headers: &[(&[u8], &[u8])],
) -> [u8; 16] {
    let owned = vary_request_values(vary, req_headers);
    let borrowed: Vec<(&[u8], Option<&[u8]>)> = owned
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_deref()))
        .collect();
    variant_md5(primary, &borrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_vector_and_hex_round_trip() {
        let m = cache_key_md5(b"");
        assert_eq!(hex_string(&m), "d41d8cd98f00b204e9800998ecf8427e");
        let m = cache_key_md5(b"httpexample.com/index.html");
        assert_eq!(from_hex(&to_hex(&m)), Some(m));
        assert_eq!(from_hex(b"D41D8CD98F00B204E9800998ECF8427E"), None);
        assert_eq!(from_hex(b"d41d8cd98f00b204e9800998ecf8427"), None);
        assert_eq!(from_hex(b"g41d8cd98f00b204e9800998ecf8427e"), None);
    }

    #[test]
    fn entry_path_follows_nginx_levels() {
        let md5 = from_hex(b"b7f54b2df7773722d382f4809d65029c").unwrap();
        let dir = Path::new("/data/cache");
        assert_eq!(
            entry_path(dir, &[1, 2], &md5),
            Path::new("/data/cache/c/29/b7f54b2df7773722d382f4809d65029c")
        );
        assert_eq!(
            entry_path(dir, &[2], &md5),
            Path::new("/data/cache/9c/b7f54b2df7773722d382f4809d65029c")
        );
        assert_eq!(
            entry_path(dir, &[1, 1, 2], &md5),
            Path::new("/data/cache/c/9/02/b7f54b2df7773722d382f4809d65029c")
        );
        assert_eq!(
            entry_path(dir, &[], &md5),
            Path::new("/data/cache/b7f54b2df7773722d382f4809d65029c")
        );
        // Garbage levels never panic.
        let p = entry_path(dir, &[0, 9, 200, 7, 7], &md5);
        assert!(p.ends_with("b7f54b2df7773722d382f4809d65029c"));
        assert!(valid_levels(&[1, 2]) && valid_levels(&[2, 2, 2]));
        assert!(!valid_levels(&[]) && !valid_levels(&[3]) && !valid_levels(&[1, 1, 1, 1]));
    }

    #[test]
    fn variant_key_normalizes_names_and_whitespace() {
        let p = cache_key_md5(b"k");
        let a = variant_md5(
            &p,
            &[
                (b"Accept-Encoding", Some(b" gzip ")),
                (b"Accept-Language", None),
            ],
        );
        let b = variant_md5(
            &p,
            &[
                (b"accept-language", None),
                (b"accept-encoding", Some(b"gzip")),
            ],
        );
        assert_eq!(a, b);
        let c = variant_md5(
            &p,
            &[
                (b"accept-encoding", Some(b"br")),
                (b"accept-language", None),
            ],
        );
        assert_ne!(a, c);
        // Absent differs from empty.
        let absent = variant_md5(&p, &[(b"x", None)]);
        let empty = variant_md5(&p, &[(b"x", Some(b""))]);
        assert_ne!(absent, empty);
        // Different primary, different variant.
        assert_ne!(
            a,
            variant_md5(
                &cache_key_md5(b"j"),
                &[
                    (b"accept-encoding", Some(b"gzip")),
                    (b"accept-language", None)
                ]
            )
        );
        assert_ne!(a, p);
    }

    #[test]
    fn vary_values_join_repeated_request_headers() {
        let vary = vec![b"accept".to_vec(), b"cookie".to_vec()];
        let req: &[(&[u8], &[u8])] = &[
            (b"Accept", b"text/html"),
            (b"X", b"y"),
            (b"ACCEPT", b" */* "),
        ];
        let v = vary_request_values(&vary, req);
        assert_eq!(v[0], (b"accept".to_vec(), Some(b"text/html, */*".to_vec())));
        assert_eq!(v[1], (b"cookie".to_vec(), None));
        let p = cache_key_md5(b"k");
        let one: &[(&[u8], &[u8])] = &[(b"accept", b"text/html, */*")];
        assert_eq!(
            request_variant(&p, &vary, req),
            request_variant(&p, &vary, one)
        );
    }
}
