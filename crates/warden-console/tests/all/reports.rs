//! The client report download: a viewer gets a tenant's month as PDF, HTML or CSV (an
//! attachment named by the controller), a tenant-scoped caller only its own tenant's, bad
//! input is a 400 page, and each read is audited by the controller.

use hyper::{StatusCode, header};
use warden_fleet_wire::{AgentEvent, EventKind, UnixMillis};

use crate::support::http::Client;
use crate::support::*;

/// 2026-11-01T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200_000;

fn outage(h: &Harness, agent: &SeedAgent, monitor: &str, at: i64, minutes: i64) {
    for (seq, kind, when) in [
        (1, EventKind::IncidentOpened, at),
        (2, EventKind::IncidentResolved, at + minutes * 60_000),
    ] {
        let e = AgentEvent::new(
            agent.tenant.clone(),
            agent.id.clone(),
            seq,
            UnixMillis(when),
            kind,
            monitor,
        );
        let payload = warden_fleet_wire::encode(&e).expect("encodes");
        h.controller()
            .take_event(&e.nats_subject(), &payload)
            .expect("event taken");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_downloads_a_tenants_month_and_a_scoped_caller_only_its_own() {
    let h = Harness::start().await;
    let acme = h.agents("acme", &["db-1"]);
    let globex = h.agents("globex", &["gx-1"]);
    outage(&h, &acme[0], "backup-nightly", NOVEMBER + 86_400_000, 72);
    outage(&h, &globex[0], "globex-only", NOVEMBER + 86_400_000, 10);

    let mut viewer = Client::new(&h.url);
    viewer.sign_in(NOC_VIEWER).await;
    let form = viewer.get("/reports").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("action=\"/reports/file\""),
        "{}",
        form.body
    );
    assert!(form.body.contains("href=\"/reports\""), "in the navigation");

    let pdf = viewer
        .get("/reports/file?tenant=acme&month=2026-11&format=pdf")
        .await;
    assert_eq!(pdf.status, StatusCode::OK, "{}", pdf.body);
    assert_eq!(
        pdf.header(header::CONTENT_TYPE).as_deref(),
        Some("application/pdf")
    );
    assert_eq!(
        pdf.header(header::CONTENT_DISPOSITION).as_deref(),
        Some("attachment; filename=\"report-acme-2026-11-01.pdf\"")
    );
    assert!(pdf.body.starts_with("%PDF-"), "a PDF");

    let html = viewer
        .get("/reports/file?tenant=acme&month=2026-11&format=html")
        .await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.body.contains("db-1") && html.body.contains("backup-nightly"));
    assert!(!html.body.contains("globex-only"), "another tenant's data");
    // 72 minutes down in a 30-day month.
    assert!(html.body.contains("99.833 %"), "{}", html.body);

    let csv = viewer
        .get("/reports/file?tenant=globex&month=2026-11&format=csv")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.contains(",gx-1,globex-only,"), "{}", csv.body);

    for (query, says) in [
        ("tenant=acme&month=2026-13&format=pdf", "a month is YYYY-MM"),
        (
            "tenant=acme&month=2026-11&format=docx",
            "one of pdf, html, csv",
        ),
        ("tenant=Not%20A%20Tenant&month=2026-11&format=pdf", "tenant"),
    ] {
        let r = viewer.get(&format!("/reports/file?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.body.contains(says), "{query}: {}", r.body);
    }
    let unknown = viewer
        .get("/reports/file?tenant=initech&month=2026-11&format=pdf")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let mut acme_it = Client::new(&h.url);
    acme_it.sign_in(ACME_OPERATOR).await;
    let own = acme_it.get("/reports").await;
    assert!(
        own.body.contains("value=\"acme\""),
        "prefilled: {}",
        own.body
    );
    let other = acme_it
        .get("/reports/file?tenant=globex&month=2026-11&format=csv")
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(!other.body.contains("globex-only"));

    let mut anonymous = Client::new(&h.url);
    let r = anonymous
        .get("/reports/file?tenant=acme&month=2026-11&format=pdf")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "sign in first");

    let reads = h.audited("fleet.report");
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(
        reads.iter().all(|r| r["caller"] == "noc-viewer"),
        "{reads:?}"
    );
}
