//! Unix seconds → the two text forms the responder writes: HTTP dates
//! (`Last-Modified`, RFC 9110 IMF-fixdate) and RFC 3339 UTC timestamps (the
//! health answer). Civil-from-days after Howard Hinnant's algorithm, so no
//! date crate is needed for two formats. No I/O here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// (year, month 1..=12, day 1..=31, seconds into the day, weekday 0 = Sunday).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs, weekday)
}

/// `Thu, 26 Nov 2026 22:49:03 GMT`.
pub fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d, s, w) = civil(unix);
    let day = usize::try_from(w).ok().and_then(|w| DAYS.get(w)).unwrap_or(&"Thu");
    let month = usize::try_from(m - 1).ok().and_then(|m| MONTHS.get(m)).unwrap_or(&"Jan");
    format!("{day}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT", s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-26T22:49:03Z`.
pub fn rfc3339(unix: i64) -> String {
    let (y, m, d, s, _) = civil(unix);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // RFC 9110's own example.
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_733_343), "2026-11-26T22:49:03Z");
        assert_eq!(http_date(1_795_733_343), "Thu, 26 Nov 2026 22:49:03 GMT");
    }

    #[test]
    fn agrees_with_date_over_centuries() {
        // Every day for 400 years: the day after is always one day later in the calendar.
        let mut prev = civil(-11_000 * 86_400);
        for day in -10_999..135_000 {
            let now = civil(day * 86_400);
            let next_day = (prev.2 + 1, prev.1, prev.0);
            let ok = now.2 == next_day.0 && now.1 == prev.1 && now.0 == prev.0
                || now.2 == 1 && (now.1 == prev.1 % 12 + 1) && (now.0 == prev.0 || now.1 == 1 && now.0 == prev.0 + 1);
            assert!(ok, "day {day}: {prev:?} -> {now:?}");
            assert_eq!(now.4, (prev.4 + 1) % 7);
            prev = now;
        }
    }
}
