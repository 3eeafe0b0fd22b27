//! Reloading the agent config without a restart: `warden serve` rereads its config file on
//! SIGHUP (what service managers send for `reload`) and applies the new `[[api.token]]` list, so
//! a token is added or revoked without dropping runs or streams. Everything else in the file
//! (the address, limits, runbooks, schedules and monitors) takes effect at the next start. A file
//! that does not load changes nothing; both outcomes are audited and told on `WatchEvents`.

use super::config::AgentConfig;
use super::events::AgentEvent;
use crate::PluginManager;
use crate::grpc::auth::Authenticator;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// A reread config, or why it could not be read.
pub type Reload = Result<AgentConfig, String>;

/// Reloads waiting to be applied: a SIGHUP storm rereads the file a few times, never queues
/// without bound.
const PENDING_RELOADS: usize = 4;

/// Apply each reload as it comes, until the sender goes away.
pub(crate) async fn apply_reloads(
    mut reloads: mpsc::Receiver<Reload>,
    auth: Arc<Authenticator>,
    runner: Arc<PluginManager>,
    events: broadcast::Sender<AgentEvent>,
) {
    while let Some(reload) = reloads.recv().await {
        let (kind, message, detail) = match reload {
            Ok(config) => {
                auth.replace_tokens(&config.api.tokens);
                let names: Vec<&str> = config.api.tokens.iter().map(|t| t.name.as_str()).collect();
                tracing::info!(
                    "agent config reloaded: {} API token(s) ({}); other settings apply at the next start",
                    names.len(),
                    names.join(", ")
                );
                (
                    "agent.reloaded",
                    format!("the API tokens were reloaded: {}", names.join(", ")),
                    json!({ "tokens": names, "applied": ["api.token"] }),
                )
            }
            Err(error) => {
                tracing::error!("agent config not reloaded, the running one stays: {error}");
                (
                    "agent.reload-failed",
                    format!("the agent config was not reloaded: {error}"),
                    json!({ "error": error }),
                )
            }
        };
        let audit = runner.clone();
        let record = detail.clone();
        let written =
            tokio::task::spawn_blocking(move || audit.audit().append(kind, record).map(drop)).await;
        if let Ok(Err(e)) = written {
            tracing::error!("cannot audit the reload: {e}");
        }
        let _ = events.send(AgentEvent {
            at_ms: warden_history::now_ms(),
            kind: kind.into(),
            subject: "agent.toml".into(),
            message,
            detail,
        });
    }
}

/// Reread `path` on every SIGHUP; the reloads to hand to [`super::serve_reloading`]. Registered
/// before the agent serves, so a SIGHUP never falls back to its default (ending the process
/// without its `agent.stopped` record).
#[cfg(unix)]
pub fn on_sighup(path: std::path::PathBuf) -> std::io::Result<mpsc::Receiver<Reload>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(PENDING_RELOADS);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let path = path.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                AgentConfig::load(&path).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
            if tx.send(loaded).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// No SIGHUP off Unix: the config is read at start only.
#[cfg(not(unix))]
pub fn on_sighup(_path: std::path::PathBuf) -> std::io::Result<mpsc::Receiver<Reload>> {
    let (_tx, rx) = mpsc::channel(PENDING_RELOADS);
    Ok(rx)
}
