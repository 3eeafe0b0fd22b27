//! The pure scheduler: given the wall-clock time and each schedule's persisted state, decide
//! what fires and what is skipped (and why). No I/O and no clock of its own; see the module
//! docs of [`crate::schedule`] for the exact rules.

use super::config::{MaintenanceWindow, Schedule};
use super::window::{self, WindowVerdict, delta};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// A wall clock this far behind the last consumed slot means the clock was stepped back (or
/// was wrong before): the schedule re-anchors on the current time instead of waiting.
pub const BACKWARD_TOLERANCE: Duration = Duration::from_secs(10 * 60);
/// Missed slots are counted for the record up to this many.
pub const MAX_MISSED_COUNT: u64 = 1000;

/// What survives a restart, per schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The last cron slot consumed (fired or skipped).
    pub last_slot: Option<DateTime<Utc>>,
    /// The run id of the last firing, once the run started.
    pub last_run_id: Option<String>,
}

/// Why a due slot did not start a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// The previous run of this schedule is still going.
    StillRunning { since: DateTime<Utc> },
    /// Maintenance runbook and no window open.
    NoWindowOpen,
    /// Maintenance runbook that would still run when the window closes.
    WouldOverrunWindow {
        window: String,
        closes_at: DateTime<Utc>,
        would_end_at: DateTime<Utc>,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::StillRunning { since } => {
                write!(f, "the run fired at {since} is still going")
            }
            SkipReason::NoWindowOpen => write!(f, "no maintenance window is open"),
            SkipReason::WouldOverrunWindow {
                window,
                closes_at,
                would_end_at,
            } => write!(
                f,
                "window `{window}` closes at {closes_at} but the run would end at {would_end_at}"
            ),
        }
    }
}

/// One outcome of [`Scheduler::poll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Start a run of `schedule` for `slot`; `missed` earlier slots were coalesced into it.
    Fire {
        schedule: String,
        slot: DateTime<Utc>,
        missed: u64,
        /// The window the run fits in, for maintenance schedules.
        window: Option<String>,
        /// That window's occurrence, `name@opened` ([`window::slot_name`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        window_slot: Option<String>,
    },
    Skip {
        schedule: String,
        slot: DateTime<Utc>,
        missed: u64,
        #[serde(flatten)]
        reason: SkipReason,
    },
    /// The wall clock went back past the last slot; the schedule now waits for the next slot
    /// after `now` (no catch-up of slots "in between").
    ClockWentBack {
        schedule: String,
        last_slot: DateTime<Utc>,
        now: DateTime<Utc>,
    },
}

impl Decision {
    pub fn schedule(&self) -> &str {
        match self {
            Decision::Fire { schedule, .. }
            | Decision::Skip { schedule, .. }
            | Decision::ClockWentBack { schedule, .. } => schedule,
        }
    }
}

/// The fixed delay of `schedule` on `host`: uniform in `[0, jitter]`, the same on every start.
pub fn jitter_offset(host_id: &str, schedule: &str, jitter: Duration) -> Duration {
    let max_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::new()
        .chain_update(host_id.as_bytes())
        .chain_update([0u8])
        .chain_update(schedule.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_be_bytes(first) % max_ms.saturating_add(1))
}

struct Entry {
    schedule: Schedule,
    jitter: TimeDelta,
    /// Slots strictly after this instant are still to come.
    cursor: DateTime<Utc>,
    /// Whether `cursor` is a consumed slot (else the time the schedule was first seen).
    cursor_is_slot: bool,
    next_slot: Option<DateTime<Utc>>,
    /// When the run still going was fired.
    running: Option<DateTime<Utc>>,
    last_run_id: Option<String>,
}

impl Entry {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.schedule.tz);
        self.schedule
            .cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    fn recompute(&mut self) {
        self.next_slot = self.next_after(self.cursor);
    }

    fn due_at(&self) -> Option<DateTime<Utc>> {
        self.next_slot.map(|s| s + self.jitter)
    }
}

/// Decides firings for a set of schedules. Feed it the wall clock; it keeps no time itself.
pub struct Scheduler {
    entries: Vec<Entry>,
    windows: Vec<MaintenanceWindow>,
}

impl Scheduler {
    /// `persisted` is the state saved by earlier processes; schedules without state start
    /// counting from `now` (a new schedule never back-fills).
    pub fn new(
        schedules: Vec<Schedule>,
        windows: Vec<MaintenanceWindow>,
        host_id: &str,
        persisted: &HashMap<String, ScheduleState>,
        now: DateTime<Utc>,
    ) -> Scheduler {
        let entries = schedules
            .into_iter()
            .map(|schedule| {
                let state = persisted.get(&schedule.name).cloned().unwrap_or_default();
                let jitter = delta(jitter_offset(host_id, &schedule.name, schedule.jitter));
                let mut e = Entry {
                    jitter,
                    cursor: state.last_slot.unwrap_or(now),
                    cursor_is_slot: state.last_slot.is_some(),
                    next_slot: None,
                    running: None,
                    last_run_id: state.last_run_id,
                    schedule,
                };
                e.recompute();
                e
            })
            .collect();
        Scheduler { entries, windows }
    }

    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.entries.iter().map(|e| &e.schedule)
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.entry(name).map(|e| &e.schedule)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.schedule.name == name)
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.schedule.name == name)
    }

    /// The state to persist for `name`.
    pub fn state(&self, name: &str) -> Option<ScheduleState> {
        self.entry(name).map(|e| ScheduleState {
            last_slot: e.cursor_is_slot.then_some(e.cursor),
            last_run_id: e.last_run_id.clone(),
        })
    }

    /// The earliest wall-clock time something becomes due (jitter included).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(Entry::due_at).min()
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|e| e.running.is_some())
    }

    /// Every decision due at wall-clock `now`. Each schedule yields at most one firing or skip
    /// per call however many slots passed, and consumes them all.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if now + delta(BACKWARD_TOLERANCE) < e.cursor {
                if e.cursor_is_slot {
                    out.push(Decision::ClockWentBack {
                        schedule: e.schedule.name.clone(),
                        last_slot: e.cursor,
                        now,
                    });
                }
                e.cursor = now;
                e.cursor_is_slot = false;
                e.recompute();
            }
            let Some(due) = e.due_at() else { continue };
            if now < due {
                continue;
            }
            let Some(first) = e.next_slot else { continue };
            // The latest slot whose jittered time has come: everything up to it is consumed.
            let latest = e
                .schedule
                .cron
                .find_previous_occurrence(&(now - e.jitter).with_timezone(&e.schedule.tz), true)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .filter(|s| *s >= first)
                .unwrap_or(first);
            let mut missed = 0u64;
            let mut s = first;
            while s < latest && missed < MAX_MISSED_COUNT {
                missed += 1;
                match e.next_after(s) {
                    Some(n) => s = n,
                    None => break,
                }
            }
            e.cursor = latest;
            e.cursor_is_slot = true;
            e.recompute();
            let name = e.schedule.name.clone();
            if let Some(since) = e.running {
                out.push(Decision::Skip {
                    schedule: name,
                    slot: latest,
                    missed,
                    reason: SkipReason::StillRunning { since },
                });
                continue;
            }
            let mut fits_in = None;
            let mut window_slot = None;
            if e.schedule.maintenance {
                let usable = self.windows.iter().filter(|w| {
                    e.schedule.windows.is_empty() || e.schedule.windows.contains(&w.name)
                });
                match window::check(usable, now, e.schedule.expected_duration) {
                    WindowVerdict::Fits {
                        window, opened_at, ..
                    } => {
                        window_slot = Some(window::slot_name(&window, opened_at));
                        fits_in = Some(window);
                    }
                    WindowVerdict::NotOpen => {
                        out.push(Decision::Skip {
                            schedule: name,
                            slot: latest,
                            missed,
                            reason: SkipReason::NoWindowOpen,
                        });
                        continue;
                    }
                    WindowVerdict::WouldOverrun {
                        window,
                        closes_at,
                        would_end_at,
                    } => {
                        out.push(Decision::Skip {
                            schedule: name,
                            slot: latest,
                            missed,
                            reason: SkipReason::WouldOverrunWindow {
                                window,
                                closes_at,
                                would_end_at,
                            },
                        });
                        continue;
                    }
                }
            }
            e.running = Some(now);
            out.push(Decision::Fire {
                schedule: name,
                slot: latest,
                missed,
                window: fits_in,
                window_slot,
            });
        }
        out
    }

    /// The run of `name` ended (in any way); the next slot may fire.
    pub fn finished(&mut self, name: &str, run_id: Option<&str>) {
        if let Some(e) = self.entry_mut(name) {
            e.running = None;
            if let Some(id) = run_id {
                e.last_run_id = Some(id.to_string());
            }
        }
    }
}
