//! Writes the sample client report of `docs/samples/` (HTML, CSV, PDF) from a fixed, made-up
//! month of tenant "acme": `cargo run -p warden-report --example sample -- docs/samples`.
//! The incidents are generated from a fixed seed, so the files change only when the report
//! does.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    let report = warden_report::compute(
        "acme",
        NOVEMBER,
        NOVEMBER + DAYS * 24 * 60 * MINUTE,
        &events,
        &settings,
    )?
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
    ]);
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
