//! Scheduled runbooks: cron expressions in a time zone, per-host jitter, maintenance windows.
//!
//! The exact rules ([`Scheduler::poll`] implements them; the driver only feeds it time):
//! - **Slots.** A schedule's slots are its cron expression's firing times in its time zone
//!   (croner semantics across DST). Each slot is *consumed* at most once, by a firing or a
//!   skip; the last consumed slot is persisted (`schedule_state` table) before the run starts,
//!   so a restart never re-fires it. A schedule seen for the first time starts with the first
//!   slot after "now": it never back-fills.
//! - **Jitter.** A slot is due at `slot + offset`, where `offset` in `[0, jitter]` is derived
//!   from sha256(host id, schedule name): stable on one host, spread over a fleet.
//! - **Coalescing.** When a schedule is due, every slot whose due time has passed is consumed
//!   at once and the decision is made for the latest of them (`missed` counts the others).
//!   Downtime or a forward wall-clock jump therefore costs one run, not one per missed slot.
//! - **No overlap.** A slot that comes due while the schedule's previous run is still going is
//!   consumed and skipped (`still-running`); it is not queued.
//! - **Maintenance.** A `maintenance = true` schedule fires only if some usable window is
//!   open at the firing instant and `now + expected-duration <= that window's close`;
//!   otherwise the slot is skipped (`no-window-open` / `would-overrun-window`), not deferred.
//! - **Clock going back.** If the wall clock is more than 10 minutes before the last consumed
//!   slot, the schedule re-anchors: it forgets the slot and waits for the first slot after
//!   the current time (recorded as `clock-went-back`). A smaller step back just waits for the
//!   next unconsumed slot; slots are never replayed in a burst. (A schedule that has not fired
//!   yet re-anchors the same way, silently, so a clock corrected at boot does not stall it.)
//! - **Time.** The driver sleeps on tokio's monotonic timer until the next due time, but never
//!   longer than 30 s, then re-reads the wall clock: a wall-clock jump is noticed within 30 s
//!   and handled by the two rules above.

pub mod config;
pub mod driver;
pub mod scheduler;
pub mod window;

pub use config::{MaintenanceWindow, Schedule, ScheduleConfig, WindowConfig};
pub use scheduler::{Decision, ScheduleState, Scheduler, SkipReason, jitter_offset};
pub use window::WindowVerdict;

#[cfg(test)]
mod tests;
