//! nginx value syntax for numbers, sizes (`64k`) and durations (`1h30m`).
//!
//! Pure functions, no allocation; every overflow or malformed input is `None`.
//!
//! Every value is also capped here, in one place, so that no later sum or
//! product of config values overflows (`now_ms + timeout_ms`, `n * 1000`):
//! numbers at [`MAX_NUMBER`], sizes at [`MAX_SIZE_BYTES`], durations at
//! [`MAX_DURATION_MS`]. Past a cap a value is refused like a malformed one
//! (the config then says `invalid value`, as nginx does past its limits).

/// Largest plain number accepted (2^53 - 1: exact as an `f64` too, and
/// times 1000 still far from `u64::MAX`).
pub const MAX_NUMBER: u64 = (1 << 53) - 1;
/// Largest size accepted: 1 PiB.
pub const MAX_SIZE_BYTES: u64 = 1 << 50;
/// Largest duration accepted: 100 years (of 365 days), in milliseconds.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 3_600_000;

/// Parses a plain decimal number: ASCII digits only (no sign, no spaces).
/// `None` when empty, malformed or larger than [`MAX_NUMBER`].
pub fn parse_number(s: &str) -> Option<u64> {
    parse_digits(s).filter(|&n| n <= MAX_NUMBER)
}

/// ASCII digits to a `u64`; `None` when empty, malformed or overflowing.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses an nginx size in bytes: `512`, `64k`/`64K`, `1m`/`1M`, `2g`/`2G`
/// (powers of 1024). `None` on malformed input or past [`MAX_SIZE_BYTES`].
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, scale): (&str, u64) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    parse_digits(digits)?
        .checked_mul(scale)
        .filter(|&n| n <= MAX_SIZE_BYTES)
}

/// Duration units, largest first, with their length in milliseconds. The
/// position in this table is the unit's rank: units must appear in strictly
/// decreasing order (`1h30m`, not `30m1h`), each at most once.
const UNITS: [(&str, u64); 8] = [
    ("y", 365 * 24 * 3_600_000),
    ("M", 30 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Rank of `s` (seconds) in `UNITS`: a trailing bare number counts as seconds.
const SECONDS_RANK: usize = 6;

/// Parses an nginx duration into milliseconds: `75` (seconds), `500ms`, `10s`,
/// `5m`, `1h`, `1d`, `1w`, `1M` (30 days), `1y` (365 days), and combinations in
/// decreasing order such as `1h30m`, `1h 30m` or `1m30` (trailing number =
/// seconds). `None` on malformed input or past [`MAX_DURATION_MS`].
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    sum_duration_ms(s).filter(|&ms| ms <= MAX_DURATION_MS)
}

fn sum_duration_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut next_rank = 0; // smallest rank still allowed
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let value = parse_digits(&s[start..i])?;
        if i == b.len() {
            // Bare trailing number: seconds, unless seconds or smaller were used.
            if next_rank > SECONDS_RANK {
                return None;
            }
            return total.checked_add(value.checked_mul(1_000)?);
        }
        let rank = if b[i] == b'm' && b.get(i + 1) == Some(&b's') {
            i += 2;
            7
        } else {
            let r = UNITS
                .iter()
                .position(|(name, _)| name.len() == 1 && name.as_bytes()[0] == b[i])?;
            i += 1;
            r
        };
        if rank < next_rank {
            return None;
        }
        next_rank = rank + 1;
        total = total.checked_add(value.checked_mul(UNITS[rank].1)?)?;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            return if b[b.len() - 1] == b' ' {
                None
            } else {
                Some(total)
            };
        }
    }
}

/// Appends `ms` as seconds with three decimals (`1.234`), the form of
/// nginx's `$request_time`, `$msec` and `$upstream_response_time`.
pub fn put_secs_from_ms(ms: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(ms / 1000).as_bytes());
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_accepts_digits_only() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("1024"), Some(1024));
        assert_eq!(parse_number("9007199254740991"), Some(MAX_NUMBER));
        assert_eq!(parse_number("9007199254740992"), None);
        assert_eq!(parse_number("18446744073709551615"), None);
        assert_eq!(parse_number("18446744073709551616"), None);
        for bad in ["", "+1", "-1", " 1", "1 ", "1.5", "0x10", "abc"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn size_units() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("64k"), Some(64 * 1024));
        assert_eq!(parse_size("64K"), Some(64 * 1024));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("2G"), Some(2 << 30));
    }

    #[test]
    fn size_rejects_malformed_and_overflow() {
        for bad in [
            "", "k", "m", "1t", "1kb", "1.5m", "-1", "+1", " 1k", "1 k", "k1",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("1048576g"), Some(MAX_SIZE_BYTES));
        assert_eq!(parse_size("1048577g"), None);
        assert_eq!(parse_size("18446744073709551615"), None);
        assert_eq!(parse_size("18446744073709551615k"), None);
        assert_eq!(parse_size("17179869184g"), None);
        assert_eq!(parse_size("99999999999999999999999"), None);
    }

    #[test]
    fn duration_single_units() {
        assert_eq!(parse_duration_ms("75"), Some(75_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("1w"), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms("1M"), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("1y"), Some(365 * 86_400_000));
    }

    #[test]
    fn duration_combinations() {
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("1h 30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("1m30"), Some(90_000));
        assert_eq!(parse_duration_ms("1s500ms"), Some(1_500));
        assert_eq!(parse_duration_ms("1d2h3m4s5ms"), Some(93_784_005));
    }

    #[test]
    fn duration_rejects_malformed_and_overflow() {
        for bad in [
            "", "s", "ms", "1x", "1.5s", "-1s", "+1s", "30m1h", "1s1s", "1m1m", "1ms1s", "1s5",
            "1ms5", "1h ", " 1h", "1 h", "1h  ", "1S", "1H",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration_ms("18446744073709551615"), None);
        assert_eq!(parse_duration_ms("100y"), Some(MAX_DURATION_MS));
        assert_eq!(parse_duration_ms("100y1ms"), None);
        assert_eq!(parse_duration_ms("584942418y"), None);
        assert_eq!(parse_duration_ms("584942417y9999999999999M"), None);
    }

    #[test]
    fn seconds_with_three_decimals() {
        let mut o = Vec::new();
        for ms in [0, 5, 1_234, 60_000, 1_796_317_271_250] {
            put_secs_from_ms(ms, &mut o);
            o.push(b' ');
        }
        assert_eq!(o, b"0.000 0.005 1.234 60.000 1796317271.250 ");
    }

    #[test]
    fn client_header_timeout_18446744073709551615ms_is_refused() {
        // Regression: accepted, then `now_ms + timeout_ms` overflowed in
        // every connection (a worker panic with overflow checks on).
        assert_eq!(parse_duration_ms("18446744073709551615ms"), None);
        assert_eq!(parse_duration_ms("18446744073709551615s"), None);
        // The cap leaves a clock in ms (since 1970) plus a duration far from overflow.
        let now_unix_ms = 1_800_000_000_000u64;
        assert!(now_unix_ms.checked_add(MAX_DURATION_MS).is_some());
        assert_eq!(parse_duration_ms("100y"), Some(3_153_600_000_000));
    }
}
