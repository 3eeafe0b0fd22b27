//! "At most once per maintenance window slot". A slot names one occurrence of a window
//! (`nightly@2026-12-02T02:00:00Z`: the window and when that occurrence opened; a maintenance
//! schedule passes it to the runbook, docs/PATCHING.md). `apply` records the slot durably
//! **before** it runs apt, and refuses a slot already recorded: a run that crashed half-way
//! through a window, re-run in the same window, is a missed window, not a second patch (and
//! reboot). The next window's slot is a different name, so it runs.

use serde::{Deserialize, Serialize};

/// Longest slot name accepted.
pub const MAX_SLOT_LEN: usize = 128;

/// The record kept in the plugin's kv state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub slot: String,
    /// When apply recorded it, unix seconds.
    pub recorded_at: u64,
}

/// Whether `slot` may be used, given what was recorded last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotCheck {
    Free,
    AlreadyUsed(SlotRecord),
}

pub fn check(recorded: Option<SlotRecord>, slot: &str) -> SlotCheck {
    match recorded {
        Some(r) if r.slot == slot => SlotCheck::AlreadyUsed(r),
        _ => SlotCheck::Free,
    }
}

/// A slot name: 1-128 printable ASCII characters without spaces.
pub fn valid(slot: &str) -> bool {
    !slot.is_empty() && slot.len() <= MAX_SLOT_LEN && slot.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_slot_is_refused_and_the_next_one_is_free() {
        let rec = SlotRecord {
            slot: "nightly@2026-12-02T02:00:00Z".into(),
            recorded_at: 10,
        };
        assert_eq!(check(None, "nightly@2026-12-02T02:00:00Z"), SlotCheck::Free);
        assert_eq!(
            check(Some(rec.clone()), "nightly@2026-12-02T02:00:00Z"),
            SlotCheck::AlreadyUsed(rec.clone())
        );
        assert_eq!(
            check(Some(rec), "nightly@2026-12-03T02:00:00Z"),
            SlotCheck::Free
        );
    }

    #[test]
    fn slot_names_are_short_printable_words() {
        assert!(valid("nightly@2026-12-02T02:00:00Z"));
        assert!(!valid(""));
        assert!(!valid("a b"));
        assert!(!valid("a\nb"));
        assert!(!valid(&"x".repeat(129)));
    }
}
