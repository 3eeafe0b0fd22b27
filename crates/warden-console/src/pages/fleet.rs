//! The fleet table: one page of the agents the filter selects, sortable by column.
//!
//! Columns are what the controller knows of each agent from its last heartbeat: "open
//! incidents" is what failing checks opened on the agent, "failing checks" their monitors by
//! name (each a link to `check:<name>`); "patches" and "reboot" are its latest
//! patch scan (`-`: it never reported one, which is not "nothing pending").

use maud::{Markup, html};
use warden_controller::noc::FleetPage;
use warden_controller::store::query::SortKey;
use warden_fleet_wire::{PatchSummary, UnixMillis};

use super::{encode, layout, shown};
use crate::session::Session;
use crate::times;

/// Agents per page.
pub const PAGE_SIZE: usize = 50;

/// What the table shows: the filter as typed, the order, the page (from 1).
#[derive(Debug, Clone)]
pub struct View {
    pub filter: String,
    pub sort: SortKey,
    pub descending: bool,
    pub page: usize,
}

impl View {
    /// The URL of this view with another order or page.
    fn url(&self, sort: SortKey, descending: bool, page: usize) -> String {
        format!(
            "/?q={}&sort={}&dir={}&page={page}",
            encode(&self.filter),
            sort.name(),
            if descending { "desc" } else { "asc" }
        )
    }

    fn header(&self, key: SortKey, label: &str) -> Markup {
        let active = self.sort == key;
        let next_desc = active && !self.descending;
        let mark = match (active, self.descending) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        html! {
            th aria-sort=[active.then_some(if self.descending { "descending" } else { "ascending" })] {
                a href=(self.url(key, next_desc, 1)) { (label) (mark) }
            }
        }
    }
}

fn tags(t: &std::collections::BTreeMap<String, String>) -> Markup {
    html! {
        @for (k, v) in t {
            span.tag { (shown(k)) "=" (shown(v)) }
            " "
        }
    }
}

/// The failing checks by name, each a link to the fleet filtered on it; "+N" for the open
/// incidents the heartbeat did not name (an agent older than the names, or past their cap).
fn failing(names: &[String], open: u32) -> Markup {
    let unnamed = usize::try_from(open)
        .unwrap_or(usize::MAX)
        .saturating_sub(names.len());
    html! {
        td.failing {
            @for n in names {
                a.check href=(format!("/?q={}", encode(&format!("check:{n}")))) { (shown(n)) }
                " "
            }
            @if unnamed > 0 { span.more { "+" (unnamed) } }
        }
    }
}

/// The patch cells: pending (with the scan's time on hover) and reboot.
fn patches(p: Option<PatchSummary>) -> Markup {
    html! {
        @match p {
            Some(p) => {
                td.num.patches title=(format!("scanned {}", times::utc(p.scanned_at))) { (p.pending_text()) }
                td.reboot { @if p.reboot_required { span.state.bad { "required" } } }
            }
            None => { td.num.patches { "-" } td.reboot {} }
        }
    }
}

pub fn page(
    session: &Session,
    view: &View,
    result: Result<&FleetPage, &str>,
    now: UnixMillis,
) -> Markup {
    let body = html! {
        h1 { "Fleet" }
        form.filter method="get" action="/" {
            input #q type="search" name="q" value=(view.filter)
                placeholder="is:offline tag:role=db tenant:acme web" aria-label="Filter";
            input type="hidden" name="sort" value=(view.sort.name());
            input type="hidden" name="dir" value=(if view.descending { "desc" } else { "asc" });
            button #apply type="submit" { "Filter" }
        }
        p.hint { "Filters: " code { "is:online" } ", " code { "is:overdue" } ", " code { "is:offline" } ", "
            code { "is:failing" } ", " code { "check:name" } ", " code { "is:patches" } ", " code { "is:reboot" } ", "
            code { "tag:key=value" } ", " code { "tenant:name" } ", or any word." }
        @match result {
            Err(message) => p.problem role="alert" { (message) },
            Ok(fleet) => {
                @let first = (view.page - 1) * PAGE_SIZE;
                @let pages = fleet.total.div_ceil(PAGE_SIZE).max(1);
                p #count { (fleet.total) (if fleet.total == 1 { " agent" } else { " agents" }) @if fleet.total > 0 {
                    ", showing " (first + 1) "–" (first + fleet.agents.len()) } }
                table #fleet {
                    thead { tr {
                        (view.header(SortKey::Tenant, "Tenant"))
                        (view.header(SortKey::Host, "Host"))
                        (view.header(SortKey::Os, "OS"))
                        th { "Tags" }
                        th { "Status" }
                        (view.header(SortKey::LastSeen, "Last seen"))
                        (view.header(SortKey::Incidents, "Open incidents"))
                        th { "Failing checks" }
                        (view.header(SortKey::Patches, "Patches"))
                        th { "Reboot" }
                    } }
                    tbody {
                        @for a in &fleet.agents {
                            @let r = &a.record;
                            @let host = if r.hostname.is_empty() { &r.name } else { &r.hostname };
                            tr.agent data-agent=(r.id.as_str()) {
                                td { (r.tenant.as_str()) }
                                td { a.host href=(format!("/agents/{}", encode(r.id.as_str()))) { (shown(host)) } }
                                td { (shown(&r.os)) }
                                td { (tags(&r.tags)) }
                                td { span class=(format!("state {}", a.presence.name())) {
                                    @if r.revoked_at.is_some() { "revoked" } @else { (a.presence.name()) } } }
                                td { @match r.last_seen {
                                    Some(t) => span title=(times::utc(t)) { (times::ago(t, now)) },
                                    None => "never",
                                } }
                                td.num { (r.open_incidents) }
                                (failing(&r.failing, r.open_incidents))
                                (patches(r.patches))
                            }
                        }
                    }
                }
                nav.pages {
                    @if view.page > 1 {
                        a #prev href=(view.url(view.sort, view.descending, view.page - 1)) { "← Previous" }
                    }
                    span { "Page " (view.page) " of " (pages) }
                    @if view.page < pages {
                        a #next href=(view.url(view.sort, view.descending, view.page + 1)) { "Next →" }
                    }
                }
            }
        }
    };
    layout("Fleet", Some(session), body)
}
