//! UTC timestamps for people, without a date library: the civil date of a day count (the
//! proleptic Gregorian calendar, days since 1970-01-01).

/// `(year, month, day)` of `days` since 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, so a leap day is the last day of its year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// `2026-11-01T00:00:00Z` of milliseconds since the Unix epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-01` of milliseconds since the Unix epoch.
pub fn date(ms: i64) -> String {
    rfc3339(ms)[..10].to_string()
}

/// `1 h 05 min`, `12 min`, `45 s`: a duration for people.
pub fn duration(ms: f64) -> String {
    let secs = (ms / 1000.0).round() as i64;
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3600, s / 60 % 60),
        s => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2026-11-01T00:00:00Z and a leap day.
        assert_eq!(rfc3339(1_793_491_200_000), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000 + 3_723_000), "2000-02-29T01:02:03Z");
        assert_eq!(date(-86_400_000), "1969-12-31");
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(duration(45_000.0), "45 s");
        assert_eq!(duration(12.0 * 60_000.0), "12 min");
        assert_eq!(duration(65.0 * 60_000.0), "1 h 05 min");
        assert_eq!(duration(26.0 * 3_600_000.0), "1 d 2 h");
    }
}
