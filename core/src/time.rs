//! RFC 3339 UTC timestamps with milliseconds, from epoch milliseconds.
//! (Civil-from-days after Howard Hinnant's public-domain algorithm.)

pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let Ok(year @ 0..=9999) = u32::try_from(y) else {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        );
    };
    // Hot in list answers (a timestamp per row): the digits are written
    // by hand instead of through `format!`'s machinery.
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, (sod % 3600) / 60);
    put(17, 2, sod % 60);
    put(20, 3, millis);
    b.iter().map(|&c| char::from(c)).collect()
}

/// Epoch milliseconds of an RFC 3339 timestamp (any offset, optional
/// fraction: `2026-11-28T12:00:00Z`, `2026-11-28T13:00:00.5+01:00`), or
/// `None` when `text` is not one.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::parse_rfc3339_ms("1970-01-01T00:00:01.5Z"),
            Some(1_500)
        );
        assert_eq!(
            super::parse_rfc3339_ms("2000-02-29T01:00:00.123+01:00"),
            Some(951_782_400_123)
        );
        assert_eq!(super::parse_rfc3339_ms("yesterday"), None);
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_795_824_000_999), "2026-11-28T00:00:00.999Z");
        assert_eq!(rfc3339_ms(1_795_870_861_042), "2026-11-28T13:01:01.042Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        use super::parse_rfc3339_ms;
        for ms in [0, 951_782_400_123, 1_795_824_000_999] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T01:00:00.999+01:00"),
            Some(1_795_824_000_999)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-28"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
