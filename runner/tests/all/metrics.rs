//! The agent's `/metrics` (docs/METRICS.md) as Prometheus meets it: a real agent with
//! `[metrics]` on, a runbook that succeeds, one whose step is refused a capability, a refused
//! install and a monitor checking every second; the endpoint is scraped over HTTP before and
//! after, and the counters must have moved by exactly what happened. The controller's
//! endpoint is in `fleet_metrics.rs`.

use crate::common::scrape::{self, value};
use crate::daemon::{Agent, trigger, watch_all};
use std::time::Duration;
use warden_agent::grpc::auth::Role;
use warden_agent::grpc::pb;

const HELLO: &str = r#"
name = "hello"
[[steps]]
id = "talk"
plugin = "calls"
action = "check"
config = { kind = "log", calls = 1 }
"#;

/// A check that writes a file: refused (`fs-write` during `check`), so the run fails.
const ACTING: &str = r#"
name = "acting"
[[steps]]
id = "write"
plugin = "hostile"
action = "check"
config = { attack = "write", path = "{scratch}/acted", contents = "acted" }
"#;

/// Where the agent serves its metrics, from its `metrics.started` audit record (the config
/// asks for port 0).
fn metrics_addr(agent: &Agent) -> String {
    agent
        .audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["event"] == "metrics.started")
        .and_then(|r| r["data"]["listen"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no metrics.started record:\n{}", agent.audit_log()))
}

/// Trigger `name` and watch it to its end: its run id and final status.
async fn run_to_end(agent: &Agent, name: &str) -> (String, String) {
    let mut client = agent.runbooks(Role::Operator).await;
    let started = trigger(&mut client, name, &[], false)
        .await
        .expect("trigger");
    let events = watch_all(&mut client, &started.run_id).await;
    let status = events.last().map(|e| e.status.clone()).unwrap_or_default();
    (started.run_id, status)
}

#[tokio::test]
async fn agent_metrics_count_runs_denials_refusals_and_checks() {
    let mut agent = Agent::start_full(
        "",
        &[("hello", HELLO)],
        r#"
[[monitor]]
name = "talking"
plugin = "calls"
config = { kind = "log", calls = 1 }
interval = "1s"

[metrics]
listen = "127.0.0.1:0"
"#,
        "",
    );
    let scratch = agent.root().join("scratch").display().to_string();
    std::fs::write(
        agent.root().join("runbooks/acting.toml"),
        ACTING.replace("{scratch}", &scratch),
    )
    .expect("runbook");
    let addr = metrics_addr(&agent);
    let before = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || scrape::scrape(&addr)
    })
    .await
    .expect("scrape");

    let (hello, status) = run_to_end(&agent, "hello").await;
    assert_eq!(status, "succeeded");
    let (acting, status) = run_to_end(&agent, "acting").await;
    assert_eq!(status, "failed");
    let mut admin = agent.plugins(Role::Admin).await;
    admin
        .install(pb::InstallPluginRequest {
            bundle: b"not a bundle".to_vec(),
        })
        .await
        .expect_err("garbage is refused");
    // The monitor checks every second: wait for a check after the runs.
    let checks_before = value(&before, "warden_agent_monitor_checks_total{status=\"ok\"}");
    let after = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            let now = scrape::scrape(&addr);
            if value(&now, "warden_agent_monitor_checks_total{status=\"ok\"}") > checks_before {
                scrape::assert_nothing_else_is_served(&addr);
                return now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no monitor check was counted in 10 s");
    })
    .await
    .expect("scrape");

    let moved = |series: &str| value(&after, series) - value(&before, series);
    // The monitor's checks are plugin runs, not runbook runs: only the two triggers count.
    assert_eq!(moved("warden_agent_runs_started_total"), 2.0);
    assert_eq!(
        moved("warden_agent_runs_finished_total{status=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        moved("warden_agent_runs_finished_total{status=\"failed\"}"),
        1.0
    );
    assert_eq!(moved("warden_agent_run_duration_seconds_count"), 2.0);
    assert!(moved("warden_agent_run_duration_seconds_sum") > 0.0);
    assert_eq!(
        value(
            &after,
            "warden_agent_run_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        value(&after, "warden_agent_run_duration_seconds_count")
    );
    assert_eq!(
        moved("warden_agent_capability_uses_total{capability=\"fs-write\",decision=\"denied\"}"),
        1.0
    );
    assert_eq!(moved("warden_agent_plugin_installs_refused_total"), 1.0);
    assert!(moved("warden_agent_monitor_checks_total{status=\"ok\"}") >= 1.0);
    assert_eq!(value(&after, "warden_agent_runs_queued"), 0.0);
    assert_eq!(value(&after, "warden_agent_incidents_open"), 0.0);
    // No [fleet]: no link, and no outbox series.
    assert_eq!(value(&after, "warden_agent_fleet_connected"), 0.0);
    assert!(
        !after
            .keys()
            .any(|k| k.starts_with("warden_agent_fleet_outbox")),
        "{after:?}"
    );
    // Bounded labels only: no run id, plugin, monitor or host name in any series.
    let host = warden_agent::daemon::host_name();
    for series in after.keys() {
        for unbounded in [&hello, &acting, "calls", "hostile", "talking", &host] {
            assert!(!series.contains(unbounded), "{unbounded} in {series}");
        }
    }
    assert!(agent.terminate().0.is_ok());
}
