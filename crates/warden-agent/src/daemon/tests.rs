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

#[tokio::test]
async fn a_monitor_naming_a_plugin_that_is_not_installed_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runner =
        PluginManager::new(dir.path(), SitePolicy::embedded_default()).expect("plugin manager");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Told to stop at once: an agent that starts returns Ok after its shutdown.
    let started = serve(
        runner,
        config("disk-usage", dir.path()),
        listener,
        async { "test".to_string() },
        |_| {},
    )
    .await;
    let err = started
        .expect_err("the monitor's plugin is not installed")
        .to_string();
    assert!(
        err.contains("monitor `root-disk`") && err.contains("`disk-usage` is not installed"),
        "{err}"
    );
}
