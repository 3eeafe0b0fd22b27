//! Presence: whether an agent is online, from the last heartbeat the controller received and the
//! interval the agent announced, at a given now. Pure.
//!
//! With `age = now - last_seen` (the controller's receive time, so the agent's clock plays no
//! part) and `i` the agent's announced interval:
//!
//! | presence | when |
//! | --- | --- |
//! | `never-seen` | enrolled, no heartbeat yet |
//! | `online` | `age <= ONLINE_INTERVALS * i`: one lost heartbeat does not flap the agent |
//! | `overdue` | up to `OFFLINE_INTERVALS * i`, and at least [`MIN_OFFLINE_AFTER_MS`]: late, maybe a slow link or a NATS leader election |
//! | `offline` | beyond |
//!
//! A heartbeat after `offline` makes the agent `online` again at once; the controller then sends
//! it any command it has not answered that is still valid ([`crate::runs`]).

use serde::Serialize;
use warden_fleet_wire::UnixMillis;

/// Intervals an agent stays online without a heartbeat: 2 (one heartbeat may be lost).
pub const ONLINE_INTERVALS: i64 = 2;
/// Intervals until an agent is offline: 6 (a 15 s interval gives 90 s; an R3 leader election
/// stalls publishes for about 10 s, well inside).
pub const OFFLINE_INTERVALS: i64 = 6;
/// An agent is never offline sooner than 60 s after its last heartbeat, whatever its interval:
/// an agent announcing 1 s must not go offline after 6 s of a controller's GC pause or a
/// reconnect.
pub const MIN_OFFLINE_AFTER_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    NeverSeen,
    Online,
    Overdue,
    Offline,
}

impl Presence {
    pub fn name(self) -> &'static str {
        match self {
            Presence::NeverSeen => "never-seen",
            Presence::Online => "online",
            Presence::Overdue => "overdue",
            Presence::Offline => "offline",
        }
    }

    pub fn is_online(self) -> bool {
        self == Presence::Online
    }
}

/// The presence of an agent last heard from at `last_seen`, announcing `interval_ms`.
pub fn presence(last_seen: Option<UnixMillis>, interval_ms: i64, now: UnixMillis) -> Presence {
    let Some(seen) = last_seen else {
        return Presence::NeverSeen;
    };
    let interval = interval_ms.max(1);
    let age = now.millis_since(seen);
    if age <= ONLINE_INTERVALS.saturating_mul(interval) {
        Presence::Online
    } else if age
        <= OFFLINE_INTERVALS
            .saturating_mul(interval)
            .max(MIN_OFFLINE_AFTER_MS)
    {
        Presence::Overdue
    } else {
        Presence::Offline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000_000);

    #[test]
    fn presence_moves_online_overdue_offline_with_age() {
        let i = 15_000;
        assert_eq!(presence(None, i, T0), Presence::NeverSeen);
        assert_eq!(presence(Some(T0), i, T0), Presence::Online);
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(30_000)),
            Presence::Online
        );
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(30_001)),
            Presence::Overdue
        );
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(90_000)),
            Presence::Overdue
        );
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(90_001)),
            Presence::Offline
        );
        // A heartbeat received "in the future" (the controller's clock stepped back) is online.
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(-5_000)),
            Presence::Online
        );
    }

    #[test]
    fn a_short_interval_never_goes_offline_before_the_floor() {
        let i = 1_000;
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(2_001)),
            Presence::Overdue
        );
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(60_000)),
            Presence::Overdue
        );
        assert_eq!(
            presence(Some(T0), i, T0.plus_millis(60_001)),
            Presence::Offline
        );
    }
}
