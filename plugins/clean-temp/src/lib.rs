//! `clean-temp`: a remediation plugin that deletes regular files older than `older_than_days`
//! directly inside one directory. `plan` only lists and stats; `apply` re-checks every approved
//! action against the directory and the age before deleting, and deletes nothing else.

mod target;

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use warden_sdk::{
    Action, ActionKind, ActionOutcome, CapError, PluginError, Remediation, fs, fs::Metadata,
    fs_write, log,
};

use crate::target::Dir;

const SECS_PER_DAY: u64 = 24 * 60 * 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    dir: String,
    #[serde(default = "default_days")]
    older_than_days: u64,
    #[serde(default = "default_max_files")]
    max_files: usize,
}

fn default_days() -> u64 {
    7
}

fn default_max_files() -> usize {
    10_000
}

/// Validated configuration.
struct Config {
    dir: Dir,
    older_than_days: u64,
    max_files: usize,
}

impl Config {
    fn parse(json: &str) -> Result<Config, PluginError> {
        let raw: RawConfig = warden_sdk::config(json)?;
        let dir = Dir::new(&raw.dir).map_err(PluginError::bad_config)?;
        if raw.max_files == 0 {
            return Err(PluginError::bad_config("max_files must be at least 1"));
        }
        Ok(Config {
            dir,
            older_than_days: raw.older_than_days,
            max_files: raw.max_files,
        })
    }

    /// Whether a file with this metadata is old enough to delete. With 0 days every file is; a
    /// file without a modification time never is otherwise, since its age cannot be shown.
    fn is_old_enough(&self, meta: &Metadata, now: SystemTime) -> bool {
        if self.older_than_days == 0 {
            return true;
        }
        let age = Duration::from_secs(self.older_than_days.saturating_mul(SECS_PER_DAY));
        match (meta.modified(), now.checked_sub(age)) {
            (Some(modified), Some(cutoff)) => modified <= cutoff,
            // No cutoff means it lies before the epoch: nothing is that old.
            _ => false,
        }
    }
}

struct CleanTemp;

impl Remediation for CleanTemp {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config = Config::parse(config)?;
        let now = SystemTime::now();
        let mut entries: Vec<_> = fs::list_dir(config.dir.as_str())?
            .into_iter()
            .filter(|e| e.metadata.is_file() && config.is_old_enough(&e.metadata, now))
            .collect();
        // Deterministic plans are easier to review and to compare between runs.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        if entries.len() > config.max_files {
            log::warn(
                "more old files than max_files; planning only the first ones",
                &[
                    ("found", &entries.len().to_string()),
                    ("max_files", &config.max_files.to_string()),
                ],
            );
            entries.truncate(config.max_files);
        }
        Ok(entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Action::new(
                    format!("delete-{}", i + 1),
                    ActionKind::Delete,
                    config.dir.join(&e.name),
                    format!("delete {} ({} bytes)", e.name, e.metadata.size),
                )
            })
            .collect())
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config = Config::parse(config)?;
        let now = SystemTime::now();
        Ok(actions
            .iter()
            .enumerate()
            .map(|(i, action)| {
                if i >= config.max_files {
                    ActionOutcome::skipped(action, "beyond max_files")
                } else {
                    apply_one(&config, action, now)
                }
            })
            .collect())
    }
}

/// Delete one approved file after checking, again, everything the plan relied on: the file may
/// have changed, or the action list may not come from our own plan.
fn apply_one(config: &Config, action: &Action, now: SystemTime) -> ActionOutcome {
    if action.kind != ActionKind::Delete {
        return ActionOutcome::skipped(action, "not a delete action");
    }
    if !config.dir.contains_directly(&action.target) {
        return ActionOutcome::skipped(
            action,
            format!(
                "{} is not directly in {}",
                action.target,
                config.dir.as_str()
            ),
        );
    }
    let meta = match fs::stat(&action.target) {
        Ok(meta) => meta,
        Err(CapError::NotFound(_)) => return ActionOutcome::skipped(action, "already gone"),
        Err(e) => return ActionOutcome::failed(action, e.to_string()),
    };
    if !meta.is_file() {
        return ActionOutcome::skipped(action, "no longer a regular file");
    }
    if !config.is_old_enough(&meta, now) {
        return ActionOutcome::skipped(action, "modified since the plan");
    }
    match fs_write::remove_file(&action.target) {
        Ok(()) => ActionOutcome::applied(action, format!("deleted ({} bytes)", meta.size)),
        Err(e) => ActionOutcome::failed(action, e.to_string()),
    }
}

warden_sdk::remediation!(CleanTemp);
