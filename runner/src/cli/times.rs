//! Times and durations for people, the same in every subcommand: instants as RFC 3339 in UTC to
//! the second (`2026-12-01T16:14:17Z`: sortable, unambiguous across the MSP's time zones, and
//! what journald and the audit tooling print), durations in the largest two units that matter
//! (`850 ms`, `4.2s`, `3m 20s`, `1h 02m`, `2d 04h`). `--json` keeps the machine values (Unix
//! milliseconds or seconds, as the API and the history store them); only text output goes
//! through here.

use chrono::{DateTime, SecondsFormat, Utc};

const SECOND_MS: i64 = 1000;
const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Below this a duration keeps a tenth of a second (`4.2s`): step and check times live there.
const TENTHS_BELOW_MS: i64 = 10 * SECOND_MS;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An instant in milliseconds since the Unix epoch. `-` for 0 or less: the API and the history
/// say "no time" that way (`finished_ms` of a run still going).
pub fn at_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(rfc3339)
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

/// An instant in seconds since the Unix epoch (bundle statements, install times).
pub fn at_secs(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map(rfc3339)
        .unwrap_or_else(|| format!("{secs} s since the epoch"))
}

/// A duration in milliseconds; `-` for a negative one (no figure).
pub fn span_ms(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    if ms < SECOND_MS {
        return format!("{ms} ms");
    }
    if ms < TENTHS_BELOW_MS {
        return format!("{:.1}s", ms as f64 / SECOND_MS as f64);
    }
    let s = (ms + SECOND_MS / 2) / SECOND_MS;
    match s {
        s if s >= DAY => format!("{}d {:02}h", s / DAY, (s % DAY) / HOUR),
        s if s >= HOUR => format!("{}h {:02}m", s / HOUR, (s % HOUR) / MINUTE),
        s if s >= MINUTE => format!("{}m {:02}s", s / MINUTE, s % MINUTE),
        s => format!("{s}s"),
    }
}

/// A duration in whole seconds (an agent's uptime).
pub fn span_secs(secs: u64) -> String {
    span_ms(i64::try_from(secs).map_or(i64::MAX, |s| s.saturating_mul(SECOND_MS)))
}

/// How long something that started at `start_ms` took: until `end_ms`, or `-` while it runs.
pub fn took(start_ms: i64, end_ms: Option<i64>) -> String {
    match end_ms {
        Some(end) if end > 0 => span_ms(end - start_ms),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_utc_to_the_second() {
        assert_eq!(at_ms(1_796_106_149_123), "2026-12-01T06:22:29Z");
        assert_eq!(at_secs(1_796_106_149), "2026-12-01T06:22:29Z");
        assert_eq!(at_ms(0), "-");
        assert_eq!(at_ms(-1), "-");
        assert_eq!(at_secs(u64::MAX), format!("{} s since the epoch", u64::MAX));
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(span_ms(0), "0 ms");
        assert_eq!(span_ms(850), "850 ms");
        assert_eq!(span_ms(4_240), "4.2s");
        assert_eq!(span_ms(45_400), "45s");
        assert_eq!(span_ms(200_000), "3m 20s");
        assert_eq!(span_ms(3_720_000), "1h 02m");
        assert_eq!(span_ms(187_200_000), "2d 04h");
        assert_eq!(span_ms(-1), "-");
        assert_eq!(span_secs(90), "1m 30s");
        assert_eq!(took(1_000, Some(3_500)), "2.5s");
        assert_eq!(took(1_000, None), "-");
        assert_eq!(took(1_000, Some(0)), "-");
    }
}
