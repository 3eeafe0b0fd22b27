//! Client reports on a schedule (`[report-delivery]`) against a real nats-server and SQLite
//! store: on the delivery day the month before is written for every tenant, each tenant's file
//! holding its own agents' incidents only; not again that month, not again after a restart;
//! the next month's on its day. The clock is the controller's manual one.

mod support;

use support::*;
use warden_controller::Clock as _;
use warden_controller::report::ReportFormat;
use warden_controller::report::delivery::ReportDelivery;
use warden_fleet_identity::AgentKey;
use warden_fleet_wire::{AgentEvent, EventKind, Heartbeat, UnixMillis, WIRE_VERSION};

/// 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200_000;
const DECEMBER: i64 = NOVEMBER + 30 * 86_400_000;

fn agent_with_an_outage(fleet: &Fleet, tenant_name: &str, host: &str, monitor: &str) {
    let controller = &fleet.running.controller;
    let hb = Heartbeat {
        v: WIRE_VERSION,
        agent: AgentKey::generate().id(),
        tenant: tenant(tenant_name),
        agent_version: "0.1.0".into(),
        hostname: host.into(),
        os: "linux".into(),
        tags: Default::default(),
        plugins: Vec::new(),
        open_incidents: 0,
        failing: Vec::new(),
        patches: None,
        windows: None,
        sent_at: UnixMillis::now(),
        seq: 1,
        interval_ms: 15_000,
    };
    let payload = warden_fleet_wire::encode(&hb).expect("encodes");
    controller
        .take_heartbeats(&[(&hb.nats_subject(), &payload)])
        .expect("heartbeat");
    for (seq, kind, at) in [
        (1, EventKind::IncidentOpened, NOVEMBER + 86_400_000),
        (
            2,
            EventKind::IncidentResolved,
            NOVEMBER + 86_400_000 + 600_000,
        ),
    ] {
        let e = AgentEvent::new(
            hb.tenant.clone(),
            hb.agent.clone(),
            seq,
            UnixMillis(at),
            kind,
            monitor,
        );
        let payload = warden_fleet_wire::encode(&e).expect("encodes");
        controller
            .take_event(&e.nats_subject(), &payload)
            .expect("event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_last_month_is_written_on_its_day_once_and_survives_a_restart() {
    let mut fleet = Fleet::start_with(|c| {
        c.report_delivery = Some(ReportDelivery {
            dir: c.data_dir.join("reports"),
            formats: vec![ReportFormat::Pdf, ReportFormat::Csv],
            day: 1,
            tenants: c.tenants.clone(),
        });
    })
    .await;
    agent_with_an_outage(&fleet, "acme", "db-1", "acme-disk");
    agent_with_an_outage(&fleet, "globex", "gx-1", "globex-disk");
    let dir = fleet.config.data_dir.join("reports");

    // November 30th, late: November is not over; October is the one due (empty).
    let clock = fleet.clock.clone();
    let to = move |at: i64| at - clock.now().as_millis();
    fleet.clock.advance_ms(to(DECEMBER - 3_600_000));
    let october = fleet
        .running
        .controller
        .deliver_reports()
        .expect("delivery");
    assert_eq!(october.len(), 4, "two tenants, two formats: {october:?}");
    assert!(dir.join("acme/report-acme-2026-10-01.pdf").is_file());

    // December 1st: November's, once.
    fleet.clock.advance_ms(to(DECEMBER + 60_000));
    let written = fleet
        .running
        .controller
        .deliver_reports()
        .expect("delivery");
    let mut names: Vec<String> = written
        .iter()
        .map(|p| {
            p.strip_prefix(&dir)
                .expect("under the dir")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "acme/report-acme-2026-11-01.csv",
            "acme/report-acme-2026-11-01.pdf",
            "globex/report-globex-2026-11-01.csv",
            "globex/report-globex-2026-11-01.pdf",
        ]
    );
    let acme = std::fs::read_to_string(dir.join("acme/report-acme-2026-11-01.csv")).expect("csv");
    assert!(
        acme.contains(",db-1,acme-disk,") && !acme.contains("globex"),
        "{acme}"
    );
    let pdf = std::fs::read(dir.join("globex/report-globex-2026-11-01.pdf")).expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(
        std::fs::read_dir(dir.join("acme")).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no temporary file left"
    );
    assert!(
        fleet
            .running
            .controller
            .deliver_reports()
            .expect("again")
            .is_empty(),
        "delivered once"
    );

    fleet.restart_controller(async {}).await;
    fleet.clock.advance_ms(86_400_000);
    assert!(
        fleet
            .running
            .controller
            .deliver_reports()
            .expect("after a restart")
            .is_empty(),
        "the delivered month is in the store"
    );
    // January 1st: December's.
    fleet.clock.advance_ms(to(DECEMBER + 31 * 86_400_000));
    let january = fleet
        .running
        .controller
        .deliver_reports()
        .expect("delivery");
    assert_eq!(january.len(), 4);
    assert!(dir.join("acme/report-acme-2026-12-01.pdf").is_file());

    let audit =
        std::fs::read_to_string(fleet.config.data_dir.join("audit/audit.log")).expect("audit");
    assert_eq!(
        audit.matches("\"fleet.report-delivered\"").count(),
        3,
        "October, November, December"
    );
}
