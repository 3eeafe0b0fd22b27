//! The console's pages as maud templates: every `(value)` is HTML-escaped by the template
//! engine, and what an agent or plugin wrote passes through [`crate::inert::text`] first
//! ([`shown`]).

pub mod agent;
pub mod agent_audit;
pub mod approvals;
pub mod fleet;
pub mod reports;
pub mod rollouts;
pub mod run;
pub mod signin;

use maud::{DOCTYPE, Markup, html};
use warden_access::Caller;

use crate::session::Session;

/// Text an agent or plugin wrote, made inert (the template escapes it on top).
pub fn shown(text: &str) -> String {
    crate::inert::text(text)
}

/// `text` percent-encoded for a URL's query or path segment (every byte but the unreserved).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn who(caller: &Caller) -> String {
    match caller.scope.tenant() {
        Some(t) => format!("{} ({}, tenant {t})", caller.name, caller.role.name()),
        None => format!("{} ({}, all tenants)", caller.name, caller.role.name()),
    }
}

/// A page: the header (who is signed in, sign-out) and `body`.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · warden console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "warden" }
                    @if let Some(s) = session {
                        @if let Some(caller) = &s.caller {
                            nav {
                                a href="/" { "Fleet" }
                                a href="/rollouts" { "Rollouts" }
                                a href="/approvals" { "Approvals" }
                                a href="/reports" { "Reports" }
                            }
                            span.who { (who(caller)) }
                            form.signout method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page saying what went wrong, in one line.
pub fn problem(title: &str, session: Option<&Session>, message: &str) -> Markup {
    layout(
        title,
        session,
        html! {
            h1 { (title) }
            p.problem { (message) }
            p { a href="/" { "Back to the fleet" } }
        },
    )
}

/// A signed-in session for the pages' unit tests.
#[cfg(test)]
pub(crate) fn test_session(name: &str, role: warden_access::Role) -> Session {
    Session {
        caller: Some(Caller {
            name: name.into(),
            role,
            scope: warden_access::Scope::AllTenants,
        }),
        csrf: "c5rf".into(),
        created: warden_fleet_wire::UnixMillis(0),
        last_used: warden_fleet_wire::UnixMillis(0),
    }
}
