//! The controller's `/metrics` (docs/METRICS.md), every part real: nats-server in operator
//! mode, `warden controller serve` and a `warden serve` agent, both with `[metrics]` on. An
//! agent enrolls and a run is dispatched to it; both endpoints are scraped over HTTP before and
//! after, and the counters must have moved by exactly that: one enrollment, one dispatch, one
//! first send, one stored result; the agent online in its tenant; both NATS links up.

use crate::common::scrape::{self, value};
use crate::fleet_e2e::{Fleet, wait_for};
use std::path::Path;

const METRICS: &str = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// Where a component serves its metrics: its `metrics.started` audit record (port 0 asked).
fn metrics_addr(audit_log: &Path) -> String {
    wait_for("a metrics.started record", || {
        std::fs::read_to_string(audit_log)
            .ok()?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["event"] == "metrics.started")
            .and_then(|r| r["data"]["listen"].as_str().map(str::to_string))
    })
}

#[test]
fn controller_metrics_count_enrollments_dispatches_results_and_presence() {
    let fleet = Fleet::start_with(METRICS);
    let controller = metrics_addr(&fleet.data_dir().join("audit/audit.log"));
    let before = scrape::scrape(&controller);
    assert_eq!(
        value(&before, "warden_controller_nats_connected"),
        1.0,
        "{before:?}"
    );
    assert!(
        !before
            .keys()
            .any(|k| k.starts_with("warden_controller_agents{")),
        "no agent yet: {before:?}"
    );

    let acme = fleet.agent_with("acme", "acme-db-1", "role = \"db\"", "1.5", METRICS);
    fleet.wait_presence(&acme, true);
    let run = fleet.fleet(&["run", "fleet-hello", "--target", "tenant=acme"]);
    assert_eq!(run["run"]["agents"][0]["state"], "succeeded", "{run}");
    let run_id = run["run"]["run_id"].as_str().expect("run id").to_string();

    let stored = "warden_controller_results_total{status=\"succeeded\"}";
    let after = wait_for("the result counted", || {
        let now = scrape::scrape(&controller);
        (value(&now, stored) - value(&before, stored) == 1.0).then_some(now)
    });
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        moved("warden_controller_enrollments_total{outcome=\"enrolled\"}"),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "warden_controller_enrollments_total{outcome=\"refused\"}"
        ),
        0.0
    );
    assert_eq!(moved("warden_controller_runs_dispatched_total"), 1.0);
    assert_eq!(
        moved("warden_controller_commands_sent_total{kind=\"first\"}"),
        1.0
    );
    assert!(moved("warden_controller_results_ingested_total") >= 1.0);
    assert_eq!(
        value(
            &after,
            "warden_controller_agents{tenant=\"acme\",presence=\"online\"}"
        ),
        1.0,
        "{after:?}"
    );
    assert!(
        !after.keys().any(|k| k.contains("tenant=\"globex\"")),
        "globex has no agent: {after:?}"
    );
    assert_eq!(value(&after, "warden_controller_nats_connected"), 1.0);
    assert_eq!(value(&after, "warden_controller_approvals_pending"), 0.0);
    for series in after.keys() {
        assert!(
            !series.contains(&acme.id)
                && !series.contains(&run_id)
                && !series.contains("acme-db-1"),
            "an unbounded label in {series}"
        );
    }
    scrape::assert_nothing_else_is_served(&controller);

    // The agent's side of the same run: linked, ran it once, its outbox drained.
    let agent = metrics_addr(&acme.agent.root().join("data/audit/audit.log"));
    let seen = wait_for("the agent's outbox to drain", || {
        let now = scrape::scrape(&agent);
        (value(&now, "warden_agent_fleet_outbox{kind=\"result\"}") == 0.0
            && now.contains_key("warden_agent_fleet_outbox{kind=\"result\"}"))
        .then_some(now)
    });
    assert_eq!(value(&seen, "warden_agent_fleet_connected"), 1.0);
    assert_eq!(value(&seen, "warden_agent_runs_started_total"), 1.0);
    assert_eq!(
        value(
            &seen,
            "warden_agent_runs_finished_total{status=\"succeeded\"}"
        ),
        1.0
    );
}
