//! `screen-lock`: a compliance check that an unattended graphical session locks itself: GNOME's
//! `idle-delay` (screen blanks) plus `lock-delay` (then locks) within `max_seconds`, with
//! `lock-enabled=true`, set in a system dconf database that the user profile applies and (by
//! default) locked so a user cannot change it. Evidence for HIPAA 164.312(a)(2)(iii)
//! (automatic logoff) and CMMC AC.L2-3.1.10 (session lock after a period of inactivity);
//! `auto-logoff` covers the shells.
//!
//! The judgement, in order:
//! - no session type installed (`/usr/share/xsessions`, `/usr/share/wayland-sessions` empty or
//!   absent): ok, there is no screen to lock (a server; its shells are `auto-logoff`'s);
//! - session types, none of them GNOME's (`gnome*`, `ubuntu*`): unknown, naming them (their
//!   lock settings live elsewhere and are not read);
//! - no `/etc/dconf/profile/user`, or one naming no system database: critical, because no
//!   system-wide setting reaches a user session and each user's own choice decides;
//! - `idle-delay` or `lock-enabled` set in none of those databases: critical, for the same
//!   reason; `idle-delay=0` (never idle), `lock-enabled=false`, or idle plus lock delay above
//!   `max_seconds`: critical; a value that is not a literal: unknown;
//! - both set well but either not in a `locks/` file and `require_locked`: warning;
//! - otherwise ok, naming the file and line of each value and lock.

mod dconf;

use dconf::Value;
use serde::Deserialize;
use warden_sdk::{CapError, Check, CheckResult, PluginError, Status, fs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_max")]
    max_seconds: u64,
    #[serde(default = "default_locked")]
    require_locked: bool,
}

fn default_max() -> u64 {
    900
}

fn default_locked() -> bool {
    true
}

const SESSION_DIRS: [&str; 2] = ["/usr/share/xsessions", "/usr/share/wayland-sessions"];
const PROFILE: &str = "/etc/dconf/profile/user";
const SESSION: &str = "org/gnome/desktop/session";
const SCREENSAVER: &str = "org/gnome/desktop/screensaver";

/// The names (without `.desktop`) of the installed session types.
fn session_types() -> Result<Vec<String>, CapError> {
    let mut names = Vec::new();
    for dir in SESSION_DIRS {
        match fs::list_dir(dir) {
            Ok(entries) => names.extend(
                entries
                    .into_iter()
                    .filter(|e| !e.metadata.is_dir())
                    .filter_map(|e| e.name.strip_suffix(".desktop").map(str::to_string)),
            ),
            Err(CapError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The files of a directory in name order, with their text; none when it does not exist.
fn files_in(dir: &str) -> Result<Vec<(String, String)>, CapError> {
    let entries = match fs::list_dir(dir) {
        Ok(entries) => entries,
        Err(CapError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|e| !e.metadata.is_dir())
        .map(|e| e.name)
        .collect();
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let path = format!("{dir}/{name}");
        match fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(CapError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

/// What the system databases say about one key: its value (the first database that sets it;
/// within it the last file) and the lock line, if any database locks it.
struct Setting {
    value: Option<Value>,
    lock: Option<String>,
}

fn setting(dbs: &[Db], group: &str, key: &str) -> Setting {
    let value = dbs.iter().find_map(|db| {
        db.keyfiles
            .iter()
            .rev()
            .find_map(|(path, text)| dconf::find(path, text, group, key))
    });
    let lock = dbs.iter().find_map(|db| {
        db.locks
            .iter()
            .find_map(|(path, text)| dconf::locks(path, text, group, key))
    });
    Setting { value, lock }
}

struct Db {
    keyfiles: Vec<(String, String)>,
    locks: Vec<(String, String)>,
}

fn read_dbs(names: &[String]) -> Result<Vec<Db>, CapError> {
    names
        .iter()
        .map(|name| {
            let dir = format!("/etc/dconf/db/{name}.d");
            Ok(Db {
                keyfiles: files_in(&dir)?,
                locks: files_in(&format!("{dir}/locks"))?,
            })
        })
        .collect()
}

fn judge(config: &Config, dbs: &[Db], names: &[String]) -> (Status, String) {
    let idle = setting(dbs, SESSION, "idle-delay");
    let enabled = setting(dbs, SCREENSAVER, "lock-enabled");
    let delay = setting(dbs, SCREENSAVER, "lock-delay");
    let where_ = names.join(", ");
    let Some(idle_value) = &idle.value else {
        return (
            Status::Critical,
            format!(
                "{SESSION} idle-delay is set in no system dconf database ({where_}): each user's own setting decides"
            ),
        );
    };
    let Some(enabled_value) = &enabled.value else {
        return (
            Status::Critical,
            format!(
                "{SCREENSAVER} lock-enabled is set in no system dconf database ({where_}): each user's own setting decides"
            ),
        );
    };
    let Some(idle_s) = idle_value.seconds() else {
        return (
            Status::Unknown,
            format!(
                "idle-delay={} at {} is not a number of seconds",
                idle_value.text, idle_value.at
            ),
        );
    };
    let Some(lock_on) = enabled_value.boolean() else {
        return (
            Status::Unknown,
            format!(
                "lock-enabled={} at {} is not true or false",
                enabled_value.text, enabled_value.at
            ),
        );
    };
    if idle_s == 0 {
        return (
            Status::Critical,
            format!(
                "idle-delay=0 at {}: the session never goes idle, so it never locks",
                idle_value.at
            ),
        );
    }
    if !lock_on {
        return (
            Status::Critical,
            format!(
                "lock-enabled=false at {}: an idle session blanks but does not lock",
                enabled_value.at
            ),
        );
    }
    let delay_s = match &delay.value {
        None => 0,
        Some(v) => match v.seconds() {
            Some(s) => s,
            None => {
                return (
                    Status::Unknown,
                    format!(
                        "lock-delay={} at {} is not a number of seconds",
                        v.text, v.at
                    ),
                );
            }
        },
    };
    let total = idle_s.saturating_add(delay_s);
    let evidence = format!(
        "idle-delay={idle_s} at {}, lock-enabled=true at {}{}",
        idle_value.at,
        enabled_value.at,
        delay
            .value
            .as_ref()
            .map(|v| format!(", lock-delay={delay_s} at {}", v.at))
            .unwrap_or_default()
    );
    if total > config.max_seconds {
        return (
            Status::Critical,
            format!(
                "the screen locks after {total} s idle, above the maximum of {} s ({evidence})",
                config.max_seconds
            ),
        );
    }
    let unlocked: Vec<&str> = [("idle-delay", &idle.lock), ("lock-enabled", &enabled.lock)]
        .into_iter()
        .filter(|(_, lock)| lock.is_none())
        .map(|(key, _)| key)
        .collect();
    match (unlocked.is_empty(), config.require_locked) {
        (false, true) => (
            Status::Warning,
            format!(
                "the screen locks after {total} s idle ({evidence}), but {} is not in a locks file: a user can change it",
                unlocked.join(" and ")
            ),
        ),
        (true, _) => (
            Status::Ok,
            format!(
                "the screen locks after {total} s idle ({evidence}); locked at {}",
                [&idle.lock, &enabled.lock]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (false, false) => (
            Status::Ok,
            format!("the screen locks after {total} s idle ({evidence})"),
        ),
    }
}

struct ScreenLock;

impl Check for ScreenLock {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let sessions = match session_types() {
            Ok(sessions) => sessions,
            Err(e) => {
                return Ok(CheckResult::unknown(format!(
                    "cannot read the installed session types: {e}"
                )));
            }
        };
        if sessions.is_empty() {
            return Ok(CheckResult::ok(
                "no graphical session type is installed (/usr/share/xsessions, /usr/share/wayland-sessions): no screen to lock",
            ));
        }
        if !sessions
            .iter()
            .any(|s| s.starts_with("gnome") || s.starts_with("ubuntu"))
        {
            return Ok(CheckResult::unknown(format!(
                "the installed sessions ({}) are not GNOME's: their screen lock settings are not read",
                sessions.join(", ")
            )));
        }
        let profile = match fs::read_to_string(PROFILE) {
            Ok(text) => text,
            Err(CapError::NotFound(_)) => {
                return Ok(CheckResult::critical(format!(
                    "GNOME is installed ({}) and there is no {PROFILE}: no system-wide setting reaches a user session",
                    sessions.join(", ")
                )));
            }
            Err(e) => {
                return Ok(CheckResult::unknown(format!("cannot read {PROFILE}: {e}")));
            }
        };
        let names = dconf::system_dbs(&profile);
        if names.is_empty() {
            return Ok(CheckResult::critical(format!(
                "{PROFILE} names no system-db: no system-wide setting reaches a user session"
            )));
        }
        let dbs = match read_dbs(&names) {
            Ok(dbs) => dbs,
            Err(e) => {
                return Ok(CheckResult::unknown(format!(
                    "cannot read the dconf databases: {e}"
                )));
            }
        };
        let (status, summary) = judge(&config, &dbs, &names);
        Ok(CheckResult::new(status, summary))
    }
}

warden_sdk::check!(ScreenLock);
