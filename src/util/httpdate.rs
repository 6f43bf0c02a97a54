//! UTC calendar math and the date formats HTTP and the logs use, without allocation.
//!
//! Civil-date conversion is Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (proleptic Gregorian, exact for every year that fits). Formatting writes into
//! fixed-size arrays; parsing accepts the three HTTP date forms of RFC 9110 §5.6.7
//! and never panics on client input.

#![deny(missing_docs)]

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Proleptic Gregorian year (may be negative or above 9999).
    pub year: i32,
    /// Month, 1-12.
    pub month: u8,
    /// Day of month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub min: u8,
    /// Second, 0-59.
    pub sec: u8,
    /// Day of week, 0 = Sunday .. 6 = Saturday.
    pub weekday: u8,
}

const SECS_PER_DAY: i64 = 86_400;

/// `civil_from_unix` clamps its input to ±2^55 s (about ±1.1 billion years) so that
/// the year always fits an `i32`.
const CIVIL_LIMIT_SECS: i64 = 1 << 55;

/// 0000-01-01T00:00:00Z: the earliest instant the 4-digit formats can show.
const FORMAT_MIN_UNIX_SECS: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z: the latest instant the 4-digit formats can show.
const FORMAT_MAX_UNIX_SECS: i64 = 253_402_300_799;

const WEEKDAY_ABBR: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const WEEKDAY_FULL: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];
const MONTH_ABBR: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 of the given proleptic Gregorian date (Hinnant).
/// `month` is 1-12, `day` 1-31; no validation here.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Hinnant).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in `month` (1-12) of `year`; 0 for an invalid month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Breaks a Unix time (seconds, UTC) into calendar fields.
///
/// Inputs beyond ±2^55 s are clamped so the year fits an `i32`.
pub fn civil_from_unix(unix_secs: i64) -> Civil {
    let secs = unix_secs.clamp(-CIVIL_LIMIT_SECS, CIVIL_LIMIT_SECS);
    let days = secs.div_euclid(SECS_PER_DAY);
    let secs_of_day = secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year: year as i32, // fits: |year| < 1.2e9 after the clamp
        month,
        day,
        hour: (secs_of_day / 3600) as u8,
        min: (secs_of_day / 60 % 60) as u8,
        sec: (secs_of_day % 60) as u8,
        // 1970-01-01 was a Thursday (4).
        weekday: (days + 4).rem_euclid(7) as u8,
    }
}

/// Civil fields of `unix_secs` clamped to years 0000..=9999 (fixed-width formats).
fn civil_for_format(unix_secs: i64) -> Civil {
    civil_from_unix(unix_secs.clamp(FORMAT_MIN_UNIX_SECS, FORMAT_MAX_UNIX_SECS))
}

fn put2(out: &mut [u8], at: usize, v: u8) {
    out[at] = b'0' + v / 10;
    out[at + 1] = b'0' + v % 10;
}

fn put4(out: &mut [u8], at: usize, v: i32) {
    // Callers clamp to 0..=9999.
    let v = v.clamp(0, 9999) as u32;
    out[at] = b'0' + (v / 1000) as u8;
    out[at + 1] = b'0' + (v / 100 % 10) as u8;
    out[at + 2] = b'0' + (v / 10 % 10) as u8;
    out[at + 3] = b'0' + (v % 10) as u8;
}

/// Writes `HH:MM:SS` at `at`.
fn put_hms(out: &mut [u8], at: usize, c: &Civil) {
    put2(out, at, c.hour);
    out[at + 2] = b':';
    put2(out, at + 3, c.min);
    out[at + 5] = b':';
    put2(out, at + 6, c.sec);
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (exactly 29 bytes).
///
/// Times outside years 0000..=9999 are clamped to that range.
pub fn format_http_date(unix_secs: i64, out: &mut [u8; 29]) {
    let c = civil_for_format(unix_secs);
    out[0..3].copy_from_slice(WEEKDAY_ABBR[usize::from(c.weekday)]);
    out[3] = b',';
    out[4] = b' ';
    put2(out, 5, c.day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTH_ABBR[usize::from(c.month - 1)]);
    out[11] = b' ';
    put4(out, 12, c.year);
    out[16] = b' ';
    put_hms(out, 17, &c);
    out[25..29].copy_from_slice(b" GMT");
}

/// nginx `$time_local` in UTC, e.g. `06/Nov/1994:08:49:37 +0000` (26 bytes).
pub fn format_log_time(unix_secs: i64, out: &mut [u8; 26]) {
    let c = civil_for_format(unix_secs);
    put2(out, 0, c.day);
    out[2] = b'/';
    out[3..6].copy_from_slice(MONTH_ABBR[usize::from(c.month - 1)]);
    out[6] = b'/';
    put4(out, 7, c.year);
    out[11] = b':';
    put_hms(out, 12, &c);
    out[20..26].copy_from_slice(b" +0000");
}

/// ISO 8601 / nginx `$time_iso8601` in UTC, e.g. `1994-11-06T08:49:37+00:00` (25 bytes).
pub fn format_iso8601(unix_secs: i64, out: &mut [u8; 25]) {
    let c = civil_for_format(unix_secs);
    put4(out, 0, c.year);
    out[4] = b'-';
    put2(out, 5, c.month);
    out[7] = b'-';
    put2(out, 8, c.day);
    out[10] = b'T';
    put_hms(out, 11, &c);
    out[19..25].copy_from_slice(b"+00:00");
}

/// nginx error-log timestamp in UTC, e.g. `1994/11/06 08:49:37` (19 bytes).
pub fn format_error_log_time(unix_secs: i64, out: &mut [u8; 19]) {
    let c = civil_for_format(unix_secs);
    put4(out, 0, c.year);
    out[4] = b'/';
    put2(out, 5, c.month);
    out[7] = b'/';
    put2(out, 8, c.day);
    out[10] = b' ';
    put_hms(out, 11, &c);
}

fn digit(b: u8) -> Option<u32> {
    if b.is_ascii_digit() {
        Some(u32::from(b - b'0'))
    } else {
        None
    }
}

fn num2(s: &[u8]) -> Option<u32> {
    match s {
        [a, b] => Some(digit(*a)? * 10 + digit(*b)?),
        _ => None,
    }
}

fn num4(s: &[u8]) -> Option<u32> {
    match s {
        [a, b, c, d] => Some(num2(&[*a, *b])? * 100 + num2(&[*c, *d])?),
        _ => None,
    }
}

fn month_from_abbr(s: &[u8]) -> Option<u32> {
    MONTH_ABBR
        .iter()
        .position(|m| &m[..] == s)
        .map(|i| i as u32 + 1)
}

/// Parses `HH:MM:SS` (8 bytes) into seconds of day. A leap second (60) is accepted
/// and counts as the first second of the next minute.
fn parse_hms(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (num2(&s[0..2])?, num2(&s[3..5])?, num2(&s[6..8])?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec))
}

fn to_unix(year: i64, month: u32, day: u32, secs_of_day: i64) -> Option<i64> {
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * SECS_PER_DAY + secs_of_day)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(s: &[u8]) -> Option<i64> {
    if s.len() != 29 || !WEEKDAY_ABBR.iter().any(|w| w[..] == s[0..3]) {
        return None;
    }
    if &s[3..5] != b", " || s[7] != b' ' || s[11] != b' ' || s[16] != b' ' {
        return None;
    }
    if &s[25..29] != b" GMT" {
        return None;
    }
    let day = num2(&s[5..7])?;
    let month = month_from_abbr(&s[8..11])?;
    let year = num4(&s[12..16])?;
    to_unix(i64::from(year), month, day, parse_hms(&s[17..25])?)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`; two-digit years 70-99 are 19xx, 00-69 are 20xx.
fn parse_rfc850(s: &[u8]) -> Option<i64> {
    let comma = s.iter().position(|&b| b == b',')?;
    if !WEEKDAY_FULL.contains(&&s[..comma]) {
        return None;
    }
    let rest = &s[comma + 1..];
    // " DD-Mon-YY HH:MM:SS GMT" = 23 bytes
    if rest.len() != 23 || rest[0] != b' ' || rest[3] != b'-' || rest[7] != b'-' {
        return None;
    }
    if rest[10] != b' ' || &rest[19..23] != b" GMT" {
        return None;
    }
    let day = num2(&rest[1..3])?;
    let month = month_from_abbr(&rest[4..7])?;
    let yy = num2(&rest[8..10])?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    to_unix(i64::from(year), month, day, parse_hms(&rest[11..19])?)
}

/// `Sun Nov  6 08:49:37 1994` (day space-padded; a zero-padded day is also accepted).
fn parse_asctime(s: &[u8]) -> Option<i64> {
    if s.len() != 24 || !WEEKDAY_ABBR.iter().any(|w| w[..] == s[0..3]) {
        return None;
    }
    if s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    let month = month_from_abbr(&s[4..7])?;
    let day = match s[8] {
        b' ' => digit(s[9])?,
        _ => num2(&s[8..10])?,
    };
    let year = num4(&s[20..24])?;
    to_unix(i64::from(year), month, day, parse_hms(&s[11..19])?)
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime form) into Unix seconds.
///
/// Surrounding whitespace is ignored; anything else that is not exactly one of the
/// three forms gives `None`. Day and time ranges are checked (no 30 February); the
/// weekday must be a real name but is not checked against the date, as in nginx.
pub fn parse_http_date(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    if s.len() < 4 {
        return None;
    }
    match s[3] {
        b',' => parse_imf_fixdate(s),
        b' ' => parse_asctime(s),
        _ => parse_rfc850(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(t: i64) -> String {
        let mut b = [0u8; 29];
        format_http_date(t, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn rfc850(t: i64) -> String {
        let c = civil_from_unix(t);
        format!(
            "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
            std::str::from_utf8(WEEKDAY_FULL[c.weekday as usize]).unwrap(),
            c.day,
            std::str::from_utf8(MONTH_ABBR[c.month as usize - 1]).unwrap(),
            c.year % 100,
            c.hour,
            c.min,
            c.sec
        )
    }

    fn asctime(t: i64) -> String {
        let c = civil_from_unix(t);
        format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {:04}",
            std::str::from_utf8(WEEKDAY_ABBR[c.weekday as usize]).unwrap(),
            std::str::from_utf8(MONTH_ABBR[c.month as usize - 1]).unwrap(),
            c.day,
            c.hour,
            c.min,
            c.sec,
            c.year
        )
    }

    const RFC_EXAMPLE_UNIX: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn known_vectors_format() {
        assert_eq!(http(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http(RFC_EXAMPLE_UNIX), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(http(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
        assert_eq!(http(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
        assert_eq!(http(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    }

    #[test]
    fn other_formats_known_vector() {
        let mut log = [0u8; 26];
        format_log_time(RFC_EXAMPLE_UNIX, &mut log);
        assert_eq!(&log, b"06/Nov/1994:08:49:37 +0000");
        let mut iso = [0u8; 25];
        format_iso8601(RFC_EXAMPLE_UNIX, &mut iso);
        assert_eq!(&iso, b"1994-11-06T08:49:37+00:00");
        let mut err = [0u8; 19];
        format_error_log_time(RFC_EXAMPLE_UNIX, &mut err);
        assert_eq!(&err, b"1994/11/06 08:49:37");
    }

    #[test]
    fn civil_fields() {
        let c = civil_from_unix(RFC_EXAMPLE_UNIX);
        assert_eq!(
            c,
            Civil {
                year: 1994,
                month: 11,
                day: 6,
                hour: 8,
                min: 49,
                sec: 37,
                weekday: 0
            }
        );
        let c = civil_from_unix(951_782_400);
        assert_eq!((c.year, c.month, c.day, c.weekday), (2000, 2, 29, 2));
        let c = civil_from_unix(-62_167_219_200);
        assert_eq!((c.year, c.month, c.day), (0, 1, 1));
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2100));
        assert!(!is_leap_year(2023));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2023, 13), 0);
        // 2100-02-28 is followed by 2100-03-01.
        let feb28 = days_from_civil(2100, 2, 28);
        assert_eq!(civil_from_days(feb28 + 1), (2100, 3, 1));
        let feb28 = days_from_civil(2000, 2, 28);
        assert_eq!(civil_from_days(feb28 + 1), (2000, 2, 29));
    }

    #[test]
    fn days_round_trip_wide_range() {
        let mut prev_weekday = civil_from_unix(-800_000 * SECS_PER_DAY).weekday;
        for days in (-800_000i64..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, u32::from(m), u32::from(d)), days);
            assert!((1..=12).contains(&m));
            assert!(d >= 1 && u32::from(d) <= days_in_month(y, u32::from(m)));
            let wd = civil_from_unix(days * SECS_PER_DAY).weekday;
            if days != -800_000 {
                assert_eq!(wd, prev_weekday, "a week later is the same weekday");
            }
            prev_weekday = wd;
        }
    }

    #[test]
    fn format_parse_round_trip_1970_2100() {
        // Every ~37 hours (plus an odd second offset) from 1970 to 2100.
        let step_secs = 37 * 3600 + 13;
        let mut t = 0i64;
        let mut count = 0;
        while t < 4_102_444_800 {
            assert_eq!(parse_http_date(http(t).as_bytes()), Some(t), "{}", http(t));
            assert_eq!(
                parse_http_date(asctime(t).as_bytes()),
                Some(t),
                "{}",
                asctime(t)
            );
            if t < 3_155_760_000 {
                // Two-digit years are 1970..=2069.
                assert_eq!(
                    parse_http_date(rfc850(t).as_bytes()),
                    Some(t),
                    "{}",
                    rfc850(t)
                );
            }
            let c = civil_from_unix(t);
            let back = days_from_civil(i64::from(c.year), u32::from(c.month), u32::from(c.day))
                * SECS_PER_DAY
                + i64::from(c.hour) * 3600
                + i64::from(c.min) * 60
                + i64::from(c.sec);
            assert_eq!(back, t);
            t += step_secs;
            count += 1;
        }
        assert!(count > 30_000);
    }

    #[test]
    fn fixed_formats_agree_with_civil_fields() {
        let (mut log, mut iso, mut err) = ([0u8; 26], [0u8; 25], [0u8; 19]);
        let mut t = -86_400 * 365;
        while t < 4_102_444_800 {
            let c = civil_from_unix(t);
            let mon = std::str::from_utf8(MONTH_ABBR[c.month as usize - 1]).unwrap();
            let hms = format!("{:02}:{:02}:{:02}", c.hour, c.min, c.sec);
            format_log_time(t, &mut log);
            let want = format!("{:02}/{mon}/{:04}:{hms} +0000", c.day, c.year);
            assert_eq!(std::str::from_utf8(&log).unwrap(), want);
            format_iso8601(t, &mut iso);
            let want = format!("{:04}-{:02}-{:02}T{hms}+00:00", c.year, c.month, c.day);
            assert_eq!(std::str::from_utf8(&iso).unwrap(), want);
            format_error_log_time(t, &mut err);
            let want = format!("{:04}/{:02}/{:02} {hms}", c.year, c.month, c.day);
            assert_eq!(std::str::from_utf8(&err).unwrap(), want);
            t += 1_000_003;
        }
    }

    #[test]
    fn parse_three_forms_rfc_example() {
        let want = Some(RFC_EXAMPLE_UNIX);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(parse_http_date(b"Sun Nov 06 08:49:37 1994"), want);
        assert_eq!(
            parse_http_date(b"  \tSun, 06 Nov 1994 08:49:37 GMT \r\n"),
            want
        );
    }

    #[test]
    fn parse_leap_day_and_bounds() {
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(parse_http_date(b"Mon, 29 Feb 1900 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Wed, 29 Feb 2023 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 31 Apr 2024 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 00 Jan 1970 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 24:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:60:00 GMT"), None);
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT"), Some(-1));
        // Leap second counts as the next minute's first second.
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 23:59:60 GMT"), Some(0));
    }

    #[test]
    fn parse_rejects_garbage() {
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"Sun",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 gmt",
            b"sun, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 nov 1994 08:49:37 GMT",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 94 08:49:37 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT ",
            b"Sun, 06 Nov 1994 08:49:37 GMTX",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, +6 Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-1994 08:49:37 GMT",
            b"Sunday, 06 Nov 94 08:49:37 GMT",
            b"Funday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 94",
            b"Sun Nov 6 08:49:37 1994",
            b"Sun Nov  x 08:49:37 1994",
            b"1994-11-06T08:49:37Z",
            b"784111777",
            b"\xff\xfe, 06 Nov 1994 08:49:37 GMT",
            b",,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
        ];
        for s in bad {
            let trimmed_ok = s.ends_with(b" ") && parse_http_date(s.trim_ascii()).is_some();
            if !trimmed_ok {
                assert_eq!(parse_http_date(s), None, "{:?}", String::from_utf8_lossy(s));
            }
        }
    }

    #[test]
    fn parse_never_panics_on_mutations() {
        let seeds: [&[u8]; 3] = [
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ];
        let bytes = [0u8, b' ', b',', b'-', b':', b'9', b'a', 0x80, 0xff];
        for seed in seeds {
            for i in 0..seed.len() {
                for &b in &bytes {
                    let mut v = seed.to_vec();
                    v[i] = b;
                    let _ = parse_http_date(&v);
                    v.truncate(i);
                    let _ = parse_http_date(&v);
                }
            }
        }
        for n in 0..64 {
            let _ = parse_http_date(&vec![b','; n]);
            let _ = parse_http_date(&vec![b' '; n]);
        }
    }

    #[test]
    fn extreme_inputs_clamp_without_panic() {
        assert_eq!(http(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http(i64::MIN), "Sat, 01 Jan 0000 00:00:00 GMT");
        let mut log = [0u8; 26];
        format_log_time(i64::MAX, &mut log);
        assert_eq!(&log, b"31/Dec/9999:23:59:59 +0000");
        let c = civil_from_unix(i64::MAX);
        assert!(c.year > 1_000_000_000);
        let c = civil_from_unix(i64::MIN);
        assert!(c.year < -1_000_000_000);
        assert_eq!(
            parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(FORMAT_MAX_UNIX_SECS)
        );
    }
}
