//! Heartbeats: every interval, the agent's presence and inventory on `fleet.hb.<t>.<a>` (core
//! NATS; a lost one is replaced by the next, so none is queued while disconnected).

use super::core::LinkCore;
use super::seam::Inventory;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warden_fleet_wire::heartbeat::{
    MAX_FAILING, MAX_FAILING_NAME_LEN, MAX_HOSTNAME_LEN, MAX_OS_LEN, MAX_PLUGIN_NAME_LEN,
    MAX_PLUGINS, MAX_VERSION_LEN, MAX_WINDOWS,
};
use warden_fleet_wire::{Heartbeat, UnixMillis, WindowInfo, encode, one_line};

/// What every heartbeat of this link says about the host.
#[derive(Debug, Clone)]
pub struct HeartbeatSettings {
    pub interval: Duration,
    pub tags: BTreeMap<String, String>,
    pub hostname: String,
    /// The automation config's `[[maintenance-window]]`s ([`window_info`]), reported so the
    /// controller's approvals know when this agent is inside one.
    pub windows: Vec<WindowInfo>,
}

/// A compiled window as the heartbeat reports it: the config's own text (cron, zone), so the
/// controller evaluates exactly what the agent does.
pub fn window_info(w: &warden_automation::schedule::MaintenanceWindow) -> WindowInfo {
    WindowInfo {
        name: w.name.clone(),
        cron: w.cron_text.clone(),
        timezone: w.tz.name().to_string(),
        duration_secs: w.duration.as_secs(),
    }
}

pub(crate) fn build(
    core: &LinkCore,
    settings: &HeartbeatSettings,
    inventory: Inventory,
    seq: u64,
) -> Heartbeat {
    let interval_ms = i64::try_from(settings.interval.as_millis()).unwrap_or(i64::MAX);
    let mut hb = Heartbeat::new(
        core.identity.tenant.clone(),
        core.identity.agent.clone(),
        UnixMillis::now(),
        seq,
        interval_ms,
    );
    hb.agent_version = one_line(env!("CARGO_PKG_VERSION"), MAX_VERSION_LEN);
    hb.hostname = one_line(&settings.hostname, MAX_HOSTNAME_LEN);
    hb.os = one_line(std::env::consts::OS, MAX_OS_LEN);
    hb.tags = settings.tags.clone();
    // A plugin the wire cannot carry (a name or version out of its bounds) is left out rather
    // than costing the whole heartbeat.
    hb.plugins = inventory
        .plugins
        .into_iter()
        .filter(|p| {
            p.name.len() <= MAX_PLUGIN_NAME_LEN
                && p.version.len() <= MAX_VERSION_LEN
                && p.sha256.len() == 64
        })
        .take(MAX_PLUGINS)
        .collect();
    hb.open_incidents = inventory.open_incidents;
    // The count stays whole; the names the wire cannot carry are left out.
    hb.failing = inventory
        .failing
        .into_iter()
        .filter(|n| {
            !n.is_empty() && n.len() <= MAX_FAILING_NAME_LEN && !n.chars().any(char::is_control)
        })
        .take(MAX_FAILING)
        .collect();
    // The same rule for a summary out of the wire's bounds: without it, not without a heartbeat.
    hb.patches = inventory.patches.filter(|p| p.check().is_ok());
    // A window the wire cannot carry is left out too: the controller then sees this agent as
    // outside it, which asks for an approval rather than skipping one.
    hb.windows = Some(
        settings
            .windows
            .iter()
            .filter(|w| w.check().is_ok())
            .take(MAX_WINDOWS)
            .cloned()
            .collect(),
    );
    hb
}

/// Every interval while connected, and at once on every (re)connect: the connection usually
/// comes up just after the link starts (it connects in the background), and a heartbeat skipped
/// then would leave a new or returning agent unseen (and its waiting commands unsent) for a
/// whole interval.
pub(crate) async fn run(
    core: Arc<LinkCore>,
    client: async_nats::Client,
    settings: HeartbeatSettings,
    mut connected: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*connected.borrow_and_update() {
                    continue;
                }
                // Just (re)connected: one now, the next a full interval later.
                ticks.reset();
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        if !*connected.borrow() {
            continue;
        }
        let agent = core.agent.clone();
        let inventory = tokio::task::spawn_blocking(move || agent.inventory())
            .await
            .unwrap_or_default();
        seq += 1;
        let hb = build(&core, &settings, inventory, seq);
        let bytes = match encode(&hb) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("fleet heartbeat not sent: {e}");
                continue;
            }
        };
        if let Err(e) = client.publish(hb.nats_subject(), bytes.into()).await {
            tracing::debug!("fleet heartbeat not sent: {e}");
        }
    }
}
