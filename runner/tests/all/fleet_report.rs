//! `warden fleet report` (issue 18): a tenant's client report from the controller's store,
//! over the NOC's gRPC API, as PDF (read back with poppler's `pdftotext` and rendered with
//! `pdftoppm`: `cargo xtask test` installs poppler-utils) and CSV. The controller runs in this
//! process beside a real nats-server in operator mode; the agents' heartbeats (patch scans,
//! installed checks with their HIPAA / CMMC claims) and events (incidents with their monitor's
//! check, a PSA ticket) enter through the controller's intake, as they do from NATS. A
//! tenant-scoped viewer gets its own tenant's report and is refused another's.

use std::process::{Command as Process, Output};

use crate::common::controller::{ControllerUnderTest, text, warden_fleet as warden};
use warden_access::token_hash;
use warden_controller::controller::internal_caller;
use warden_fleet_identity::{AgentId, AgentKey, EnrollmentRequest, TenantId};
use warden_fleet_wire::{
    AgentEvent, EventKind, EventTicket, Heartbeat, PatchSummary, PluginInfo, UnixMillis,
};

const ACME_VIEWER: &str = "tok-report-acme-viewer-0123456789";
const NOC: &str = "tok-report-noc-viewer-0123456789";
/// 2026-11-01T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200_000;
const MINUTE: i64 = 60_000;

/// A poppler tool's output; a clear failure when poppler-utils is not installed.
fn poppler(tool: &str, args: &[&str]) -> Output {
    Process::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install poppler-utils: `cargo xtask test` does)"))
}

/// Share of the pixels of a binary PGM (`P5`, 8 bits) darker than mid-grey.
fn dark_share(pgm: &[u8]) -> f64 {
    // Header: P5, width, height, maxval, each followed by whitespace.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5", "a binary greyscale image");
    let pixels = &pgm[at + 1..];
    let (w, h): (usize, usize) = (
        fields[1].parse().expect("width"),
        fields[2].parse().expect("height"),
    );
    assert_eq!(pixels.len(), w * h, "{w}x{h}");
    pixels.iter().filter(|&&p| p < 128).count() as f64 / pixels.len() as f64
}

fn enroll(controller: &warden_controller::Controller, tenant: &TenantId, name: &str) -> AgentId {
    let token = controller
        .issue_enrollment_token(&internal_caller(), tenant, &[], None)
        .expect("token");
    let key = AgentKey::generate();
    let challenge = controller
        .begin_enrollment(&EnrollmentRequest {
            token: token.token.clone(),
            tenant: tenant.to_string(),
            agent: key.id().to_string(),
            name: name.into(),
        })
        .expect("begin");
    controller
        .complete_enrollment(&key.answer(&challenge).expect("answer"))
        .expect("enrolled");
    key.id()
}

/// An outage of `monitor` on `agent`: opened at `at`, resolved `minutes` later.
fn outage(
    controller: &warden_controller::Controller,
    tenant: &TenantId,
    agent: &AgentId,
    seq: u64,
    monitor: &str,
    at: i64,
    minutes: i64,
) {
    checked_outage(
        controller,
        tenant,
        agent,
        seq,
        (monitor, ""),
        at,
        Some(minutes),
    );
}

fn take(controller: &warden_controller::Controller, event: &AgentEvent) {
    let payload = warden_fleet_wire::encode(event).expect("encode");
    controller
        .take_event(&event.nats_subject(), &payload)
        .expect("event taken");
}

/// An outage of a monitor running `check` (`(monitor, check)`); `None`: still open.
fn checked_outage(
    controller: &warden_controller::Controller,
    tenant: &TenantId,
    agent: &AgentId,
    seq: u64,
    (monitor, check): (&str, &str),
    at: i64,
    minutes: Option<i64>,
) {
    let mut events = vec![(EventKind::IncidentOpened, at)];
    events.extend(minutes.map(|m| (EventKind::IncidentResolved, at + m * MINUTE)));
    for (i, (kind, when)) in events.into_iter().enumerate() {
        let mut event = AgentEvent::new(
            tenant.clone(),
            agent.clone(),
            seq + i as u64,
            UnixMillis(when),
            kind,
            monitor,
        );
        event.check = check.into();
        take(controller, &event);
    }
}

/// A heartbeat of `agent` with its latest patch scan and installed plugins.
fn heartbeat(
    controller: &warden_controller::Controller,
    tenant: &TenantId,
    agent: &AgentId,
    host: &str,
    patches: PatchSummary,
    plugins: Vec<PluginInfo>,
) {
    let mut hb = Heartbeat::new(tenant.clone(), agent.clone(), UnixMillis::now(), 1, 30_000);
    hb.hostname = host.into();
    hb.os = "linux".into();
    hb.patches = Some(patches);
    hb.plugins = plugins;
    let payload = warden_fleet_wire::encode(&hb).expect("encode");
    controller
        .take_heartbeat(&hb.nats_subject(), &payload)
        .expect("heartbeat taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_month_report_as_pdf_and_csv_and_no_other_tenants_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let acme = TenantId::new("acme").expect("tenant");
    let globex = TenantId::new("globex").expect("tenant");
    let toml = format!(
        "data-dir = \"controller\"\ntenants = [\"acme\", \"globex\"]\n\
         [reports.acme.targets]\nP1 = 60\n\
         [[reports.acme.service]]\nmonitor = \"backup*\"\npriority = \"P1\"\ncsf = \"RC.RP\"\n\
         [[tokens]]\nname = \"acme-it\"\nrole = \"viewer\"\ntenant = \"acme\"\nsha256 = {:?}\n\
         [[tokens]]\nname = \"noc\"\nrole = \"viewer\"\nsha256 = {:?}\n",
        token_hash(ACME_VIEWER),
        token_hash(NOC)
    );
    let cut = ControllerUnderTest::start(dir.path(), &toml).await;
    let controller = cut.running.controller.clone();
    let db = enroll(&controller, &acme, "db-1");
    let web = enroll(&controller, &acme, "web-1");
    let gx = enroll(&controller, &globex, "gx-1");
    // 72 min: over acme's P1 target of 60.
    outage(
        &controller,
        &acme,
        &db,
        1,
        "backup-nightly",
        NOVEMBER + 2 * 86_400_000,
        72,
    );
    outage(
        &controller,
        &acme,
        &web,
        1,
        "http",
        NOVEMBER + 9 * 86_400_000,
        15,
    );
    // December's is outside the period; globex's is another tenant's.
    outage(
        &controller,
        &acme,
        &web,
        3,
        "http",
        NOVEMBER + 31 * 86_400_000,
        15,
    );
    outage(
        &controller,
        &globex,
        &gx,
        1,
        "globex-secret-monitor",
        NOVEMBER + 86_400_000,
        30,
    );
    // db-1: 2 security updates pending, and the disk-encryption check installed, whose
    // monitor failed on Nov 20 and still fails; a drift on Nov 5, resolved after 20 min; the
    // backup incident's PSA ticket. web-1: patched, no reboot pending.
    let scanned = UnixMillis(NOVEMBER + 29 * 86_400_000);
    let mut disk = PluginInfo::new("disk-encryption", "0.1.0", "d".repeat(64));
    disk.hipaa = vec!["164.312(a)(2)(iv)".into()];
    disk.cmmc = vec!["SC.L2-3.13.16".into()];
    let scan = |security, reboot_required| PatchSummary {
        pending: security + 3,
        security,
        reboot_required,
        scanned_at: scanned,
    };
    heartbeat(&controller, &acme, &db, "db-1", scan(2, false), vec![disk]);
    heartbeat(&controller, &acme, &web, "web-1", scan(0, false), vec![]);
    checked_outage(
        &controller,
        &acme,
        &db,
        10,
        ("disk-crypt", "disk-encryption"),
        NOVEMBER + 19 * 86_400_000,
        None,
    );
    checked_outage(
        &controller,
        &acme,
        &db,
        20,
        ("config-drift", "builtin:drift"),
        NOVEMBER + 4 * 86_400_000,
        Some(20),
    );
    let mut ticket = AgentEvent::new(
        acme.clone(),
        db.clone(),
        30,
        UnixMillis(NOVEMBER + 2 * 86_400_000 + 10 * MINUTE),
        EventKind::Escalation,
        "backup-nightly",
    );
    ticket.tickets.push(EventTicket {
        incident: "backup-nightly-1".into(),
        system: "ticket-connectwise".into(),
        id: "CW-4711".into(),
        status: "open".into(),
        resolve_by: Some("2026-11-03T10:00:00Z".into()),
    });
    take(&controller, &ticket);

    let addr = cut.addr.clone();

    let noc = dir.path().join("noc");
    std::fs::create_dir_all(&noc).expect("noc dir");
    tokio::task::block_in_place(|| {
        let args = [
            "report", "--tenant", "acme", "--month", "2026-11", "--format", "pdf",
        ];
        let out = warden(&noc, &addr, ACME_VIEWER, &args);
        let (stdout, stderr) = text(&out);
        eprintln!("$ warden fleet {}\n{stdout}{stderr}", args.join(" "));
        assert!(out.status.success(), "{stderr}");
        assert!(
            stdout.starts_with("wrote report-acme-2026-11-01.pdf: pdf of acme, 2026-11-01 to 2026-11-30 (UTC), 4 services, 4 incidents"),
            "{stdout}"
        );
        let pdf = noc.join("report-acme-2026-11-01.pdf");
        let pdf = pdf.to_str().expect("utf-8 path");

        let read = poppler("pdftotext", &["-layout", pdf, "-"]);
        assert!(read.status.success(), "pdftotext reads it");
        let page = String::from_utf8_lossy(&read.stdout);
        eprintln!("pdftotext:\n{page}");
        for expected in [
            "Service report: acme",
            "Period 2026-11-01 – 2026-11-30 (UTC)",
            "Recover (RC.RP)",
            "Detect (DE.CM)",
            "db-1 / backup-nightly",
            // 72 of 43,200 minutes down.
            "99.833 %",
            "1 h 12 min",
            "web-1",
            "page 1 of ",
            // The sections the controller's report lacked before issue 18's second half.
            "Respond (RS.MI)",
            "PSA tickets",
            "CW-4711",
            "ticket-connectwise",
            "Patch compliance",
            "the latest patch scan each agent",
            "Inventory",
            "2 agent(s) in the inventory",
            "Baseline drift",
            "1 drift incident(s) detected in the period on 1 monitor(s); 0 still open at its end.",
            "Govern (GV)",
            "Compliance coverage",
            "HIPAA 164.312 safeguards: 1 of 12 covered by a check",
            "CMMC practices: 1 of 21 covered by a check",
            "not covered",
        ] {
            assert!(page.contains(expected), "{expected:?} in\n{page}");
        }
        // Patch shares: web-1 of the two is compliant (db-1 has security updates pending).
        let row = |start: &str| -> Vec<String> {
            page.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("a {start:?} row in\n{page}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            row("Compliant (both)")[2..],
            ["1", "of", "2", "50.00", "%"],
            "one of two agents"
        );
        assert_eq!(
            row("No reboot pending")[3..],
            ["2", "of", "2", "100.00", "%"]
        );
        // The encryption safeguard: one failure (the open incident), failing now, on db-1.
        let encryption = row("164.312(a)(2)(iv)");
        assert!(
            encryption.contains(&"disk-encryption".to_string()),
            "{encryption:?}"
        );
        assert_eq!(
            encryption[encryption.len() - 6..],
            ["0", "1", "0", "fail", "2026-11-20", "1"]
        );
        let audit = row("164.312(b)");
        assert!(audit.join(" ").contains("not covered"), "{audit:?}");
        // P1: one incident, breached (0 % met).
        let p1 = page
            .lines()
            .find(|l| l.trim_start().starts_with("P1"))
            .expect("a P1 row");
        let p1: Vec<&str> = p1.split_whitespace().collect();
        assert_eq!(&p1[..6], ["P1", "1", "h", "00", "min", "1"], "{p1:?}");
        assert_eq!(p1[6], "1", "breached: {p1:?}");
        assert!(!page.contains("globex"), "another tenant's data: {page}");
        assert_eq!(
            page.matches("web-1").count(),
            2,
            "December's outage left out (chart + row)"
        );

        let image = dir.path().join("page");
        let render = poppler(
            "pdftoppm",
            &[
                "-gray",
                "-r",
                "40",
                "-f",
                "1",
                "-l",
                "1",
                pdf,
                image.to_str().expect("utf-8"),
            ],
        );
        assert!(render.status.success(), "pdftoppm renders it");
        let pgm = std::fs::read(dir.path().join("page-1.pgm")).expect("page 1 image");
        let dark = dark_share(&pgm);
        // Text and bars cover some of the page, far from all of it.
        assert!((0.005..0.5).contains(&dark), "dark share {dark}");

        let csv = warden(
            &noc,
            &addr,
            ACME_VIEWER,
            &[
                "report", "--tenant", "acme", "--month", "2026-11", "--format", "csv", "-o", "-",
            ],
        );
        let (stdout, stderr) = text(&csv);
        assert!(csv.status.success(), "{stderr}");
        let rows: Vec<&str> = stdout.lines().collect();
        assert!(
            rows[0].starts_with("tenant,period_start,period_end,csf_function"),
            "{stdout}"
        );
        // By the `record` column, under the header.
        let rows = &rows[1..];
        let services = rows.iter().filter(|r| r.contains(",service,")).count();
        assert_eq!(services, 4, "four services: {stdout}");
        assert_eq!(
            rows.iter().filter(|r| r.contains(",control,")).count(),
            12 + 21,
            "every listed control, each with its one check or none: {stdout}"
        );
        assert!(
            rows.iter().any(|r| r.contains(",db-1,")
                && r.contains(",patch,")
                && r.contains(",2026-11-30T00:00:00Z,5,2,no,no,")),
            "db-1's scan: {stdout}"
        );
        assert!(
            rows.iter()
                .any(|r| r.contains(",db-1,config-drift,") && r.contains(",drift,")),
            "{stdout}"
        );
        assert!(
            rows.iter().any(|r| r.starts_with("acme,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,Recover,RC.RP,db-1,backup-nightly,P1,")),
            "{stdout}"
        );

        let refused = warden(
            &noc,
            &addr,
            ACME_VIEWER,
            &[
                "report",
                "--tenant",
                "globex",
                "--quarter",
                "2026-Q4",
                "--format",
                "pdf",
            ],
        );
        let (stdout, stderr) = text(&refused);
        eprintln!("$ warden fleet report --tenant globex ...   # as acme-it\n{stdout}{stderr}");
        assert_eq!(refused.status.code(), Some(1));
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("PermissionDenied") && stderr.contains("acme"),
            "{stderr}"
        );
        assert!(!noc.join("report-globex-2026-10-01.pdf").exists());

        // The NOC's viewer reads globex's quarter: its one incident.
        let json = Process::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(&noc)
            .current_dir(&noc)
            .args(["--json", "fleet", "--addr", &addr])
            .args([
                "report",
                "--tenant",
                "globex",
                "--quarter",
                "2026-Q4",
                "--format",
                "html",
            ])
            .env("WARDEN_TOKEN", NOC)
            .output()
            .expect("warden runs");
        let (stdout, stderr) = text(&json);
        assert!(json.status.success(), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(v["report"]["services"], 1, "{v}");
        assert_eq!(v["report"]["file"], "report-globex-2026-10-01.html", "{v}");
        let html =
            std::fs::read_to_string(noc.join("report-globex-2026-10-01.html")).expect("html");
        assert!(
            html.contains("globex-secret-monitor") && !html.contains("db-1"),
            "{html}"
        );

        let bad = warden(
            &noc,
            &addr,
            NOC,
            &["report", "--tenant", "acme", "--month", "2026-13"],
        );
        let (_, stderr) = text(&bad);
        assert_eq!(bad.status.code(), Some(1));
        assert!(stderr.contains("`2026-13` is not a month"), "{stderr}");
    });
    let data_dir = cut.config.data_dir.clone();
    cut.stop().await;
    // Each report read is in the controller's audit log, with its caller.
    let audit = std::fs::read_to_string(data_dir.join("audit/audit.log")).expect("audit log");
    assert!(
        audit.contains("\"fleet.report\"") && audit.contains("acme-it"),
        "the report reads are audited"
    );
}
