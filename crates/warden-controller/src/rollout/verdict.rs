//! The health gate's reading of the rolled-out check plugin's own verdicts (issue 16).
//!
//! An installed check plugin runs once on its agent right after the install and reports what it
//! said ([`OwnCheck`]). That verdict fails a rollout member in two cases:
//! - **the run failed** (`error`: a trap, a timeout, output that is no check result): the
//!   plugin is broken, whatever the machine is like;
//! - **the verdict got worse than the previous version's on the same agent** (`ok` then
//!   `critical`, `warning` then `critical`, `ok` then `warning`): the machine did not change
//!   between the two installs, the plugin did, so a new version that suddenly finds fault is
//!   suspect until someone looks (resuming the rollout is that look).
//!
//! A `warning` or `critical` verdict with nothing to compare (no previous version reported a
//! verdict on that agent, or it said `unknown`/`error`) does not fail the member: that is the
//! plugin reporting on the machine, which the agent's monitors turn into incidents if it
//! persists (and an incident since the release fails the member).

use warden_fleet_wire::{OwnCheck, OwnCheckStatus};

/// Why `new` fails its member given the previous version's verdict on the same agent, or
/// `None` when it does not.
pub fn failure(new: &OwnCheck, previous: Option<(&str, &OwnCheck)>) -> Option<String> {
    if new.status == OwnCheckStatus::Error {
        return Some(format!("own check failed: {}", new.summary));
    }
    let (version, before) = previous?;
    let worse = severity(new.status)? > severity(before.status)?;
    worse.then(|| {
        format!(
            "own check turned {} ({version} said {}): {}",
            new.status.name(),
            before.status.name(),
            new.summary
        )
    })
}

/// The order of the verdicts that say something about the machine; `unknown` and `error` say
/// nothing to compare.
fn severity(s: OwnCheckStatus) -> Option<u8> {
    match s {
        OwnCheckStatus::Ok => Some(0),
        OwnCheckStatus::Warning => Some(1),
        OwnCheckStatus::Critical => Some(2),
        OwnCheckStatus::Unknown | OwnCheckStatus::Error => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: OwnCheckStatus) -> OwnCheck {
        OwnCheck {
            status,
            summary: "/ is 97% full".into(),
        }
    }

    #[test]
    fn a_failed_run_fails_whatever_came_before() {
        let error = check(OwnCheckStatus::Error);
        assert_eq!(
            failure(&error, None).as_deref(),
            Some("own check failed: / is 97% full")
        );
        assert!(failure(&error, Some(("0.1.0", &check(OwnCheckStatus::Error)))).is_some());
    }

    #[test]
    fn a_verdict_worse_than_the_previous_versions_fails_and_the_same_or_better_does_not() {
        use OwnCheckStatus::{Critical, Ok, Warning};
        for (before, after) in [(Ok, Critical), (Ok, Warning), (Warning, Critical)] {
            let why = failure(&check(after), Some(("0.1.0", &check(before))))
                .unwrap_or_else(|| panic!("{before:?} then {after:?} fails"));
            assert!(
                why.starts_with(&format!(
                    "own check turned {} (0.1.0 said {})",
                    after.name(),
                    before.name()
                )),
                "{why}"
            );
        }
        for (before, after) in [
            (Critical, Critical),
            (Critical, Ok),
            (Warning, Warning),
            (Ok, Ok),
        ] {
            assert_eq!(
                failure(&check(after), Some(("0.1.0", &check(before)))),
                None,
                "{before:?} then {after:?}"
            );
        }
    }

    #[test]
    fn nothing_to_compare_is_no_failure() {
        use OwnCheckStatus::{Critical, Unknown};
        assert_eq!(failure(&check(Critical), None), None);
        assert_eq!(
            failure(&check(Critical), Some(("0.1.0", &check(Unknown)))),
            None
        );
        assert_eq!(
            failure(&check(Unknown), Some(("0.1.0", &check(OwnCheckStatus::Ok)))),
            None
        );
    }
}
