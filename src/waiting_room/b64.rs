//! URL-safe base64 without padding (RFC 4648 §5), the encoding of tokens and
//! session cookies: a dozen lines rather than another crate.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Append the encoding of `data` to `out`.
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        let chars = c.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
        }
    }
}

fn value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decode `text` into `out` (cleared first); `None` on a bad character or
/// length, or when the result would exceed `out.len()` bytes.
pub fn decode(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if text.len() % 4 == 1 || text.len() / 4 * 3 + 2 > out.len() + 2 {
        return None;
    }
    let mut n = 0;
    for c in text.chunks(4) {
        let mut acc = 0u32;
        for (i, &b) in c.iter().enumerate() {
            acc |= value(b)? << (18 - 6 * i);
        }
        for i in 0..c.len() - 1 {
            *out.get_mut(n)? = (acc >> (16 - 8 * i)) as u8;
            n += 1;
        }
        // Canonical only: unused trailing bits must be zero, so no two
        // texts decode to the same bytes.
        if acc & ((1u32 << (24 - 8 * (c.len() - 1))) - 1) != 0 {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let mut enc = Vec::new();
            encode(&data[200 - len..200], &mut enc);
            assert!(!enc.contains(&b'='));
            let mut dec = [0u8; 64];
            let n = decode(&enc, &mut dec).unwrap();
            assert_eq!(&dec[..n], &data[200 - len..200]);
        }
        let mut e = Vec::new();
        encode(b"\xfb\xff", &mut e);
        assert_eq!(e, b"-_8");
    }

    #[test]
    fn rejects_bad_input() {
        let mut out = [0u8; 8];
        assert!(decode(b"ab=c", &mut out).is_none());
        assert!(decode(b"abcde", &mut out).is_none());
        assert!(decode(b"AAAAAAAAAAAAAAAA", &mut out).is_none());
        assert_eq!(decode(b"-_8", &mut out), Some(2));
        assert!(decode(b"-_9", &mut out).is_none(), "non-canonical tail");
    }
}
