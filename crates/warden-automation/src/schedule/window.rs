//! Maintenance windows at a point in time: which window is open, when it closes, and whether a
//! run started now would end inside it.

use super::config::MaintenanceWindow;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::time::Duration;

/// The verdict for starting a maintenance run at some instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum WindowVerdict {
    /// `window` is open and closes at or after the run's expected end. `opened_at` names the
    /// occurrence: with the window's name it is the window slot ([`slot_name`]).
    Fits {
        window: String,
        opened_at: DateTime<Utc>,
        closes_at: DateTime<Utc>,
    },
    /// No usable window is open.
    NotOpen,
    /// A window is open but the run would still be going when it closes.
    WouldOverrun {
        window: String,
        closes_at: DateTime<Utc>,
        would_end_at: DateTime<Utc>,
    },
}

impl MaintenanceWindow {
    /// The occurrence open at `t`, as `(opened, closes)` with `opened <= t < closes`.
    ///
    /// Occurrences all last `duration`, so the latest opening at or before `t` is the one that
    /// closes last: if it is already closed, every earlier one is too.
    pub fn open_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let local = t.with_timezone(&self.tz);
        let opened = self
            .cron
            .find_previous_occurrence(&local, true)
            .ok()?
            .with_timezone(&Utc);
        let closes = opened + delta(self.duration);
        (opened <= t && t < closes).then_some((opened, closes))
    }
}

/// The name of one occurrence of a window, `nightly@2026-12-02T02:00:00Z`: what a maintenance
/// run records to do its work at most once per window (the `apt-patch` plugin does).
pub fn slot_name(window: &str, opened_at: DateTime<Utc>) -> String {
    format!(
        "{window}@{}",
        opened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

pub fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// May a run of `expected` duration start at `start`? Among the open windows the one closing
/// last decides; overlapping windows are not merged into one.
pub fn check<'a>(
    windows: impl IntoIterator<Item = &'a MaintenanceWindow>,
    start: DateTime<Utc>,
    expected: Duration,
) -> WindowVerdict {
    let best = windows
        .into_iter()
        .filter_map(|w| w.open_at(start).map(|(opened, closes)| (w, opened, closes)))
        .max_by_key(|(_, _, closes)| *closes);
    let Some((w, opened_at, closes_at)) = best else {
        return WindowVerdict::NotOpen;
    };
    let would_end_at = start + delta(expected);
    if would_end_at <= closes_at {
        WindowVerdict::Fits {
            window: w.name.clone(),
            opened_at,
            closes_at,
        }
    } else {
        WindowVerdict::WouldOverrun {
            window: w.name.clone(),
            closes_at,
            would_end_at,
        }
    }
}
