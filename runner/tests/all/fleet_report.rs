//! `warden fleet report` (issue 18): a tenant's client report from the controller's store,
//! over the NOC's gRPC API, as PDF (read back with poppler's `pdftotext` and rendered with
//! `pdftoppm`: `cargo xtask test` installs poppler-utils) and CSV. The controller runs in this
//! process beside a real nats-server in operator mode; the agents' incident events enter
//! through the controller's event intake, as they do from NATS. A tenant-scoped viewer gets
//! its own tenant's report and is refused another's.

use std::process::{Command as Process, Output};

use crate::common::controller::{ControllerUnderTest, text, warden_fleet as warden};
use warden_access::token_hash;
use warden_controller::controller::internal_caller;
use warden_fleet_identity::{AgentId, AgentKey, EnrollmentRequest, TenantId};
use warden_fleet_wire::{AgentEvent, EventKind, UnixMillis};

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
    for (i, (kind, when)) in [
        (EventKind::IncidentOpened, at),
        (EventKind::IncidentResolved, at + minutes * MINUTE),
    ]
    .into_iter()
    .enumerate()
    {
        let event = AgentEvent::new(
            tenant.clone(),
            agent.clone(),
            seq + i as u64,
            UnixMillis(when),
            kind,
            monitor,
        );
        let payload = warden_fleet_wire::encode(&event).expect("encode");
        controller
            .take_event(&event.nats_subject(), &payload)
            .expect("event taken");
    }
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
            stdout.starts_with("wrote report-acme-2026-11-01.pdf: pdf of acme, 2026-11-01 to 2026-11-30 (UTC), 2 services, 2 incidents"),
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
            "page 1 of 1",
        ] {
            assert!(page.contains(expected), "{expected:?} in\n{page}");
        }
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
        assert_eq!(rows.len(), 3, "header and two services: {stdout}");
        assert!(
            rows[0].starts_with("tenant,period_start,period_end,csf_function"),
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
