//! `ticket-webhook`: a ticketing plugin that POSTs each call (open, note, close) to one URL as a
//! JSON body rendered from a template, signed with HMAC-SHA256 over the exact body bytes.
//!
//! Config (`secrets` comes from the agent's `[tickets] secrets-file`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | required | where every call is POSTed |
//! | `templates.open` / `.note` / `.close` | [`default_template`] | JSON bodies with `{{placeholders}}` |
//! | `headers` | `{}` | extra headers (not credentials: put those in `secrets.headers`) |
//! | `signature-header` | `X-Warden-Signature` | carries `sha256=<hex HMAC of the body>` |
//! | `secrets.hmac-key` | none | the HMAC key; without it the body is not signed |
//! | `secrets.headers` | `{}` | headers that carry credentials (e.g. `Authorization`) |
//! | `id-pointer` | `/id` | JSON pointer to the ticket id in the response to `open` |
//! | `respond-by-pointer`, `resolve-by-pointer` | none | pointers to the SLA due times |
//!
//! Placeholders: `event` (`open`, `note`, `close`), `incident.monitor`, `incident.id`,
//! `incident.external-ref`, `incident.tenant`, `incident.host`, `ticket.summary`,
//! `ticket.description` (open), `ticket.id` and `note.text` (note, close).
//!
//! Idempotency: every request carries `Idempotency-Key: <external-ref>:<event>` (for a note, with
//! a hash of its text), so a receiver that keeps the keys it has seen turns a retried `open` into
//! the first one's answer. When the response to `open` has no id at `id-pointer`, the ticket id
//! is the external reference itself.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use ticket_common::{api, sign, template};
use warden_sdk::http::Request;
use warden_sdk::{NewTicket, PluginError, Ticket, TicketNote, Ticketing};

/// The signature header when the config names none.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Warden-Signature";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub templates: Templates,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    #[serde(default)]
    pub respond_by_pointer: Option<String>,
    #[serde(default)]
    pub resolve_by_pointer: Option<String>,
    #[serde(default)]
    pub secrets: Secrets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Templates {
    pub open: Option<Value>,
    pub note: Option<Value>,
    pub close: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secrets {
    #[serde(default)]
    pub hmac_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Secrets never reach a debug print (a log record, an error).
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_string()
}

fn default_id_pointer() -> String {
    "/id".to_string()
}

/// The body sent when the config has no template for `event`: every variable, by name.
pub fn default_template(event: &str) -> Value {
    let mut body = json!({
        "event": "{{event}}",
        "incident": {
            "monitor": "{{incident.monitor}}",
            "id": "{{incident.id}}",
            "external_ref": "{{incident.external-ref}}",
            "tenant": "{{incident.tenant}}",
            "host": "{{incident.host}}",
        },
    });
    if event == "open" {
        body["summary"] = json!("{{ticket.summary}}");
        body["description"] = json!("{{ticket.description}}");
    } else {
        body["ticket_id"] = json!("{{ticket.id}}");
        body["text"] = json!("{{note.text}}");
    }
    body
}

fn incident_vars(event: &'static str, i: &warden_sdk::IncidentRef) -> template::Vars {
    let mut v = template::Vars::new();
    v.insert("event", event.to_string());
    v.insert("incident.monitor", i.monitor.clone());
    v.insert("incident.id", i.incident.clone());
    v.insert("incident.external-ref", i.external_ref.clone());
    v.insert("incident.tenant", i.tenant.clone());
    v.insert("incident.host", i.host.clone());
    v
}

/// The request one call sends: the rendered body, signed, with the idempotency key.
pub fn build(
    config: &Config,
    event: &'static str,
    vars: &template::Vars,
    idempotency_key: &str,
) -> Result<Request, PluginError> {
    let chosen = match event {
        "open" => config.templates.open.as_ref(),
        "note" => config.templates.note.as_ref(),
        _ => config.templates.close.as_ref(),
    };
    let body = template::render(
        &chosen.cloned().unwrap_or_else(|| default_template(event)),
        vars,
    )?;
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| PluginError::new("failed", format!("cannot encode the body: {e}")))?;
    let mut req = Request::post(config.url.clone())
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key);
    for (k, v) in config.headers.iter().chain(&config.secrets.headers) {
        req = req.header(k.clone(), v.clone());
    }
    if let Some(key) = &config.secrets.hmac_key {
        let mac = sign::hex(&sign::hmac_sha256(key.as_bytes(), &bytes));
        req = req.header(config.signature_header.clone(), format!("sha256={mac}"));
    }
    Ok(req.body(bytes))
}

fn ticket_from(config: &Config, body: &Value, fallback_id: &str) -> Ticket {
    let at = |p: &Option<String>| p.as_deref().and_then(|p| api::optional_text_at(body, p));
    Ticket::new(
        api::optional_text_at(body, &config.id_pointer).unwrap_or_else(|| fallback_id.to_string()),
    )
    .due(
        at(&config.respond_by_pointer),
        at(&config.resolve_by_pointer),
    )
}

fn note_call(config: &str, req: TicketNote, event: &'static str) -> Result<Ticket, PluginError> {
    let config: Config = warden_sdk::config(config)?;
    let mut vars = incident_vars(event, &req.incident);
    vars.insert("ticket.id", req.ticket_id.clone());
    vars.insert("note.text", req.text.clone());
    let text_hash = sign::hex(&sign::hmac_sha256(b"idempotency", req.text.as_bytes()));
    let key = format!("{}:{event}:{}", req.incident.external_ref, &text_hash[..16]);
    let body = api::send_ok(
        &format!("webhook {event}"),
        build(&config, event, &vars, &key)?,
    )?;
    Ok(ticket_from(&config, &body, &req.ticket_id))
}

struct Webhook;

impl Ticketing for Webhook {
    fn open(config: &str, req: NewTicket) -> Result<Ticket, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let mut vars = incident_vars("open", &req.incident);
        vars.insert("ticket.summary", req.summary.clone());
        vars.insert("ticket.description", req.description.clone());
        let key = format!("{}:open", req.incident.external_ref);
        let body = api::send_ok("webhook open", build(&config, "open", &vars, &key)?)?;
        Ok(ticket_from(&config, &body, &req.incident.external_ref))
    }

    fn note(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        note_call(config, req, "note")
    }

    fn close(config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
        note_call(config, req, "close")
    }
}

warden_sdk::ticketing!(Webhook);
