//! `ticket-connectwise`: a ticketing plugin for ConnectWise PSA's REST API 3.0 (service tickets).
//!
//! Every call authenticates with HTTP Basic `<company-id>+<public-key>:<private-key>` and the
//! `clientId` header (the integration's client id). The calls:
//!
//! - `open`: `GET /v4_6_release/apis/3.0/service/tickets?conditions=externalXRef="<ref>"` first;
//!   a ticket found is returned as it is (a retry after a lost response). Otherwise `POST
//!   .../service/tickets` with `summary`, `recordType` `ServiceTicket`, `board`, `company`,
//!   `priority`, optional `status`, `initialDescription` and `externalXRef`; `201` with `id`.
//! - `note`: `POST .../service/tickets/<id>/notes` with `text`, `detailDescriptionFlag`.
//! - `close`: the note, then (unless `close-status` is unset for the tenant) `PATCH
//!   .../service/tickets/<id>` with `[{"op":"replace","path":"status/name","value":...}]`.
//!
//! SLA due times: ConnectWise gives `respondMinutes` and `resolveMinutes` with the ticket's
//! `_info.dateEntered`; respond-by and resolve-by are that date plus those minutes.
//!
//! Config (`secrets` comes from the agent's `[tickets] secrets-file`):
//!
//! ```json
//! { "url": "https://api-na.myconnectwise.net", "company-id": "acme", "client-id": "<uuid>",
//!   "tenants": { "default": { "company": "ACME", "board": "Service Desk",
//!                             "priority": "Priority 3 - Normal Response",
//!                             "close-status": "Closed (resolved)" } },
//!   "secrets": { "public-key": "...", "private-key": "..." } }
//! ```

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use ticket_common::{api, sign, tenants, url};
use warden_sdk::http::Request;
use warden_sdk::{NewTicket, PluginError, Ticket, TicketNote, Ticketing};

/// The API's path prefix (the release path ConnectWise has served 3.0 under since 2016).
pub const API: &str = "/v4_6_release/apis/3.0";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub url: String,
    pub company_id: String,
    pub client_id: String,
    pub tenants: BTreeMap<String, Tenant>,
    pub secrets: Secrets,
}

/// Where one tenant's tickets go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tenant {
    /// The company's identifier.
    pub company: String,
    /// The service board's name.
    pub board: String,
    /// The priority's name.
    pub priority: String,
    /// The status of a new ticket; the board's default when unset.
    #[serde(default)]
    pub status: Option<String>,
    /// The status `close` sets; unset: `close` only adds its note.
    #[serde(default)]
    pub close_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secrets {
    pub public_key: String,
    pub private_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

impl Config {
    fn request(&self, method: &str, path: &str) -> Request {
        let user = format!("{}+{}", self.company_id, self.secrets.public_key);
        Request::new(method, url::join(&self.url, &format!("{API}{path}")))
            .header(
                "authorization",
                sign::basic(&user, &self.secrets.private_key),
            )
            .header("clientid", self.client_id.clone())
            .header("accept", "application/json")
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Request {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// `t` plus `minutes`, in RFC 3339, when both parse.
fn plus_minutes(t: &str, minutes: Option<i64>) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    let due = at.checked_add_signed(chrono::TimeDelta::try_minutes(minutes?)?)?;
    Some(
        due.to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The ticket id and SLA due times of a ConnectWise ticket.
pub fn ticket_of(t: &Value) -> Result<Ticket, PluginError> {
    let id = api::text_at(t, "/id", "ConnectWise ticket")?;
    let entered = api::optional_text_at(t, "/_info/dateEntered")
        .or_else(|| api::optional_text_at(t, "/dateEntered"));
    let due = |field: &str| {
        entered
            .as_deref()
            .and_then(|e| plus_minutes(e, t.get(field).and_then(Value::as_f64).map(|m| m as i64)))
    };
    Ok(Ticket::new(id).due(due("respondMinutes"), due("resolveMinutes")))
}

fn find(config: &Config, external_ref: &str) -> Result<Option<Value>, PluginError> {
    let conditions = url::encode(&format!("externalXRef=\"{external_ref}\""));
    let found = api::send_ok(
        "ConnectWise ticket lookup",
        config.request("GET", &format!("/service/tickets?conditions={conditions}")),
    )?;
    Ok(found.as_array().and_then(|list| list.first()).cloned())
}

fn add_note(config: &Config, req: &TicketNote) -> Result<(), PluginError> {
    api::send_ok(
        "ConnectWise note",
        config.json(
            "POST",
            &format!("/service/tickets/{}/notes", req.ticket_id),
            &json!({ "text": req.text, "detailDescriptionFlag": true }),
        ),
    )?;
    Ok(())
}

fn get(config: &Config, id: &str) -> Result<Ticket, PluginError> {
    ticket_of(&api::send_ok(
        "ConnectWise ticket",
        config.request("GET", &format!("/service/tickets/{id}")),
    )?)
}

struct ConnectWise;

impl Ticketing for ConnectWise {
    fn open(config: &str, req: NewTicket) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let tenant = tenants::select(&config.tenants, &req.incident.tenant)?;
        if let Some(existing) = find(&config, &req.incident.external_ref)? {
            return ticket_of(&existing);
        }
        let mut body = json!({
            "summary": ticket_common::clip(&req.summary, ticket_common::MAX_SUMMARY_CHARS),
            "recordType": "ServiceTicket",
            "board": { "name": tenant.board },
            "company": { "identifier": tenant.company },
            "priority": { "name": tenant.priority },
            "initialDescription": req.description,
            "externalXRef": req.incident.external_ref,
        });
        if let Some(status) = &tenant.status {
            body["status"] = json!({ "name": status });
        }
        let reply = api::send(
            "ConnectWise ticket create",
            config.json("POST", "/service/tickets", &body),
        )?;
        if reply.status != 201 && reply.status != 200 {
            return Err(api::status_error("ConnectWise ticket create", &reply));
        }
        ticket_of(&reply.body)
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
        let Some(status) = &tenant.close_status else {
            return get(&config, &req.ticket_id);
        };
        let patch = json!([{ "op": "replace", "path": "status/name", "value": status }]);
        ticket_of(&api::send_ok(
            "ConnectWise ticket close",
            config.json(
                "PATCH",
                &format!("/service/tickets/{}", req.ticket_id),
                &patch,
            ),
        )?)
    }
}

warden_sdk::ticketing!(ConnectWise);
