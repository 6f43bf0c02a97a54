//! Response pieces for local answers: nginx-style error pages (appended to
//! the connection's write buffer without allocating) and status rules. The
//! head itself is a value, `proto::reply::ReplyHead`.
//! (The reason phrases and the field writer are `proto::head`, shared with
//! the cache.)

pub use crate::proto::head::{header, put_u64, reason};

/// Whether a status has no body by definition.
pub fn bodiless(code: u16) -> bool {
    (100..200).contains(&code) || code == 204 || code == 304
}

/// Whether `return CODE x` treats x as a URL.
pub fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// Length of the standard error page for `code`.
pub fn error_page_len(code: u16) -> u64 {
    let title = 3 + 1 + reason(code).len();
    (PAGE_PARTS.iter().map(|p| p.len()).sum::<usize>() + 2 * title) as u64
}

/// nginx's error page around its two `CODE REASON` titles.
const PAGE_PARTS: [&[u8]; 3] = [
    b"<html>\r\n<head><title>",
    b"</title></head>\r\n<body>\r\n<center><h1>",
    b"</h1></center>\r\n<hr><center>sluice</center>\r\n</body>\r\n</html>\r\n",
];

/// Append nginx's error page shape for `code` (no formatting machinery, no
/// allocation beyond `out`'s growth: every 429 under a flood writes one).
pub fn error_page(out: &mut Vec<u8>, code: u16) {
    let r = reason(code).as_bytes();
    let digits = [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    for (i, part) in PAGE_PARTS.iter().enumerate() {
        out.extend_from_slice(part);
        if i < 2 {
            out.extend_from_slice(&digits);
            out.push(b' ');
            out.extend_from_slice(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_length_is_computed_without_writing_the_page() {
        // Regression: the length was found by formatting the page into a
        // fresh Vec, for every 4xx/5xx (every 429 too).
        for code in [
            400, 403, 404, 405, 408, 413, 414, 429, 431, 444, 500, 502, 503, 504, 505, 599,
        ] {
            let mut v = Vec::new();
            error_page(&mut v, code);
            assert_eq!(error_page_len(code), v.len() as u64, "{code}");
        }
        let mut v = Vec::new();
        error_page(&mut v, 429);
        let page = String::from_utf8(v).unwrap();
        assert_eq!(
            page,
            format!(
                "<html>\r\n<head><title>429 {r}</title></head>\r\n<body>\r\n<center><h1>429 {r}</h1></center>\r\n<hr><center>sluice</center>\r\n</body>\r\n</html>\r\n",
                r = reason(429)
            )
        );
    }

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 612, u64::MAX] {
            let mut v = Vec::new();
            put_u64(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
    }

    #[test]
    fn error_page_len_matches() {
        let mut v = Vec::new();
        error_page(&mut v, 413);
        assert_eq!(v.len() as u64, error_page_len(413));
        assert!(String::from_utf8(v)
            .unwrap()
            .contains("413 Request Entity Too Large"));
    }
}
