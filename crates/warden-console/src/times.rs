//! Times for people: "3 min ago", and UTC dates with minutes.

use warden_fleet_wire::UnixMillis;

/// How long before `now` `then` was, rounded to one unit ("just now", "42 s ago", "3 h ago").
pub fn ago(then: UnixMillis, now: UnixMillis) -> String {
    let secs = now.millis_since(then) / 1000;
    match secs {
        s if s < 5 => "just now".to_string(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// `2026-12-02 06:40 UTC`.
pub fn utc(t: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis())
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{} ms", t.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_ages_and_utc_dates() {
        let now = UnixMillis(1_764_657_600_000); // 2025-12-02 06:40 UTC
        assert_eq!(utc(now), "2025-12-02 06:40 UTC");
        assert_eq!(ago(UnixMillis(now.as_millis() - 2_000), now), "just now");
        assert_eq!(ago(UnixMillis(now.as_millis() - 42_000), now), "42 s ago");
        assert_eq!(
            ago(UnixMillis(now.as_millis() - 600_000), now),
            "10 min ago"
        );
        assert_eq!(
            ago(UnixMillis(now.as_millis() - 3 * 86_400_000), now),
            "3 days ago"
        );
    }
}
