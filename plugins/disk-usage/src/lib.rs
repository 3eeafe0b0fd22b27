//! `disk-usage`: a check plugin that judges how full each mounted filesystem is. It reports
//! `used_percent:<mount>` and `available_bytes:<mount>` per filesystem and the worst status,
//! naming the fullest filesystem in the summary.

use serde::Deserialize;
use warden_sdk::{Check, CheckResult, PluginError, Status, sysinfo};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_warning")]
    warning_percent: f64,
    #[serde(default = "default_critical")]
    critical_percent: f64,
    /// Mount points to judge; all filesystems with a size when absent.
    #[serde(default)]
    mounts: Option<Vec<String>>,
}

fn default_warning() -> f64 {
    80.0
}

fn default_critical() -> f64 {
    90.0
}

impl Config {
    fn parse(json: &str) -> Result<Config, PluginError> {
        let config: Config = warden_sdk::config(json)?;
        for (key, value) in [
            ("warning_percent", config.warning_percent),
            ("critical_percent", config.critical_percent),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(PluginError::bad_config(format!(
                    "{key} must be between 0 and 100, got {value}"
                )));
            }
        }
        if config.warning_percent > config.critical_percent {
            return Err(PluginError::bad_config(format!(
                "warning_percent ({}) must not be above critical_percent ({})",
                config.warning_percent, config.critical_percent
            )));
        }
        Ok(config)
    }

    fn judge(&self, used_percent: f64) -> Status {
        if used_percent >= self.critical_percent {
            Status::Critical
        } else if used_percent >= self.warning_percent {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

/// One judged filesystem.
struct Usage {
    mount: String,
    used_percent: f64,
    available_bytes: u64,
}

struct DiskUsage;

impl Check for DiskUsage {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config = Config::parse(config)?;
        let disks = sysinfo::disks()?;

        let mut missing = Vec::new();
        let selected: Vec<_> = match &config.mounts {
            Some(mounts) => {
                for mount in mounts {
                    if !disks.iter().any(|d| &d.mount_point == mount) {
                        missing.push(mount.as_str());
                    }
                }
                disks
                    .iter()
                    .filter(|d| mounts.contains(&d.mount_point))
                    .collect()
            }
            None => disks.iter().filter(|d| d.total_bytes > 0).collect(),
        };

        let usages: Vec<Usage> = selected
            .iter()
            .map(|d| {
                // A filesystem of size 0 (only reachable when named explicitly) counts as empty.
                let used = d.total_bytes.saturating_sub(d.available_bytes);
                let used_percent = if d.total_bytes == 0 {
                    0.0
                } else {
                    used as f64 * 100.0 / d.total_bytes as f64
                };
                Usage {
                    mount: d.mount_point.clone(),
                    used_percent,
                    available_bytes: d.available_bytes,
                }
            })
            .collect();

        let mut status = if missing.is_empty() {
            Status::Ok
        } else {
            Status::Unknown
        };
        let mut result_metrics = Vec::new();
        for u in &usages {
            status = status.worst(config.judge(u.used_percent));
            result_metrics.push((
                format!("used_percent:{}", u.mount),
                u.used_percent,
                "percent",
            ));
            result_metrics.push((
                format!("available_bytes:{}", u.mount),
                u.available_bytes as f64,
                "bytes",
            ));
        }

        let fullest = usages
            .iter()
            .max_by(|a, b| a.used_percent.total_cmp(&b.used_percent));
        let mut summary = match fullest {
            Some(u) => format!(
                "fullest is {} at {:.1}% used ({} available); {} filesystem(s) checked",
                u.mount,
                u.used_percent,
                human_bytes(u.available_bytes),
                usages.len()
            ),
            None => {
                status = status.worst(Status::Unknown);
                "no filesystem to check".to_string()
            }
        };
        if !missing.is_empty() {
            summary.push_str(&format!("; not mounted: {}", missing.join(", ")));
        }

        Ok(result_metrics.into_iter().fold(
            CheckResult::new(status, summary),
            |r, (name, value, unit)| r.metric(name, value, unit),
        ))
    }
}

/// Binary units with one decimal, e.g. `12.3 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

warden_sdk::check!(DiskUsage);
