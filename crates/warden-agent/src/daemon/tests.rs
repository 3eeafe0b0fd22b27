//! The daemon's start-up checks, in-process, on a fresh data dir.

use super::config::AgentConfig;
use super::serve;
use crate::PluginManager;
use std::path::Path;
use warden_core::SitePolicy;

fn config(monitor_plugin: &str, base: &Path) -> AgentConfig {
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"noc\"\nrole = \"viewer\"\n\
         sha256 = \"{}\"\n[[monitor]]\nname = \"root-disk\"\nplugin = \"{monitor_plugin}\"\n",
        "a".repeat(64)
    );
    AgentConfig::parse(&text, "agent.toml", base).expect("config")
}

/// Why an agent with one monitor naming `monitor_plugin`, on a store with nothing installed,
/// refuses to start.
async fn refused_at_start(monitor_plugin: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let runner =
        PluginManager::new(dir.path(), SitePolicy::embedded_default()).expect("plugin manager");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Told to stop at once: an agent that starts returns Ok after its shutdown.
    let started = serve(
        runner,
        config(monitor_plugin, dir.path()),
        listener,
        async { "test".to_string() },
        |_| {},
    )
    .await;
    started.expect_err("refused at start").to_string()
}

#[tokio::test]
async fn a_monitor_naming_a_plugin_that_is_not_installed_is_refused_at_start() {
    let err = refused_at_start("disk-usage").await;
    assert!(
        err.contains("monitor `root-disk`") && err.contains("`disk-usage` is not installed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_drift_monitor_whose_discovery_plugin_is_not_installed_is_refused_at_start() {
    let err = refused_at_start("builtin:drift").await;
    assert!(
        err.contains("monitor `root-disk`") && err.contains("`inventory` is not installed"),
        "{err}"
    );
}
