//! Distribution at scale (issue 16), part of `--fleet`: a signed plugin published to every
//! simulated agent (the 18 MB Python plugin to 1 % of them, `shard=0`: the bytes per agent are
//! the figure, and a thousand 18 MB downloads at once in one process would be tens of gigabytes
//! of memory, which real agents, one per machine, never hold together) (`warden fleet publish` through the controller in this process), each agent
//! fetching the blob by Direct-Get and deciding by itself (the publisher signature against its
//! trust, its own anti-rollback marks; `warden-fleetsim`). It measures, per bundle:
//!
//! - **converged**: per agent, the time from the publish to the agent's `installed` report
//!   (the agent's clock, this machine's), p50 / p99 / the last;
//! - **bytes sent per agent**: what the nats-server nodes sent to their clients during the
//!   round (`/connz` `out_bytes`, summed over every node and connection, before and after),
//!   over the agents: the blob, the document, the protocol, and the controller's small share
//!   (it receives the reports).
//!
//! The component's one check (compiled against its manifest) is done before the publish, in the
//! shared sandbox, and reported apart: real agents each compile once, in parallel, on their
//! own machines; a shared sandbox would serialise that one compile into every agent's time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use warden_controller::controller::internal_caller;
use warden_fleet_wire::UnixMillis;
use warden_fleetsim::{SimFleet, progress_until};

/// One bundle's distribution round.
pub struct Published {
    pub plugin: String,
    /// Agents it was published to.
    pub agents: usize,
    pub bundle_bytes: u64,
    pub check: Duration,
    pub latencies: Vec<Duration>,
    pub last: Duration,
    /// Bytes the servers sent to clients over the round, per agent.
    pub sent_per_agent: Option<f64>,
}

/// `plugins/<name>` copied to `scratch` at `version`, signed by `key`: the bundle's bytes.
pub fn signed_bundle(
    plugins: &Path,
    name: &str,
    version: &str,
    scratch: &Path,
    key: &warden_core::keys::SigningKey,
) -> anyhow::Result<Vec<u8>> {
    let src = plugins.join(name);
    let dir: PathBuf = scratch.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir)?;
    let manifest = std::fs::read_to_string(src.join("plugin.toml"))
        .with_context(|| format!("{name} is not built: run `cargo xtask build-plugins`"))?;
    let parsed = warden_core::Manifest::load(&src.join("plugin.toml"))?;
    std::fs::copy(src.join(&parsed.component), dir.join(&parsed.component))?;
    let bumped = manifest.replacen(
        &format!("version = \"{}\"", parsed.version),
        &format!("version = \"{version}\""),
        1,
    );
    std::fs::write(dir.join("plugin.toml"), bumped)?;
    let mut bundle = warden_bundle::Bundle::from_plugin_dir(&dir, 30)?;
    bundle.sign(key);
    Ok(bundle.to_bytes()?)
}

/// What every node sent to its clients so far.
fn sent_to_clients(fleet: &SimFleet) -> Option<u64> {
    let mut total = 0u64;
    for node in 0..fleet.nats.len() {
        let body = fleet.nats.monitor(node, "/connz?limit=100000").ok()?;
        let connz: serde_json::Value = serde_json::from_str(&body).ok()?;
        total += connz["connections"]
            .as_array()?
            .iter()
            .filter_map(|c| c["out_bytes"].as_u64())
            .sum::<u64>();
    }
    Some(total)
}

/// Publish `bundle` (plugin `plugin`) to the `n` agents `target` selects and wait until all
/// report it installed.
pub async fn round(
    fleet: &SimFleet,
    plugin: &str,
    bundle: &[u8],
    target: &str,
    n: usize,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Published> {
    let t = Instant::now();
    fleet.sandbox.check_bundle(bundle)?;
    let check = t.elapsed();
    let sent_before = sent_to_clients(fleet);
    let at = UnixMillis::now();
    let published = fleet
        .controller
        .controller
        .publish(&internal_caller(), bundle, target)
        .await?;
    if published.agents.len() != n {
        bail!("published to {} of {n} agents", published.agents.len());
    }
    let status = || {
        fleet
            .controller
            .controller
            .deploy_status(&internal_caller(), plugin)
    };
    let found = progress_until(&fleet.controller, deadline, |_| {
        status().is_ok_and(|s| s.installed() >= n)
    })
    .await;
    if let Err(p) = found {
        let s = status()?;
        bail!(
            "{} of {n} agents installed {plugin} before the deadline ({p:?})",
            s.installed()
        );
    }
    let sent_after = sent_to_clients(fleet);
    let latencies: Vec<Duration> = status()?
        .agents
        .iter()
        .filter_map(|a| a.reported_at)
        .map(|r| Duration::from_millis(u64::try_from(r.millis_since(at)).unwrap_or(0)))
        .collect();
    let last = latencies.iter().copied().max().unwrap_or_default();
    Ok(Published {
        plugin: plugin.to_string(),
        agents: n,
        bundle_bytes: bundle.len() as u64,
        check,
        latencies,
        last,
        sent_per_agent: sent_before
            .zip(sent_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / n as f64),
    })
}
