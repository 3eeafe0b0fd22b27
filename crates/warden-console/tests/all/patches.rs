//! The fleet table's patch columns and filters over plain HTTP, on agents whose heartbeats
//! carry a patch scan (or none): "Patches" shows `12 (3 security)` or `-` for an agent that
//! never reported a scan, "Reboot" `required` or nothing; `is:reboot` and `is:patches` select
//! on the server, counted and paged like every other filter.

use std::collections::BTreeSet;

use hyper::StatusCode;

use crate::support::http::Client;
use crate::support::*;

/// The fleet table's rows: (host, the row's HTML).
pub(crate) fn rows(body: &str) -> Vec<(String, String)> {
    body.split("<tr class=\"agent\"")
        .skip(1)
        .map(|chunk| {
            let row = chunk.split("</tr>").next().unwrap_or_default();
            let host = row
                .split("class=\"host\"")
                .nth(1)
                .and_then(|rest| rest.split_once('>'))
                .and_then(|(_, rest)| rest.split_once('<'))
                .map(|(host, _)| host.to_string())
                .unwrap_or_else(|| panic!("no host in {row}"));
            (host, row.to_string())
        })
        .collect()
}

pub(crate) fn hosts(body: &str) -> BTreeSet<String> {
    rows(body).into_iter().map(|(h, _)| h).collect()
}

pub(crate) fn set(hosts: &[&str]) -> BTreeSet<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

/// `body` holds `text`, or the test fails showing the page.
pub(crate) fn holds(body: &str, text: &str) {
    assert!(body.contains(text), "{text:?} not in {body}");
}

pub(crate) fn row_of(body: &str, host: &str) -> String {
    rows(body)
        .into_iter()
        .find(|(h, _)| h == host)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no row for {host} in {body}"))
}

/// The text of the row's cell of class `class`.
pub(crate) fn cell(row: &str, class: &str) -> String {
    let rest = row
        .split(&format!("class=\"{class}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {class} cell in {row}"));
    let inner = rest.split_once('>').map_or("", |(_, r)| r);
    let inner = inner.split("</td>").next().unwrap_or_default();
    // Without the tags inside the cell.
    let mut text = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_patch_columns_show_the_latest_scan_and_the_filters_select_on_the_server() {
    let h = Harness::start().await;
    let fleet = vec![
        SeedAgent::new("acme", "db-reboot").patched(12, 3, true),
        SeedAgent::new("acme", "web-pending").patched(4, 0, false),
        SeedAgent::new("globex", "web-current").patched(0, 0, false),
        SeedAgent::new("globex", "web-never"),
        SeedAgent::new("globex", "file-reboot-only").patched(0, 0, true),
    ];
    h.heartbeats(&fleet);
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;

    let all = c.get("/").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.body.contains(">Patches"), "the column header");
    assert!(all.body.contains(">Reboot<"), "the column header");
    let cells = |host: &str| {
        let row = row_of(&all.body, host);
        (cell(&row, "num patches"), cell(&row, "reboot"))
    };
    assert_eq!(
        cells("db-reboot"),
        ("12 (3 security)".into(), "required".into())
    );
    assert_eq!(cells("web-pending"), ("4".into(), String::new()));
    assert_eq!(cells("web-current"), ("0".into(), String::new()));
    assert_eq!(
        cells("web-never"),
        ("-".into(), String::new()),
        "never scanned is not zero"
    );
    assert_eq!(cells("file-reboot-only"), ("0".into(), "required".into()));

    for (filter, expected) in [
        ("is%3Areboot", set(&["db-reboot", "file-reboot-only"])),
        ("is%3Apatches", set(&["db-reboot", "web-pending"])),
        (
            "is%3Areboot+is%3Apatches+tenant%3Aacme",
            set(&["db-reboot"]),
        ),
    ] {
        let page = c.get(&format!("/?q={filter}")).await;
        assert_eq!(hosts(&page.body), expected, "{filter}");
        holds(&page.body, &format!("{} agent", expected.len()));
    }
    // The error names the filters.
    holds(
        &c.get("/?q=is%3Aunpatched").await.body,
        "is:patches or is:reboot",
    );

    // One agent's page says the same.
    let detail = c.get(&format!("/agents/{}", fleet[0].id)).await.body;
    holds(&detail, "<td id=\"patches\">12 (3 security)</td>");
    holds(&detail, "<td id=\"reboot\">yes</td>");
    let never = c.get(&format!("/agents/{}", fleet[3].id)).await.body;
    holds(&never, "no patch scan reported");
}

#[tokio::test(flavor = "multi_thread")]
async fn is_reboot_is_counted_and_paged_by_the_store_across_the_whole_fleet() {
    let h = Harness::start().await;
    // 150 agents, every second requiring a reboot: 75, more than one page of 50.
    let fleet: Vec<SeedAgent> = (0..150)
        .map(|i| {
            let a = SeedAgent::new("acme", &format!("host-{i:03}"));
            if i % 2 == 0 {
                a.patched(2, 1, true)
            } else {
                a.patched(1, 0, false)
            }
        })
        .collect();
    h.heartbeats(&fleet);
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let first = c.get("/?q=is%3Areboot&sort=host&dir=asc&page=1").await;
    holds(&first.body, "75 agents, showing 1–50");
    let second = c.get("/?q=is%3Areboot&sort=host&dir=asc&page=2").await;
    holds(&second.body, "75 agents, showing 51–75");
    let (first, second) = (hosts(&first.body), hosts(&second.body));
    assert_eq!((first.len(), second.len()), (50, 25));
    assert!(first.is_disjoint(&second), "pages overlap");
    let expected: BTreeSet<String> = (0..150)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("host-{i:03}"))
        .collect();
    assert_eq!(
        first.union(&second).cloned().collect::<BTreeSet<_>>(),
        expected
    );
}
