//! # tracer
//!
//! A test guest that proves whether `apply` ran. `plan` returns one action (kind `create`,
//! target = config `path`) and touches nothing; `apply` writes `applied` into `path`. A dry run
//! must leave no file behind; a real run must leave one containing `applied`.

use serde::Deserialize;
use warden_sdk::{Action, ActionKind, ActionOutcome, PluginError, Remediation, fs_write};

#[derive(Debug, Deserialize)]
struct Config {
    path: String,
}

struct Tracer;

impl Remediation for Tracer {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        Ok(vec![Action::new(
            "trace",
            ActionKind::Create,
            config.path.as_str(),
            format!("write the trace file {}", config.path),
        )])
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        Ok(actions
            .iter()
            .map(|action| match fs_write::write(&config.path, "applied") {
                Ok(()) => ActionOutcome::applied(action, "trace written"),
                Err(e) => ActionOutcome::failed(action, e.to_string()),
            })
            .collect())
    }
}

warden_sdk::remediation!(Tracer);
