//! `[[schedule]]` and `[[maintenance-window]]` entries of the automation config: serde types as
//! written, and their validated, compiled forms (parsed cron, IANA time zone, checked limits).

use crate::ConfigError;
use crate::duration::HumanDuration;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest jitter: a day. More would move a daily run onto another day.
pub const MAX_JITTER: Duration = Duration::from_secs(86_400);
/// Longest maintenance window.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// One `[[schedule]]` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleConfig {
    /// Unique among schedules; the key of the persisted state.
    pub name: String,
    /// The runbook file; relative paths are resolved against the config file's directory.
    pub runbook: PathBuf,
    /// Runbook parameters (strings, integers, floats or booleans), as `--param k=v` would give.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Cron expression, 5 fields (`min hour dom month dow`) or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Each host delays its firings by a fixed offset in `[0, jitter]`, derived from the host id
    /// and the schedule name. Default `0s`.
    #[serde(default = "zero")]
    pub jitter: HumanDuration,
    /// A maintenance runbook only starts inside a maintenance window it will finish in.
    #[serde(default)]
    pub maintenance: bool,
    /// How long a run may take; required for maintenance schedules (the window check).
    #[serde(default)]
    pub expected_duration: Option<HumanDuration>,
    /// Restrict a maintenance schedule to these windows (by name). Default: any window.
    #[serde(default)]
    pub windows: Vec<String>,
    /// Plan without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Maintenance only: pass the window slot the run fits in (`nightly@2026-12-02T02:00:00Z`)
    /// as this runbook parameter, for a runbook that must act at most once per window.
    #[serde(default)]
    pub window_slot_param: Option<String>,
}

/// One `[[maintenance-window]]` entry: it opens at each `cron` firing and stays open `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WindowConfig {
    pub name: String,
    /// When the window opens, e.g. `0 2 * * SAT,SUN` (02:00 every weekend day).
    pub cron: String,
    /// How long it stays open (at most 7 days), e.g. `4h`.
    pub duration: HumanDuration,
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

fn zero() -> HumanDuration {
    HumanDuration::secs(0)
}

/// A schedule that passed validation.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub runbook: PathBuf,
    pub params: Vec<(String, String)>,
    pub cron_text: String,
    pub cron: Cron,
    pub tz: Tz,
    pub jitter: Duration,
    pub maintenance: bool,
    pub expected_duration: Duration,
    pub windows: Vec<String>,
    pub dry_run: bool,
    pub window_slot_param: Option<String>,
}

/// A maintenance window that passed validation.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    pub name: String,
    pub cron_text: String,
    pub cron: Cron,
    pub tz: Tz,
    pub duration: Duration,
}

/// The cron dialect: 5 fields, or 6 with seconds first; no year field. Names (`MON`, `JAN`),
/// ranges, lists, steps, `L`, `W` and `#` are accepted (croner's syntax).
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("cron expression `{text}`: {e}"))
}

pub fn parse_tz(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>()
        .map_err(|_| format!("unknown time zone `{text}` (use an IANA name like `Europe/Berlin`)"))
}

/// Names are keys in the state tables and audit records: keep them plain.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name `{name}` must be 1-64 characters of letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// A TOML scalar as a `--param` string; tables and arrays are refused.
pub fn param_string(key: &str, v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "parameter `{key}` must be a string, number or boolean"
        )),
    }
}

pub fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl WindowConfig {
    pub fn compile(&self) -> Result<MaintenanceWindow, ConfigError> {
        let err = |message: String| ConfigError::Entry {
            section: "maintenance-window",
            name: self.name.clone(),
            message,
        };
        check_name("maintenance-window", &self.name).map_err(err)?;
        let cron = parse_cron(&self.cron).map_err(err)?;
        let tz = parse_tz(&self.timezone).map_err(err)?;
        if self.duration.0.is_zero() || self.duration.0 > MAX_WINDOW {
            return Err(err(format!(
                "duration {} must be more than 0s and at most 7d",
                self.duration
            )));
        }
        Ok(MaintenanceWindow {
            name: self.name.clone(),
            cron_text: self.cron.clone(),
            cron,
            tz,
            duration: self.duration.0,
        })
    }
}

impl ScheduleConfig {
    /// Validate against the windows already compiled; `base` resolves a relative runbook path.
    pub fn compile(
        &self,
        base: &Path,
        windows: &[MaintenanceWindow],
    ) -> Result<Schedule, ConfigError> {
        let err = |message: String| ConfigError::Entry {
            section: "schedule",
            name: self.name.clone(),
            message,
        };
        check_name("schedule", &self.name).map_err(err)?;
        let cron = parse_cron(&self.cron).map_err(err)?;
        let tz = parse_tz(&self.timezone).map_err(err)?;
        if self.jitter.0 > MAX_JITTER {
            return Err(err(format!("jitter {} is more than 1d", self.jitter)));
        }
        let params = self
            .params
            .iter()
            .map(|(k, v)| param_string(k, v).map(|s| (k.clone(), s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        for w in &self.windows {
            if !windows.iter().any(|mw| &mw.name == w) {
                return Err(err(format!("no maintenance-window named `{w}`")));
            }
        }
        if !self.windows.is_empty() && !self.maintenance {
            return Err(err(
                "`windows` is only meaningful with `maintenance = true`".into(),
            ));
        }
        if let Some(p) = &self.window_slot_param {
            if !self.maintenance {
                return Err(err(
                    "`window-slot-param` is only meaningful with `maintenance = true`".into(),
                ));
            }
            let ident = p
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ident {
                return Err(err(format!(
                    "`window-slot-param` `{p}` is not a runbook parameter name ([a-z_][a-z0-9_]*)"
                )));
            }
            if self.params.contains_key(p) {
                return Err(err(format!(
                    "`{p}` is both in `params` and the `window-slot-param`: the schedule sets it"
                )));
            }
        }
        let expected = self.expected_duration.map(|d| d.0).unwrap_or_default();
        if self.maintenance {
            if self.expected_duration.is_none_or(|d| d.0.is_zero()) {
                return Err(err(
                    "a maintenance schedule needs `expected-duration` (for the window check)"
                        .into(),
                ));
            }
            let usable: Vec<&MaintenanceWindow> = windows
                .iter()
                .filter(|w| self.windows.is_empty() || self.windows.contains(&w.name))
                .collect();
            if usable.is_empty() {
                return Err(err(
                    "a maintenance schedule needs at least one [[maintenance-window]]".into(),
                ));
            }
            if usable.iter().all(|w| w.duration < expected) {
                return Err(err(format!(
                    "expected-duration {} is longer than every window it may use: it could never start",
                    HumanDuration(expected)
                )));
            }
        }
        Ok(Schedule {
            name: self.name.clone(),
            runbook: resolve_path(base, &self.runbook),
            params,
            cron_text: self.cron.clone(),
            cron,
            tz,
            jitter: self.jitter.0,
            maintenance: self.maintenance,
            expected_duration: expected,
            windows: self.windows.clone(),
            dry_run: self.dry_run,
            window_slot_param: self.window_slot_param.clone(),
        })
    }
}
