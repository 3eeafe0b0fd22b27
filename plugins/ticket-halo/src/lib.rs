//! `ticket-halo`: a ticketing plugin for HaloPSA's REST API.
//!
//! Each call first gets a token with OAuth2 client credentials: `POST <auth-url>/token`
//! (form `grant_type=client_credentials`, `client_id`, `client_secret`, `scope=all`; default
//! `auth-url` is `<url>/auth`), then calls the API with `Authorization: Bearer <token>`:
//!
//! - `open`: `GET /api/Tickets?search=<ref>` first, and a ticket whose `details` carry the
//!   reference is returned (a retry after a lost answer); otherwise `POST /api/Tickets` with a
//!   JSON array of one ticket (`summary`, `details` ending in the reference, `client_id`,
//!   `tickettype_id`, `priority_id`, optional `team`), answered with the ticket.
//! - `note`: `POST /api/Actions` with `[{ticket_id, note, outcome}]`, then `GET /api/Tickets/<id>`.
//! - `close`: the note, then `POST /api/Tickets` with `[{id, status_id}]`: in Halo an update is
//!   the same call with `id` set.
//!
//! SLA due times are the ticket's `respondbydate` and `fixbydate`.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use ticket_common::{api, tenants, url};
use warden_sdk::http::Request;
use warden_sdk::{NewTicket, PluginError, Ticket, TicketNote, Ticketing};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// e.g. `https://acme.halopsa.com`.
    pub url: String,
    /// The authorisation server; default `<url>/auth`.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// Halo's `tenant` parameter of the token request (hosted instances).
    #[serde(default)]
    pub halo_tenant: Option<String>,
    pub tenants: BTreeMap<String, Tenant>,
    pub secrets: Secrets,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tenant {
    pub client_id: i64,
    pub tickettype_id: i64,
    pub priority_id: i64,
    #[serde(default)]
    pub team: Option<String>,
    /// `status_id` `close` sets (Halo's "Closed" is 9 by default); unset: only the note.
    #[serde(default)]
    pub closed_status_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secrets {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

/// A Bearer token for this call.
fn token(config: &Config) -> Result<String, PluginError> {
    let auth = config
        .auth_url
        .clone()
        .unwrap_or_else(|| url::join(&config.url, "/auth"));
    let mut target = url::join(&auth, "/token");
    if let Some(t) = &config.halo_tenant {
        target.push_str(&format!("?tenant={}", url::encode(t)));
    }
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=all",
        url::encode(&config.secrets.client_id),
        url::encode(&config.secrets.client_secret)
    );
    let body = api::send_ok(
        "Halo token",
        Request::post(target)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form),
    )?;
    api::text_at(&body, "/access_token", "Halo token")
}

struct Session<'a> {
    config: &'a Config,
    bearer: String,
}

impl<'a> Session<'a> {
    fn start(config: &'a Config) -> Result<Session<'a>, PluginError> {
        Ok(Session {
            config,
            bearer: format!("Bearer {}", token(config)?),
        })
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, url::join(&self.config.url, &format!("/api{path}")))
            .header("authorization", self.bearer.clone())
            .header("accept", "application/json")
    }

    fn post(&self, path: &str, body: &Value) -> Request {
        self.request("POST", path)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    fn get(&self, id: &str) -> Result<Ticket, PluginError> {
        ticket_of(&api::send_ok(
            "Halo ticket",
            self.request("GET", &format!("/Tickets/{}", url::encode(id))),
        )?)
    }

    fn note(&self, req: &TicketNote) -> Result<(), PluginError> {
        let action = json!([{ "ticket_id": numeric_id(&req.ticket_id)?, "note": req.text,
                              "outcome": "Warden" }]);
        api::send_ok("Halo note", self.post("/Actions", &action))?;
        Ok(())
    }
}

fn numeric_id(id: &str) -> Result<i64, PluginError> {
    id.parse()
        .map_err(|_| PluginError::new("invalid", format!("`{id}` is not a Halo ticket id")))
}

/// Halo answers a one-element array with the object or a one-element array.
fn single(body: &Value) -> &Value {
    body.get(0).unwrap_or(body)
}

fn ticket_of(t: &Value) -> Result<Ticket, PluginError> {
    let t = single(t);
    Ok(Ticket::new(api::text_at(t, "/id", "Halo ticket")?).due(
        api::optional_text_at(t, "/respondbydate"),
        api::optional_text_at(t, "/fixbydate"),
    ))
}

/// The line the reference is kept on, in `details`, where a lookup finds it.
fn reference_line(external_ref: &str) -> String {
    format!("Warden reference: {external_ref}")
}

struct Halo;

impl Ticketing for Halo {
    fn open(config: &str, req: NewTicket) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let tenant = tenants::select(&config.tenants, &req.incident.tenant)?;
        let session = Session::start(&config)?;
        let line = reference_line(&req.incident.external_ref);
        let found = api::send_ok(
            "Halo ticket lookup",
            session.request(
                "GET",
                &format!(
                    "/Tickets?search={}",
                    url::encode(&req.incident.external_ref)
                ),
            ),
        )?;
        let list = found
            .get("tickets")
            .or(Some(&found))
            .and_then(Value::as_array);
        if let Some(t) = list.into_iter().flatten().find(|t| {
            t.get("details")
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains(&line))
        }) {
            return ticket_of(t);
        }
        let mut ticket = json!({
            "summary": ticket_common::clip(&req.summary, ticket_common::MAX_SUMMARY_CHARS),
            "details": format!("{}\n\n{line}", req.description),
            "client_id": tenant.client_id,
            "tickettype_id": tenant.tickettype_id,
            "priority_id": tenant.priority_id,
        });
        if let Some(team) = &tenant.team {
            ticket["team"] = json!(team);
        }
        ticket_of(&api::send_ok(
            "Halo ticket create",
            session.post("/Tickets", &json!([ticket])),
        )?)
    }

    fn note(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let session = Session::start(&config)?;
        session.note(&req)?;
        session.get(&req.ticket_id)
    }

    fn close(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let tenant = tenants::select(&config.tenants, &req.incident.tenant)?;
        let session = Session::start(&config)?;
        session.note(&req)?;
        if let Some(status) = tenant.closed_status_id {
            let update = json!([{ "id": numeric_id(&req.ticket_id)?, "status_id": status }]);
            api::send_ok("Halo ticket close", session.post("/Tickets", &update))?;
        }
        session.get(&req.ticket_id)
    }
}

warden_sdk::ticketing!(Halo);
