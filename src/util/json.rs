//! JSON string escaping, one copy for the JSON access log and the waiting
//! room's JSON answers: nothing a client sends can end a string early or
//! put a raw control byte in the output.

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` JSON-escaped (without quotes): `"` and `\` backslash-escaped, control
/// bytes and DEL as `\u00XX`, valid UTF-8 as is, each byte of invalid UTF-8 as
/// `\u00XX` (its Latin-1 reading).
pub fn escape(s: &[u8], out: &mut Vec<u8>) {
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut run_start = 0;
        for (i, &b) in valid.iter().enumerate() {
            if b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f {
                out.extend_from_slice(&valid[run_start..i]);
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    _ => put_u00(b, out),
                }
                run_start = i + 1;
            }
        }
        out.extend_from_slice(&valid[run_start..]);
        for &b in chunk.invalid() {
            put_u00(b, out);
        }
    }
}

fn put_u00(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u00");
    out.extend_from_slice(&[
        HEX_LOWER[usize::from(b >> 4)],
        HEX_LOWER[usize::from(b & 15)],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_escaped_not_dropped() {
        // Regression: the waiting room's copy silently dropped them.
        let mut o = Vec::new();
        escape(b"a\"b\\c\n\x01\x7f caf\xc3\xa9 \xff", &mut o);
        assert_eq!(
            o,
            "a\\\"b\\\\c\\u000a\\u0001\\u007f café \\u00ff".as_bytes()
        );
    }
}
