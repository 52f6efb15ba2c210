//! Unix seconds ↔ text: the two forms the responder writes, HTTP dates
//! (`Last-Modified`, RFC 9110 IMF-fixdate) and RFC 3339 UTC timestamps (the
//! health answer, stored `published_at`), and the RFC 3339 date-times the
//! import format accepts ([`parse_rfc3339`]). Civil-from-days and
//! days-from-civil after Howard Hinnant's algorithms, so no date crate is
//! needed for these formats. No I/O here.
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

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in `month` (1..=12) of `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC 3339 date-time into Unix seconds, converted to UTC.
///
/// The grammar of RFC 3339 §5.6: `YYYY-MM-DDTHH:MM:SS`, optional fractional
/// seconds (dropped), then `Z` or an offset `+HH:MM`/`-HH:MM`; `t`, `z` and a
/// space instead of `T` are accepted (§5.6 note). Every field is range-checked
/// against the calendar (no 30 February, no hour 24). A leap second (`:60`)
/// counts as `:59`. Years 0001-9999, before and after the offset is applied.
///
/// # Errors
/// What is wrong, in words ("has no time zone", "day 30 is past the end of month 2").
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(r)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0i64, |n, d| n.checked_mul(10)?.checked_add(i64::from(d - b'0')))
    };
    let shape = "is not a date-time of the form 2024-05-01T12:00:00Z";
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return Err(shape.into());
    }
    let field = |r: std::ops::Range<usize>| num(r).ok_or_else(|| shape.to_owned());
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if year < 1 {
        return Err("year 0000 is out of range (0001-9999)".into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is not 1-12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!("day {day} is not a day of {year:04}-{month:02}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("time {hour:02}:{minute:02}:{second:02} is not a time of day"));
    }
    let mut i = 19;
    if sep(i, b'.') {
        let digits = b.get(i + 1..).map_or(0, |rest| rest.iter().take_while(|c| c.is_ascii_digit()).count());
        if digits == 0 {
            return Err("has a '.' without fractional digits".into());
        }
        i += 1 + digits;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b':') => {
            let (h, m) = (field(i + 1..i + 3)?, field(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(format!("offset {h:02}:{m:02} is out of range"));
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        None => return Err("has no time zone: add Z for UTC, or an offset such as +02:00".into()),
        Some(_) => return Err("has an unreadable time zone: use Z or an offset such as +02:00".into()),
    };
    let unix = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset * 60;
    if !(1..=9999).contains(&civil(unix).0) {
        return Err("is out of range in UTC (years 0001-9999)".into());
    }
    Ok(unix)
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
        // Every day for 400 years: the day after is the next day of the calendar, which
        // has 28-31 days a month with the Gregorian leap years (no 30 February).
        let mut prev = civil(-11_000 * 86_400);
        for day in -10_999..135_000 {
            let now = civil(day * 86_400);
            let (y, m, d) = (prev.0, prev.1, prev.2);
            let expected = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!((now.0, now.1, now.2), expected, "day {day} after {prev:?}");
            assert_eq!(now.4, (prev.4 + 1) % 7);
            assert_eq!(days_from_civil(now.0, now.1, now.2), day, "the two algorithms agree");
            prev = now;
        }
        assert_eq!((days_in_month(2000, 2), days_in_month(1900, 2), days_in_month(2024, 2)), (29, 28, 29));
    }

    #[test]
    fn rfc3339_is_parsed_to_utc() {
        let p = |s: &str| parse_rfc3339(s);
        assert_eq!(p("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(p("2026-11-26T22:49:03Z"), Ok(1_795_733_343));
        assert_eq!(p("2026-11-26t22:49:03.123456z"), Ok(1_795_733_343), "fraction dropped, lower case");
        assert_eq!(p("2026-11-26 22:49:03Z"), Ok(1_795_733_343), "space separator");
        // 12:00+05:00 is 07:00 UTC: earlier than 09:00Z.
        assert_eq!(p("2024-01-01T12:00:00+05:00").map(rfc3339).as_deref(), Ok("2024-01-01T07:00:00Z"));
        assert_eq!(p("2024-01-01T23:30:00-01:00").map(rfc3339).as_deref(), Ok("2024-01-02T00:30:00Z"));
        assert_eq!(p("2016-12-31T23:59:60Z"), p("2016-12-31T23:59:59Z"), "leap second");
        assert_eq!(p("2024-02-29T00:00:00Z").map(rfc3339).as_deref(), Ok("2024-02-29T00:00:00Z"));
        for bad in [
            "2024-13-45T99:99:99Z",
            "2023-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T12:60:00Z",
            "2024-01-01T12:00:00",
            "2024-01-01T12:00:00+5:00",
            "2024-01-01T12:00:00+24:00",
            "2024-01-01T12:00:00.Z",
            "2024-01-01T12:00:00Zjunk",
            "2024-1-01T12:00:00Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "yesterday",
            "",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_valid_instant_round_trips(unix in -62_135_596_800i64..253_402_300_799) {
            proptest::prop_assert_eq!(parse_rfc3339(&rfc3339(unix)), Ok(unix));
        }

        #[test]
        fn no_input_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
