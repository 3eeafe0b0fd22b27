//! The fleet table's failing checks by name over plain HTTP: each agent's heartbeat names the
//! monitors with an open incident; the "Failing checks" column shows them, inert, each a link
//! to `check:<name>`, which the store selects on; an agent that counts incidents without naming
//! them (one older than the names) shows the count it did not name. And the agent page's view
//! of the same lifecycle: drift, the checks' compliance claims, incidents' PSA tickets.

use hyper::StatusCode;

use crate::patches::{cell, holds, hosts, row_of, set};
use crate::support::http::Client;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn failing_checks_are_named_in_the_table_and_check_filters_select_on_the_server() {
    let h = Harness::start().await;
    let mut unnamed = SeedAgent::new("globex", "old-agent");
    unnamed.open_incidents = 2;
    let fleet = vec![
        SeedAgent::new("acme", "db-full").failing(&["disk-space", "backup"]),
        SeedAgent::new("acme", "web-down").failing(&["http-200"]),
        SeedAgent::new("globex", "file-full").failing(&["disk-space"]),
        SeedAgent::new("globex", "hostile").failing(&["<script>window.__pwned=1</script>"]),
        SeedAgent::new("globex", "healthy"),
        unnamed,
    ];
    h.heartbeats(&fleet);
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;

    let all = c.get("/").await;
    assert_eq!(all.status, StatusCode::OK);
    holds(&all.body, ">Failing checks<");
    let failing = |host: &str| cell(&row_of(&all.body, host), "failing");
    assert_eq!(failing("db-full").trim(), "disk-space backup");
    assert_eq!(failing("web-down").trim(), "http-200");
    assert_eq!(failing("healthy").trim(), "");
    assert_eq!(failing("old-agent").trim(), "+2", "counted, not named");
    // A name is text, never markup.
    assert!(!all.body.contains("<script>window.__pwned"), "{}", all.body);
    holds(&all.body, "&lt;script&gt;window.__pwned=1&lt;/script&gt;");
    // Each name links to the fleet filtered on it.
    holds(
        &row_of(&all.body, "db-full"),
        "href=\"/?q=check%3Adisk-space\"",
    );

    for (filter, expected) in [
        ("check%3Adisk-space", set(&["db-full", "file-full"])),
        ("check%3Adisk-space+check%3Abackup", set(&["db-full"])),
        ("check%3Adisk-space+tenant%3Aglobex", set(&["file-full"])),
        ("check%3Anothing-fails-here", set(&[])),
    ] {
        let page = c.get(&format!("/?q={filter}")).await;
        assert_eq!(page.status, StatusCode::OK, "{filter}");
        assert_eq!(hosts(&page.body), expected, "{filter}");
    }
    // `check:` alone is refused with what to write.
    holds(&c.get("/?q=check%3A").await.body, "check:disk-space");

    // The agent's page names them too.
    let detail = c.get(&format!("/agents/{}", fleet[0].id)).await.body;
    holds(&detail, "id=\"failing\"");
    holds(&detail, "disk-space");
}

/// The agent page's lifecycle sections: the installed checks' HIPAA / CMMC claims, the drift
/// monitor's latest state with what changed, and each incident's check and PSA ticket.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_page_shows_drift_evidence_and_tickets_as_the_agent_reported_them() {
    use warden_fleet_wire::{AgentEvent, EventKind, EventTicket, PluginInfo, UnixMillis};
    let h = Harness::start().await;
    let mut a = SeedAgent::new("acme", "db-1").failing(&["baseline"]);
    let mut luks = PluginInfo::new("disk-encryption", "0.1.0", "a".repeat(64));
    luks.hipaa = vec!["164.312(a)(2)(iv)".into()];
    luks.cmmc = vec!["SC.L2-3.13.16".into()];
    a.plugins = vec![luks];
    h.heartbeats(std::slice::from_ref(&a));
    let at = |min: i64| UnixMillis::now().plus_millis(-60_000 * min);
    let event = |seq: u64, min: i64, kind: EventKind, subject: &str, check: &str, detail: &str| {
        let mut e = AgentEvent::new(a.tenant.clone(), a.id.clone(), seq, at(min), kind, subject);
        e.check = check.into();
        e.detail = detail.into();
        e
    };
    // The drift monitor opened, resolved (a change accepted), then opened again: it is off its
    // baseline now, for the second change.
    for e in [
        event(
            1,
            30,
            EventKind::IncidentOpened,
            "baseline",
            "builtin:drift",
            "added port tcp/8080",
        ),
        event(
            2,
            20,
            EventKind::IncidentResolved,
            "baseline",
            "builtin:drift",
            "accepted",
        ),
        event(
            3,
            10,
            EventKind::IncidentOpened,
            "baseline",
            "builtin:drift",
            "added user mallory",
        ),
    ] {
        h.event(&e);
    }
    let mut escalation = event(
        4,
        5,
        EventKind::Escalation,
        "disk-space",
        "disk-usage",
        "remediation failed",
    );
    escalation.tickets = vec![EventTicket {
        incident: "inc-7".into(),
        system: "ticket-connectwise".into(),
        id: "4711".into(),
        status: "open".into(),
        resolve_by: Some("2026-12-03T18:00:00Z".into()),
    }];
    h.event(&escalation);

    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let page = c.get(&format!("/agents/{}", a.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    let section = |id: &str| {
        page.body
            .split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</table>").next())
            .unwrap_or_else(|| panic!("no #{id} in {}", page.body))
            .to_string()
    };
    let drift = section("drift");
    assert_eq!(
        drift.matches("<tr>").count(),
        2,
        "a header and one monitor: {drift}"
    );
    assert!(
        drift.contains("drifted") && drift.contains("added user mallory"),
        "{drift}"
    );
    assert!(
        !drift.contains("tcp/8080"),
        "the latest state only: {drift}"
    );
    let plugins = section("plugins");
    assert!(
        plugins.contains("HIPAA 164.312(a)(2)(iv)") && plugins.contains("CMMC SC.L2-3.13.16"),
        "{plugins}"
    );
    let events = section("events");
    assert!(
        events.contains("ticket-connectwise #4711 open, resolve by 2026-12-03T18:00:00Z"),
        "{events}"
    );
    assert!(events.contains("builtin:drift"), "{events}");
}
