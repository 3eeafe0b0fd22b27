//! The store's fleet queries at 1,000 agents agree with the controller's own presence rule and
//! tags (its in-memory listing), page without overlap, and sort.

use std::collections::BTreeSet;

use warden_access::{Caller, Role, Scope};
use warden_controller::controller::AgentFilter;
use warden_controller::presence::Presence;
use warden_controller::store::query::{AgentQuery, SortKey};

use crate::support::*;

fn noc() -> Caller {
    Caller {
        name: "noc".into(),
        role: Role::Viewer,
        scope: Scope::AllTenants,
    }
}

fn ids(h: &Harness, query: &AgentQuery) -> (BTreeSet<String>, usize) {
    let mut q = query.clone();
    q.limit = 500;
    let mut found = BTreeSet::new();
    loop {
        let page = h
            .controller()
            .fleet_page(&noc(), q.clone())
            .expect("a page");
        let n = page.agents.len();
        for a in page.agents {
            assert!(found.insert(a.record.id.to_string()), "pages overlap");
        }
        if n < q.limit {
            return (found, page.total);
        }
        q.offset += n;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn store_filters_agree_with_the_presence_rule_and_tags_at_1000_agents() {
    let h = Harness::start().await;
    let fleet = fleet_of(1000);
    seed(&h, &fleet, 400);
    // 400..900 overdue (heard from 45 s ago: past 2 intervals, short of offline), the last
    // 100 online.
    h.clock.advance_ms(45_000);
    h.heartbeats(&fleet[900..]);
    let all = h
        .controller()
        .list_agents(&noc(), &AgentFilter::default())
        .expect("listing");
    assert_eq!(all.len(), 1000);
    for presence in [Presence::Online, Presence::Overdue, Presence::Offline] {
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|a| a.presence == presence)
            .map(|a| a.record.id.to_string())
            .collect();
        let (found, total) = ids(
            &h,
            &AgentQuery {
                presence: Some(presence),
                ..AgentQuery::default()
            },
        );
        assert_eq!(found, expected, "{}", presence.name());
        assert_eq!(total, expected.len());
        assert!(
            !expected.is_empty(),
            "{} agents in the seed",
            presence.name()
        );
    }
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|a| {
            a.presence == Presence::Offline
                && a.record.tags.get("role").map(String::as_str) == Some("db")
        })
        .filter(|a| a.record.open_incidents > 0)
        .map(|a| a.record.id.to_string())
        .collect();
    let q = warden_console::filter::parse("is:offline tag:role=db is:failing").expect("filter");
    assert_eq!(ids(&h, &q).0, expected);
    // tag:os matches the reported OS; a word matches the host name, case-insensitively.
    let q = warden_console::filter::parse("tag:os=windows HOST-00").expect("filter");
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|a| a.record.os == "windows" && a.record.hostname.starts_with("host-00"))
        .map(|a| a.record.id.to_string())
        .collect();
    assert_eq!(ids(&h, &q).0, expected);
    // LIKE's wildcards in a word are literal.
    let q = warden_console::filter::parse("host_%").expect("filter");
    assert_eq!(ids(&h, &q).1, 0);
    // Sorted by host, descending, one page of 50.
    let page = h
        .controller()
        .fleet_page(
            &noc(),
            AgentQuery {
                sort: SortKey::Host,
                descending: true,
                limit: 50,
                ..AgentQuery::default()
            },
        )
        .expect("page");
    let hosts: Vec<&str> = page
        .agents
        .iter()
        .map(|a| a.record.hostname.as_str())
        .collect();
    assert_eq!(hosts.len(), 50);
    assert_eq!(hosts[0], "host-0999");
    assert!(hosts.windows(2).all(|w| w[0] > w[1]), "{hosts:?}");
    assert_eq!(page.total, 1000);
}
