//! Writes the sample client report of `docs/samples/` (HTML, CSV, PDF) from a fixed, made-up
//! month of tenant "acme", as the controller's `warden fleet report` makes it:
//! `cargo run -p warden-report --example sample -- docs/samples`. The incidents are generated
//! from a fixed seed, so the files change only when the report does. Beside them: each host's
//! latest patch scan (as its heartbeat reported it), the drift monitor's incidents, the
//! first-party compliance checks installed per host (with their `[compliance]` claims) and the
//! incidents of the monitors running them as their outcomes, two PSA tickets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use warden_report::compliance::{CheckClaim, CheckOutcome, EvidenceKind, Outcome};
use warden_report::posture::{PatchScan, PatchState};
use warden_report::{CsfCategory, Event, EventKind, Priority, ServiceRule, TenantSettings};

const MINUTE: i64 = 60_000;
/// 2026-11-01T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200_000;
const DAYS: i64 = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "docs/samples".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let settings = TenantSettings {
        rules: vec![
            rule("backup*", Priority::P1, CsfCategory::RcRp),
            rule("http", Priority::P1, CsfCategory::DeCm),
            rule("disk", Priority::P2, CsfCategory::RsMi),
            rule("patches", Priority::P3, CsfCategory::PrPs),
            rule("baseline-drift", Priority::P2, CsfCategory::PrPs),
            rule("audit-daemon", Priority::P2, CsfCategory::Gv),
        ],
        targets: BTreeMap::from([
            (Priority::P1, 60 * MINUTE as u64),
            (Priority::P2, 240 * MINUTE as u64),
            (Priority::P3, 3 * 24 * 60 * MINUTE as u64),
        ]),
    };
    let mut events = Vec::new();
    let mut seed: u64 = 0x5eed_2026_1101;
    let mut next = move |n: i64| {
        // xorshift64: fixed and dependency-free.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as i64
    };
    let hosts = [
        "acme-dc-1",
        "acme-db-1",
        "acme-db-2",
        "acme-web-1",
        "acme-web-2",
        "acme-fs-1",
        "acme-ws-014",
        "acme-ws-022",
    ];
    let monitors = [
        ("disk", 3, 90),
        ("http", 2, 45),
        ("backup-nightly", 1, 120),
        ("patches", 1, 2 * 24 * 60),
        ("baseline-drift", 1, 200),
        ("audit-daemon", 1, 30),
    ];
    for host in hosts {
        for (monitor, most, longest) in monitors {
            for _ in 0..next(most + 1) {
                let opened = NOVEMBER + next(DAYS * 24 * 60) * MINUTE;
                let minutes = 5 + next(longest);
                events.push(event(opened, host, monitor, EventKind::Opened));
                events.push(event(
                    opened + minutes * MINUTE,
                    host,
                    monitor,
                    EventKind::Resolved,
                ));
            }
        }
    }
    // One still open at the month's end.
    events.push(event(
        NOVEMBER + (DAYS * 24 * 60 - 90) * MINUTE,
        "acme-fs-1",
        "backup-nightly",
        EventKind::Opened,
    ));
    // One workstation's disk is not encrypted since Nov 27: its check's monitor still fails.
    events.push(event(
        NOVEMBER + 26 * 24 * 60 * MINUTE,
        "acme-ws-022",
        "disk-encryption",
        EventKind::Opened,
    ));
    let end = NOVEMBER + DAYS * 24 * 60 * MINUTE;
    // The latest scans, a day before the report: two hosts with security updates pending, one
    // waiting for its reboot, one that never reported a scan.
    let patches: Vec<PatchState> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| PatchState {
            agent: host.to_string(),
            scan: (*host != "acme-ws-022").then(|| PatchScan {
                scanned_ms: end - (1 + i as i64) * 60 * MINUTE,
                pending: [0, 3, 0, 12, 0, 1, 4, 0][i],
                security: [0, 2, 0, 5, 0, 0, 0, 0][i],
                reboot_required: *host == "acme-fs-1",
            }),
        })
        .collect();
    let servers: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|h| !h.contains("-ws-"))
        .collect();
    let workstations: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|h| h.contains("-ws-"))
        .collect();
    let claims = vec![
        claim("audit-daemon", &["164.312(b)"], &["AU.L2-3.3.1"], &servers),
        claim(
            "auto-logoff",
            &["164.312(a)(2)(iii)"],
            &["AC.L2-3.1.11"],
            &servers,
        ),
        claim(
            "disk-encryption",
            &["164.312(a)(2)(iv)"],
            &["SC.L2-3.13.16"],
            &[
                "acme-db-1",
                "acme-db-2",
                "acme-fs-1",
                "acme-ws-014",
                "acme-ws-022",
            ],
        ),
        claim(
            "host-firewall",
            &["164.312(e)(1)"],
            &["SC.L1-3.13.1"],
            &hosts,
        ),
        claim(
            "screen-lock",
            &["164.312(a)(2)(iii)"],
            &["AC.L2-3.1.10"],
            &workstations,
        ),
    ];
    // The controller's outcomes: the incidents of the monitors running the checks (a monitor
    // named after its check here).
    let outcomes: Vec<CheckOutcome> = events
        .iter()
        .filter(|e| claims.iter().any(|c| c.check == e.monitor))
        .map(|e| CheckOutcome {
            at_ms: e.at_ms,
            agent: e.agent.clone(),
            check: e.monitor.clone(),
            outcome: match e.kind {
                EventKind::Opened => Outcome::Fail,
                EventKind::Resolved => Outcome::Pass,
            },
        })
        .collect();
    let drift_events: Vec<Event> = events
        .iter()
        .filter(|e| e.monitor == "baseline-drift")
        .cloned()
        .collect();
    let report = warden_report::compute("acme", NOVEMBER, end, &events, &settings)?
        .with_tickets(vec![
            ticket(
                "acme-fs-1",
                "backup-nightly",
                "CW-20931",
                "open",
                Some("2026-12-01T01:30:00Z"),
            ),
            ticket(
                "acme-web-1",
                "http",
                "CW-20544",
                "closed",
                Some("2026-11-14T11:00:00Z"),
            ),
        ])
        .with_patches(warden_report::posture::patch_compliance(
            &patches,
            NOVEMBER,
            end + 2 * 60 * MINUTE,
            "the latest patch scan each agent reported in its heartbeat",
        ))
        .with_drift(warden_report::posture::drift(
            &drift_events,
            NOVEMBER,
            end,
            None,
        ))
        .with_compliance(warden_report::compliance::coverage(
            &claims,
            &outcomes,
            NOVEMBER,
            end,
            EvidenceKind::Incidents,
        ));
    std::fs::write(
        dir.join("client-report.html"),
        warden_report::html::render(&report),
    )?;
    std::fs::write(
        dir.join("client-report.csv"),
        warden_report::csv::render(&report),
    )?;
    std::fs::write(
        dir.join("client-report.pdf"),
        warden_report::pdf::render(&report),
    )?;
    println!(
        "wrote {}/client-report.{{html,csv,pdf}}: {} services, {} incidents",
        dir.display(),
        report.services.len(),
        report
            .services
            .iter()
            .map(|s| s.incidents.len())
            .sum::<usize>()
    );
    Ok(())
}

fn claim(check: &str, hipaa: &[&str], cmmc: &[&str], agents: &[&str]) -> CheckClaim {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    CheckClaim {
        check: check.into(),
        hipaa: set(hipaa),
        cmmc: set(cmmc),
        agents: set(agents),
    }
}

fn rule(monitor: &str, priority: Priority, category: CsfCategory) -> ServiceRule {
    ServiceRule {
        monitor: monitor.into(),
        priority,
        category,
    }
}

fn ticket(
    agent: &str,
    monitor: &str,
    id: &str,
    status: &str,
    resolve_by: Option<&str>,
) -> warden_report::Ticket {
    warden_report::Ticket {
        agent: agent.into(),
        monitor: monitor.into(),
        system: "ticket-connectwise".into(),
        id: id.into(),
        status: status.into(),
        resolve_by: resolve_by.map(Into::into),
    }
}

fn event(at_ms: i64, agent: &str, monitor: &str, kind: EventKind) -> Event {
    Event {
        at_ms,
        agent: agent.into(),
        monitor: monitor.into(),
        kind,
    }
}
