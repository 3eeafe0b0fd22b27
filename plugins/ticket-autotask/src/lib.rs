//! `ticket-autotask`: a ticketing plugin for Autotask PSA's REST API (v1.0).
//!
//! Every call carries the headers `ApiIntegrationCode`, `UserName` and `Secret` (an API-only
//! user). The calls, under `<url>/V1.0`:
//!
//! - `open`: `POST /Tickets/query` with a filter `externalID eq <ref>` first (a ticket found is
//!   returned: a retry after a lost answer); otherwise `POST /Tickets` with `companyID`,
//!   `title`, `description`, `status`, `priority`, `queueID`, `externalID`, answered with
//!   `itemId`, then `GET /Tickets/<id>` for the SLA due times `firstResponseDueDateTime` and
//!   `resolvedDueDateTime`.
//! - `note`: `POST /Tickets/<id>/Notes` with `title`, `description`, `noteType`, `publish`.
//! - `close`: the note, then `PATCH /Tickets` with `id` and the tenant's `complete-status`.
//!
//! Status and priority values are per Autotask instance (read them from
//! `/Tickets/entityInformation/fields`), so the tenant mapping gives them as numbers.
//! `externalID` holds at most [`MAX_EXTERNAL_ID`] characters: a longer reference is sent as
//! `warden:` and a hash of it, the same on every retry.

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use ticket_common::{api, tenants, url};
use warden_sdk::http::Request;
use warden_sdk::{NewTicket, PluginError, Ticket, TicketNote, Ticketing};

/// The length of Autotask's `Ticket.externalID`.
pub const MAX_EXTERNAL_ID: usize = 50;

/// Autotask's note type "Task Summary" and publish "All Autotask Users": a note the
/// technician sees on the ticket.
const NOTE_TYPE: u32 = 1;
const NOTE_PUBLISH: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// e.g. `https://webservices5.autotask.net/ATServicesRest`.
    pub url: String,
    pub tenants: BTreeMap<String, Tenant>,
    pub secrets: Secrets,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tenant {
    pub company_id: i64,
    pub queue_id: i64,
    pub priority: i64,
    /// Status of a new ticket (Autotask's "New" is 1 by default).
    #[serde(default = "default_new_status")]
    pub status: i64,
    /// Status `close` sets (Autotask's "Complete" is 5 by default); unset: only the note.
    #[serde(default)]
    pub complete_status: Option<i64>,
}

fn default_new_status() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secrets {
    pub integration_code: String,
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

impl Config {
    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, url::join(&self.url, &format!("/V1.0{path}")))
            .header("apiintegrationcode", self.secrets.integration_code.clone())
            .header("username", self.secrets.username.clone())
            .header("secret", self.secrets.secret.clone())
            .header("accept", "application/json")
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Request {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// The `externalID` of an incident reference.
pub fn external_id(external_ref: &str) -> String {
    if external_ref.chars().count() <= MAX_EXTERNAL_ID {
        return external_ref.to_string();
    }
    let hash: String = Sha256::digest(external_ref.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("warden:{hash}")
}

/// Autotask ids are integers; an id that is not one did not come from Autotask.
fn numeric_id(id: &str) -> Result<i64, PluginError> {
    id.parse()
        .map_err(|_| PluginError::new("invalid", format!("`{id}` is not an Autotask ticket id")))
}

fn ticket_of(item: &Value) -> Result<Ticket, PluginError> {
    Ok(
        Ticket::new(api::text_at(item, "/id", "Autotask ticket")?).due(
            api::optional_text_at(item, "/firstResponseDueDateTime"),
            api::optional_text_at(item, "/resolvedDueDateTime"),
        ),
    )
}

fn get(config: &Config, id: &str) -> Result<Ticket, PluginError> {
    let body = api::send_ok(
        "Autotask ticket",
        config.request("GET", &format!("/Tickets/{id}")),
    )?;
    ticket_of(body.get("item").unwrap_or(&Value::Null))
}

fn add_note(config: &Config, req: &TicketNote) -> Result<(), PluginError> {
    let body = json!({
        "ticketID": numeric_id(&req.ticket_id)?,
        "title": ticket_common::clip(req.text.lines().next().unwrap_or("Warden"), 250),
        "description": req.text,
        "noteType": NOTE_TYPE,
        "publish": NOTE_PUBLISH,
    });
    api::send_ok(
        "Autotask note",
        config.json("POST", &format!("/Tickets/{}/Notes", req.ticket_id), &body),
    )?;
    Ok(())
}

struct Autotask;

impl Ticketing for Autotask {
    fn open(config: &str, req: NewTicket) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let tenant = tenants::select(&config.tenants, &req.incident.tenant)?;
        let external = external_id(&req.incident.external_ref);
        let query = json!({ "filter": [{ "op": "eq", "field": "externalID", "value": external }] });
        let found = api::send_ok(
            "Autotask ticket lookup",
            config.json("POST", "/Tickets/query", &query),
        )?;
        if let Some(item) = found.pointer("/items/0") {
            return ticket_of(item);
        }
        let body = json!({
            "companyID": tenant.company_id,
            "queueID": tenant.queue_id,
            "priority": tenant.priority,
            "status": tenant.status,
            "title": ticket_common::clip(&req.summary, ticket_common::MAX_SUMMARY_CHARS),
            "description": req.description,
            "externalID": external,
        });
        let created = api::send_ok(
            "Autotask ticket create",
            config.json("POST", "/Tickets", &body),
        )?;
        get(
            &config,
            &api::text_at(&created, "/itemId", "Autotask ticket create")?,
        )
    }

    fn note(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        add_note(&config, &req)?;
        get(&config, &req.ticket_id)
    }

    fn close(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let tenant = tenants::select(&config.tenants, &req.incident.tenant)?;
        add_note(&config, &req)?;
        if let Some(status) = tenant.complete_status {
            let patch = json!({ "id": numeric_id(&req.ticket_id)?, "status": status });
            api::send_ok(
                "Autotask ticket close",
                config.json("PATCH", "/Tickets", &patch),
            )?;
        }
        get(&config, &req.ticket_id)
    }
}

warden_sdk::ticketing!(Autotask);
