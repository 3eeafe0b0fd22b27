//! `apt-patch`: a remediation plugin that upgrades exactly the approved apt packages.
//!
//! - `plan` simulates `apt-get -s dist-upgrade`, records when each `name=version` was first
//!   seen (kv `first-seen`, for deferral), judges every upgrade by the approval rules
//!   (`apt_common::policy`) and plans one `modify` action per approved pin, plus a `reboot`
//!   action when the reboot policy may reboot. What is not approved is logged with the reason.
//! - `apply` refuses to run without a window slot or in a slot already used (error codes
//!   `no-window-slot`, `window-slot-used`), records the slot (kv `window-slot`) **before** it
//!   runs anything, re-checks every action against a fresh simulation and the rules (an action
//!   list that is not this plugin's plan, or an update that changed since, is skipped), runs one
//!   `apt-get install --only-upgrade -y pkg=version ...` of exactly the pins left, and then
//!   decides the reboot (`apt_common::reboot`): `shutdown -r +N` or "reboot pending".
//!
//! Nothing else is ever run: the manifest grants the simulation, the install with pin-shaped
//! arguments and the delayed reboot, and nothing more.

mod config;

use apt_common::policy::{self, FirstSeen, Verdict};
use apt_common::reboot::{self, RebootDecision, RebootPolicy};
use apt_common::slot::{self, SlotCheck, SlotRecord};
use apt_common::{APT_GET, host, simulate};
use warden_sdk::{Action, ActionKind, ActionOutcome, PluginError, Remediation, exec, kv, log};

use crate::config::Config;

const FIRST_SEEN_KEY: &str = "first-seen";
const SLOT_KEY: &str = "window-slot";
const UPGRADE_PREFIX: &str = "upgrade-";
const REBOOT_ID: &str = "reboot";
const SHUTDOWN: &str = "/usr/sbin/shutdown";
/// Options every install passes: keep a locally changed config file and take the package's
/// default for the rest, instead of asking (there is nobody to answer).
const INSTALL_ARGS: [&str; 8] = [
    "install",
    "--only-upgrade",
    "-y",
    "-q",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

struct AptPatch;

impl Remediation for AptPatch {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config = Config::parse(config)?;
        let sim = host::simulate(config.simulate_timeout)?;
        let now = host::now_secs();
        let mut seen: FirstSeen = kv::get_json(FIRST_SEEN_KEY)?.unwrap_or_default();
        if seen.observe(&sim.upgrades, now) {
            kv::set_json(FIRST_SEEN_KEY, &seen)?;
        }
        let mut actions = Vec::new();
        for (update, verdict) in policy::judge(&config.policy, &sim, &seen, now) {
            if verdict != Verdict::Approved {
                log::info(
                    "not planned",
                    &[
                        ("pin", &update.pin()),
                        ("severity", update.severity.as_str()),
                        ("verdict", verdict.word()),
                        ("why", &verdict.describe()),
                    ],
                );
                continue;
            }
            if actions.len() == config.max_packages {
                log::warn(
                    "more approved updates than max_packages; the rest wait for the next window",
                    &[("max_packages", &config.max_packages.to_string())],
                );
                break;
            }
            actions.push(Action::new(
                format!("{UPGRADE_PREFIX}{}", actions.len() + 1),
                ActionKind::Modify,
                update.pin(),
                format!(
                    "upgrade {} {} -> {} ({}; {})",
                    update.name,
                    update.installed.as_deref().unwrap_or("?"),
                    update.candidate,
                    update.severity.as_str(),
                    update.origins.join(", ")
                ),
            ));
        }
        for name in &sim.kept_back {
            log::info("kept back by apt, not planned", &[("name", name)]);
        }
        let (required, _) = host::reboot_state()?;
        let reboots = match config.reboot {
            RebootPolicy::Never => false,
            RebootPolicy::Always => !actions.is_empty(),
            RebootPolicy::WhenRequired => !actions.is_empty() || required,
        };
        if reboots {
            actions.push(Action::new(
                REBOOT_ID,
                ActionKind::Exec,
                SHUTDOWN,
                match config.reboot {
                    RebootPolicy::Always => format!(
                        "reboot in {} min after the upgrades (policy always)",
                        config.reboot_delay_minutes
                    ),
                    _ => format!(
                        "reboot in {} min if {} exists after the upgrades (policy when-required)",
                        config.reboot_delay_minutes,
                        reboot::REBOOT_REQUIRED
                    ),
                },
            ));
        }
        Ok(actions)
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config = Config::parse(config)?;
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        claim_slot(&config.window_slot)?;
        let sim = host::simulate(config.simulate_timeout)?;
        let now = host::now_secs();
        let seen: FirstSeen = kv::get_json(FIRST_SEEN_KEY)?.unwrap_or_default();
        let verdicts = policy::judge(&config.policy, &sim, &seen, now);

        let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; actions.len()];
        let mut pins: Vec<(usize, String)> = Vec::new();
        let mut reboot_at = None;
        for (i, action) in actions.iter().enumerate() {
            if action.id == REBOOT_ID
                && action.kind == ActionKind::Exec
                && action.target == SHUTDOWN
            {
                reboot_at = Some(i);
                continue;
            }
            match recheck(action, &verdicts) {
                Ok(pin) if pins.len() < config.max_packages => pins.push((i, pin)),
                Ok(_) => outcomes[i] = Some(ActionOutcome::skipped(action, "beyond max_packages")),
                Err(why) => outcomes[i] = Some(ActionOutcome::skipped(action, why)),
            }
        }

        let upgrades_ok = install(&config, &actions, &pins, &mut outcomes);
        if let Some(i) = reboot_at {
            outcomes[i] = Some(decide_reboot(&config, &actions[i], upgrades_ok, &pins)?);
        }
        Ok(outcomes
            .into_iter()
            .zip(&actions)
            .map(|(o, a)| {
                o.unwrap_or_else(|| ActionOutcome::skipped(a, "not this plugin's action"))
            })
            .collect())
    }
}

/// Refuse a missing or used slot; record the slot before anything is changed. If the record
/// cannot be written, nothing is applied.
fn claim_slot(window_slot: &str) -> Result<(), PluginError> {
    if !slot::valid(window_slot) {
        return Err(PluginError::new(
            "no-window-slot",
            "apply needs `window_slot`, the maintenance window occurrence it runs in (e.g. nightly@2026-12-02T02:00:00Z; a maintenance schedule with `window-slot-param` passes it)",
        ));
    }
    let recorded: Option<SlotRecord> = kv::get_json(SLOT_KEY)?;
    if let SlotCheck::AlreadyUsed(r) = slot::check(recorded, window_slot) {
        return Err(PluginError::new(
            "window-slot-used",
            format!(
                "window slot {} was already used (recorded at {}): a run stopped half-way is a missed window, not a second patch; the next window runs",
                r.slot,
                apt_common::time::utc(r.recorded_at)
            ),
        ));
    }
    kv::set_json(
        SLOT_KEY,
        &SlotRecord {
            slot: window_slot.to_string(),
            recorded_at: host::now_secs(),
        },
    )?;
    Ok(())
}

/// The pin of an upgrade action that is still upgradable to exactly that version and still
/// approved; otherwise why it is skipped.
fn recheck(action: &Action, verdicts: &[(&simulate::Update, Verdict)]) -> Result<String, String> {
    if action.kind != ActionKind::Modify || !action.id.starts_with(UPGRADE_PREFIX) {
        return Err("not an upgrade action of this plugin".into());
    }
    let Some((name, version)) = simulate::parse_pin(&action.target) else {
        return Err(format!("{:?} is not a name=version pin", action.target));
    };
    let Some((update, verdict)) = verdicts.iter().find(|(u, _)| u.name == name) else {
        return Err(format!("{name} is no longer upgradable"));
    };
    if update.candidate != version {
        return Err(format!(
            "{name}'s candidate is now {}, not {version}",
            update.candidate
        ));
    }
    match verdict {
        Verdict::Approved => Ok(action.target.clone()),
        other => Err(format!("no longer approved: {}", other.describe())),
    }
}

/// One `apt-get install` of exactly `pins`; fills their outcomes. True when it succeeded (or
/// there was nothing to install).
fn install(
    config: &Config,
    actions: &[Action],
    pins: &[(usize, String)],
    outcomes: &mut [Option<ActionOutcome>],
) -> bool {
    if pins.is_empty() {
        return true;
    }
    let result = exec::Command::new(APT_GET)
        .args(INSTALL_ARGS)
        .args(pins.iter().map(|(_, p)| p.as_str()))
        .timeout(config.install_timeout)
        .run();
    let failure = match result {
        Ok(out) if out.success() => None,
        Ok(out) => Some(format!(
            "apt-get install exited {}: {}",
            host::exit_text(out.exit_code),
            host::last_error_line(&out.stderr_lossy())
        )),
        Err(e) => Some(format!("apt-get install: {e}")),
    };
    for (i, pin) in pins {
        let action = &actions[*i];
        outcomes[*i] = Some(match &failure {
            None => ActionOutcome::applied(action, format!("installed {pin}")),
            Some(why) => ActionOutcome::failed(action, why.clone()),
        });
    }
    failure.is_none()
}

/// The reboot after the upgrades, by policy. A failed install does not reboot: the verify
/// re-scan reports what is left, and the machine stays reboot-pending if it is.
fn decide_reboot(
    config: &Config,
    action: &Action,
    upgrades_ok: bool,
    pins: &[(usize, String)],
) -> Result<ActionOutcome, PluginError> {
    let (required, packages) = host::reboot_state()?;
    let by = if packages.is_empty() {
        String::new()
    } else {
        format!(" (required by {})", packages.join(", "))
    };
    if !upgrades_ok {
        return Ok(ActionOutcome::skipped(
            action,
            format!("upgrades failed; not rebooting{by}"),
        ));
    }
    if config.reboot == RebootPolicy::Always && pins.is_empty() {
        return Ok(ActionOutcome::skipped(action, "nothing was upgraded"));
    }
    Ok(match reboot::decide(config.reboot, required) {
        RebootDecision::NotNeeded => ActionOutcome::skipped(action, "no reboot required"),
        RebootDecision::LeavePending => {
            ActionOutcome::skipped(action, format!("reboot pending{by}; policy never"))
        }
        RebootDecision::Reboot => {
            let delay = format!("+{}", config.reboot_delay_minutes);
            match exec::Command::new(SHUTDOWN)
                .args(["-r", delay.as_str()])
                .run()
            {
                Ok(out) if out.success() => ActionOutcome::applied(
                    action,
                    format!(
                        "reboot scheduled in {} min{by}; reboot pending until then",
                        config.reboot_delay_minutes
                    ),
                ),
                Ok(out) => ActionOutcome::failed(
                    action,
                    format!(
                        "shutdown exited {}: {}",
                        host::exit_text(out.exit_code),
                        host::last_error_line(&out.stderr_lossy())
                    ),
                ),
                Err(e) => ActionOutcome::failed(action, format!("shutdown: {e}")),
            }
        }
    })
}

warden_sdk::remediation!(AptPatch);

#[cfg(test)]
mod tests {
    use super::*;
    use apt_common::simulate::{Severity, Update};

    fn update(name: &str, candidate: &str) -> Update {
        Update {
            name: name.into(),
            installed: Some("1.0".into()),
            candidate: candidate.into(),
            origins: vec![],
            arch: "amd64".into(),
            severity: Severity::Security,
        }
    }

    fn upgrade(target: &str) -> Action {
        Action::new("upgrade-1", ActionKind::Modify, target, "")
    }

    #[test]
    fn apply_rechecks_every_action_against_the_fresh_simulation() {
        let ssl = update("libssl3", "3.0.13-1");
        let bash = update("bash", "5.3-1");
        let verdicts = vec![
            (&ssl, Verdict::Approved),
            (
                &bash,
                Verdict::Denied {
                    pattern: "ba*".into(),
                },
            ),
        ];
        assert_eq!(
            recheck(&upgrade("libssl3=3.0.13-1"), &verdicts),
            Ok("libssl3=3.0.13-1".into())
        );
        assert_eq!(
            recheck(&upgrade("libssl3=3.0.12-1"), &verdicts),
            Err("libssl3's candidate is now 3.0.13-1, not 3.0.12-1".into())
        );
        assert_eq!(
            recheck(&upgrade("bash=5.3-1"), &verdicts),
            Err("no longer approved: denied by ba*".into())
        );
        assert_eq!(
            recheck(&upgrade("zsh=5.9-1"), &verdicts),
            Err("zsh is no longer upgradable".into())
        );
        // An action list that is not this plugin's plan never reaches apt.
        for action in [
            upgrade("-oDpkg::Pre-Invoke::=touch /x"),
            upgrade("libssl3"),
            Action::new("upgrade-1", ActionKind::Delete, "libssl3=3.0.13-1", ""),
            Action::new("other-1", ActionKind::Modify, "libssl3=3.0.13-1", ""),
        ] {
            assert!(recheck(&action, &verdicts).is_err(), "{action:?}");
        }
    }
}
