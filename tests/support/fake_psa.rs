//! Fake PSAs for the ticketing plugins' tests, on [`PsaServer`]: each implements the calls its
//! connector makes, as the vendor documents them (paths, authentication headers, status codes,
//! JSON shapes), keeps its tickets in memory, and can be told to be down for the first
//! requests or to lose the answer to the first ticket it creates.

use crate::http_server::Recorded;
use crate::psa_server::{Answer, Handler, PsaServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A ticket as a fake PSA holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTicket {
    pub id: u64,
    pub external_ref: String,
    pub summary: String,
    pub description: String,
    pub notes: Vec<String>,
    pub status: String,
    /// Where the connector put it: board / company / priority, as sent.
    pub placed: Value,
}

/// Failure modes shared by the fakes.
#[derive(Default)]
pub struct Faults {
    /// Answer `503` to this many requests first (a PSA that is down).
    pub down_for: AtomicUsize,
    /// Create the first ticket, then hang up instead of answering (the answer is lost).
    pub lose_first_create: AtomicBool,
}

impl Faults {
    fn down(&self) -> bool {
        self.down_for
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The shared state of a fake.
#[derive(Default)]
pub struct Desk {
    pub tickets: Mutex<Vec<FakeTicket>>,
    pub faults: Faults,
}

impl Desk {
    pub fn tickets(&self) -> Vec<FakeTicket> {
        self.tickets.lock().expect("tickets").clone()
    }

    fn create(&self, mut t: FakeTicket) -> FakeTicket {
        let mut all = self.tickets.lock().expect("tickets");
        t.id = 1000 + all.len() as u64 + 1;
        all.push(t.clone());
        t
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut FakeTicket)) -> Option<FakeTicket> {
        let mut all = self.tickets.lock().expect("tickets");
        let t = all.iter_mut().find(|t| t.id == id)?;
        f(t);
        Some(t.clone())
    }

    fn by_ref(&self, external_ref: &str) -> Vec<FakeTicket> {
        self.tickets()
            .into_iter()
            .filter(|t| t.external_ref == external_ref)
            .collect()
    }
}

/// HMAC-SHA256 (RFC 2104), as a receiver checks the webhook's signature.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn body_json(r: &Recorded) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Percent-decoding of a query value.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A generic webhook receiver that dedups on `Idempotency-Key` and checks the signature.
pub struct FakeWebhook {
    pub desk: Arc<Desk>,
    pub server: PsaServer,
    /// Answers already given, by idempotency key.
    answers: Arc<Mutex<Vec<(String, Value)>>>,
}

pub const WEBHOOK_HMAC_KEY: &str = "webhook-shared-secret";

impl FakeWebhook {
    pub fn start() -> FakeWebhook {
        let desk = Arc::new(Desk::default());
        let answers: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let handler: Handler = {
            let (desk, answers) = (desk.clone(), answers.clone());
            Arc::new(move |r: &Recorded| webhook(&desk, &answers, r))
        };
        FakeWebhook {
            desk,
            server: PsaServer::start(handler),
            answers,
        }
    }

    pub fn answered_keys(&self) -> usize {
        self.answers.lock().expect("answers").len()
    }
}

fn webhook(desk: &Desk, answers: &Mutex<Vec<(String, Value)>>, r: &Recorded) -> Answer {
    if desk.faults.down() {
        return Answer::Json(503, json!({"error": "maintenance"}));
    }
    let signature = format!(
        "sha256={}",
        hmac_sha256_hex(WEBHOOK_HMAC_KEY.as_bytes(), &r.body)
    );
    if r.header("x-warden-signature") != Some(signature.as_str()) {
        return Answer::Json(401, json!({"error": "bad signature"}));
    }
    let Some(key) = r.header("idempotency-key").map(str::to_string) else {
        return Answer::Json(400, json!({"error": "no Idempotency-Key"}));
    };
    if let Some((_, answer)) = answers
        .lock()
        .expect("answers")
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Answer::Json(200, answer.clone());
    }
    let body = body_json(r);
    let answer = match text(&body, "/event").as_str() {
        "open" => {
            let t = desk.create(FakeTicket {
                id: 0,
                external_ref: text(&body, "/incident/external_ref"),
                summary: text(&body, "/summary"),
                description: text(&body, "/description"),
                notes: vec![],
                status: "new".into(),
                placed: json!({}),
            });
            json!({ "id": format!("WH-{}", t.id), "sla": {
                "respond_by": "2026-12-01T21:00:00Z", "resolve_by": "2026-12-02T04:00:00Z" } })
        }
        event @ ("note" | "close") => {
            let id = text(&body, "/ticket_id");
            let num = id.trim_start_matches("WH-").parse::<u64>().unwrap_or(0);
            let note = text(&body, "/text");
            let updated = desk.update(num, |t| {
                t.notes.push(note);
                if event == "close" {
                    t.status = "closed".into();
                }
            });
            if updated.is_none() {
                return Answer::Json(404, json!({"error": format!("no ticket {id}")}));
            }
            json!({ "id": id })
        }
        other => return Answer::Json(400, json!({"error": format!("unknown event `{other}`")})),
    };
    if text(&body, "/event") == "open"
        && desk.faults.lose_first_create.swap(false, Ordering::SeqCst)
    {
        // Created, but the answer never arrives; the key is remembered as a real one would.
        answers.lock().expect("answers").push((key, answer));
        return Answer::Hangup;
    }
    answers.lock().expect("answers").push((key, answer.clone()));
    Answer::Json(200, answer)
}

/// ConnectWise PSA's REST API 3.0, the calls `ticket-connectwise` makes.
pub struct FakeConnectWise {
    pub desk: Arc<Desk>,
    pub server: PsaServer,
}

pub const CW_COMPANY: &str = "acme";
pub const CW_PUBLIC: &str = "pubkey";
pub const CW_PRIVATE: &str = "privkey";
pub const CW_CLIENT_ID: &str = "3f1d2c4e-client";
/// `dateEntered` of every fake ticket; SLA due times are this plus the minutes below.
pub const CW_ENTERED: &str = "2026-12-01T20:00:00Z";
pub const CW_RESPOND_MINUTES: u64 = 60;
pub const CW_RESOLVE_MINUTES: u64 = 480;

fn basic(user: &str, password: &str) -> String {
    // The fake's own base64 encoder: nothing shared with the plugin under test.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn cw_json(t: &FakeTicket) -> Value {
    json!({
        "id": t.id,
        "summary": t.summary,
        "recordType": "ServiceTicket",
        "board": t.placed["board"],
        "company": t.placed["company"],
        "priority": t.placed["priority"],
        "status": { "name": t.status },
        "externalXRef": t.external_ref,
        "respondMinutes": CW_RESPOND_MINUTES,
        "resolveMinutes": CW_RESOLVE_MINUTES,
        "isInSla": true,
        "_info": { "dateEntered": CW_ENTERED },
    })
}

impl FakeConnectWise {
    pub fn start() -> FakeConnectWise {
        let desk = Arc::new(Desk::default());
        let handler: Handler = {
            let desk = desk.clone();
            Arc::new(move |r: &Recorded| connectwise(&desk, r))
        };
        FakeConnectWise {
            desk,
            server: PsaServer::start(handler),
        }
    }
}

fn connectwise(desk: &Desk, r: &Recorded) -> Answer {
    if desk.faults.down() {
        return Answer::Json(503, Value::Null);
    }
    let expected = basic(&format!("{CW_COMPANY}+{CW_PUBLIC}"), CW_PRIVATE);
    if r.header("authorization") != Some(expected.as_str())
        || r.header("clientid") != Some(CW_CLIENT_ID)
    {
        return Answer::Json(
            401,
            json!({"code": "Unauthorized", "message": "bad credentials or clientId"}),
        );
    }
    let Some(rest) = r
        .target
        .strip_prefix("/v4_6_release/apis/3.0/service/tickets")
    else {
        return Answer::Json(404, json!({"code": "NotFound"}));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ticket_id = segments.first().and_then(|s| s.parse::<u64>().ok());
    match (r.method.as_str(), segments.as_slice(), ticket_id) {
        ("GET", [], _) => {
            let conditions = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("conditions="))
                .map(decode)
                .unwrap_or_default();
            let Some(wanted) = conditions
                .strip_prefix("externalXRef=\"")
                .and_then(|s| s.strip_suffix('"'))
            else {
                return Answer::Json(400, json!({"code": "InvalidObject", "message": conditions}));
            };
            Answer::Json(
                200,
                Value::Array(desk.by_ref(wanted).iter().map(cw_json).collect()),
            )
        }
        ("POST", [], _) => {
            let b = body_json(r);
            for field in [
                "/summary",
                "/board/name",
                "/company/identifier",
                "/priority/name",
            ] {
                if text(&b, field).is_empty() {
                    return Answer::Json(
                        400,
                        json!({"code": "InvalidObject", "message": format!("{field} is required")}),
                    );
                }
            }
            if text(&b, "/recordType") != "ServiceTicket"
                || text(&b, "/summary").chars().count() > 100
            {
                return Answer::Json(
                    400,
                    json!({"code": "InvalidObject", "message": "recordType/summary"}),
                );
            }
            let t = desk.create(FakeTicket {
                id: 0,
                external_ref: text(&b, "/externalXRef"),
                summary: text(&b, "/summary"),
                description: text(&b, "/initialDescription"),
                notes: vec![],
                status: b.pointer("/status/name").and_then(Value::as_str).unwrap_or("New").to_string(),
                placed: json!({ "board": b["board"], "company": b["company"], "priority": b["priority"] }),
            });
            if desk.faults.lose_first_create.swap(false, Ordering::SeqCst) {
                return Answer::Hangup;
            }
            Answer::Json(201, cw_json(&t))
        }
        ("GET", [_], Some(id)) => match desk.update(id, |_| {}) {
            Some(t) => Answer::Json(200, cw_json(&t)),
            None => Answer::Json(404, json!({"code": "NotFound"})),
        },
        ("POST", [_, "notes"], Some(id)) => {
            let b = body_json(r);
            let note = text(&b, "/text");
            match desk.update(id, |t| t.notes.push(note.clone())) {
                Some(t) => Answer::Json(
                    201,
                    json!({ "id": t.notes.len(), "ticketId": id, "text": note }),
                ),
                None => Answer::Json(404, json!({"code": "NotFound"})),
            }
        }
        ("PATCH", [_], Some(id)) => {
            let b = body_json(r);
            let Some(status) = b
                .as_array()
                .and_then(|ops| {
                    ops.iter()
                        .find(|op| op["op"] == "replace" && op["path"] == "status/name")
                })
                .and_then(|op| op["value"].as_str())
                .map(str::to_string)
            else {
                return Answer::Json(
                    400,
                    json!({"code": "InvalidObject", "message": "expected a JSON Patch of status/name"}),
                );
            };
            match desk.update(id, |t| t.status = status) {
                Some(t) => Answer::Json(200, cw_json(&t)),
                None => Answer::Json(404, json!({"code": "NotFound"})),
            }
        }
        _ => Answer::Json(404, json!({"code": "NotFound"})),
    }
}

/// Autotask PSA's REST API v1.0, the calls `ticket-autotask` makes.
pub struct FakeAutotask {
    pub desk: Arc<Desk>,
    pub server: PsaServer,
}

pub const AT_INTEGRATION_CODE: &str = "INTEGRATIONCODE123";
pub const AT_USERNAME: &str = "api-user@acme.example";
pub const AT_SECRET: &str = "at-secret";
pub const AT_RESPOND_BY: &str = "2026-12-01T21:00:00.000Z";
pub const AT_RESOLVE_BY: &str = "2026-12-02T04:00:00.000Z";

fn at_json(t: &FakeTicket) -> Value {
    json!({
        "id": t.id,
        "title": t.summary,
        "description": t.description,
        "externalID": t.external_ref,
        "status": t.status.parse::<i64>().unwrap_or(1),
        "companyID": t.placed["companyID"],
        "queueID": t.placed["queueID"],
        "priority": t.placed["priority"],
        "firstResponseDueDateTime": AT_RESPOND_BY,
        "resolvedDueDateTime": AT_RESOLVE_BY,
    })
}

impl FakeAutotask {
    pub fn start() -> FakeAutotask {
        let desk = Arc::new(Desk::default());
        let handler: Handler = {
            let desk = desk.clone();
            Arc::new(move |r: &Recorded| autotask(&desk, r))
        };
        FakeAutotask {
            desk,
            server: PsaServer::start(handler),
        }
    }
}

fn autotask(desk: &Desk, r: &Recorded) -> Answer {
    if desk.faults.down() {
        return Answer::Json(503, Value::Null);
    }
    if r.header("apiintegrationcode") != Some(AT_INTEGRATION_CODE)
        || r.header("username") != Some(AT_USERNAME)
        || r.header("secret") != Some(AT_SECRET)
    {
        return Answer::Json(401, json!({"errors": ["Unauthorized"]}));
    }
    let Some(path) = r.target.strip_prefix("/ATServicesRest/V1.0") else {
        return Answer::Json(404, Value::Null);
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let b = body_json(r);
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["Tickets", "query"]) => {
            let Some(f) = b
                .pointer("/filter/0")
                .filter(|f| f["op"] == "eq" && f["field"] == "externalID")
            else {
                return Answer::Json(500, json!({"errors": ["unsupported filter"]}));
            };
            let wanted = f["value"].as_str().unwrap_or_default();
            let items: Vec<Value> = desk.by_ref(wanted).iter().map(at_json).collect();
            Answer::Json(
                200,
                json!({ "items": items, "pageDetails": { "count": items.len() } }),
            )
        }
        ("POST", ["Tickets"]) => {
            for field in ["companyID", "queueID", "priority", "status"] {
                if !b[field].is_i64() {
                    return Answer::Json(500, json!({"errors": [format!("{field} is required")]}));
                }
            }
            if text(&b, "/title").is_empty() || text(&b, "/externalID").chars().count() > 50 {
                return Answer::Json(500, json!({"errors": ["title / externalID"]}));
            }
            let t = desk.create(FakeTicket {
                id: 0,
                external_ref: text(&b, "/externalID"),
                summary: text(&b, "/title"),
                description: text(&b, "/description"),
                notes: vec![],
                status: b["status"].to_string(),
                placed: json!({ "companyID": b["companyID"], "queueID": b["queueID"], "priority": b["priority"] }),
            });
            if desk.faults.lose_first_create.swap(false, Ordering::SeqCst) {
                return Answer::Hangup;
            }
            Answer::Json(200, json!({ "itemId": t.id }))
        }
        ("PATCH", ["Tickets"]) => {
            let id = b["id"].as_u64().unwrap_or(0);
            let status = b["status"].to_string();
            match desk.update(id, |t| t.status = status) {
                Some(t) => Answer::Json(200, json!({ "itemId": t.id })),
                None => Answer::Json(404, Value::Null),
            }
        }
        ("GET", ["Tickets", id]) => match desk.update(id.parse().unwrap_or(0), |_| {}) {
            Some(t) => Answer::Json(200, json!({ "item": at_json(&t) })),
            None => Answer::Json(404, Value::Null),
        },
        ("POST", ["Tickets", id, "Notes"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            if b["ticketID"].as_u64() != Some(id)
                || !b["noteType"].is_u64()
                || text(&b, "/title").is_empty()
            {
                return Answer::Json(500, json!({"errors": ["ticketID / noteType / title"]}));
            }
            let note = text(&b, "/description");
            match desk.update(id, |t| t.notes.push(note)) {
                Some(t) => Answer::Json(200, json!({ "itemId": t.notes.len() })),
                None => Answer::Json(404, Value::Null),
            }
        }
        _ => Answer::Json(404, Value::Null),
    }
}

/// HaloPSA's REST API with its OAuth2 client-credentials token endpoint.
pub struct FakeHalo {
    pub desk: Arc<Desk>,
    pub server: PsaServer,
}

pub const HALO_CLIENT_ID: &str = "halo-client";
pub const HALO_CLIENT_SECRET: &str = "halo-secret/with+chars";
/// The token the fake issues; the API refuses any other.
pub const HALO_TOKEN: &str = "fake-access-token-42";
pub const HALO_RESPOND_BY: &str = "2026-12-01T21:00:00";
pub const HALO_FIX_BY: &str = "2026-12-02T04:00:00";

fn halo_json(t: &FakeTicket) -> Value {
    json!({
        "id": t.id,
        "summary": t.summary,
        "details": t.description,
        "client_id": t.placed["client_id"],
        "tickettype_id": t.placed["tickettype_id"],
        "priority_id": t.placed["priority_id"],
        "status_id": t.status.parse::<i64>().unwrap_or(1),
        "respondbydate": HALO_RESPOND_BY,
        "fixbydate": HALO_FIX_BY,
    })
}

impl FakeHalo {
    pub fn start() -> FakeHalo {
        let desk = Arc::new(Desk::default());
        let handler: Handler = {
            let desk = desk.clone();
            Arc::new(move |r: &Recorded| halo(&desk, r))
        };
        FakeHalo {
            desk,
            server: PsaServer::start(handler),
        }
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn halo(desk: &Desk, r: &Recorded) -> Answer {
    if desk.faults.down() {
        return Answer::Json(503, Value::Null);
    }
    if r.target == "/auth/token" && r.method == "POST" {
        let f = form(&r.body);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if r.header("content-type") != Some("application/x-www-form-urlencoded")
            || get("grant_type") != Some("client_credentials")
            || get("client_id") != Some(HALO_CLIENT_ID)
            || get("client_secret") != Some(HALO_CLIENT_SECRET)
        {
            return Answer::Json(401, json!({"error": "invalid_client"}));
        }
        return Answer::Json(
            200,
            json!({ "access_token": HALO_TOKEN, "token_type": "Bearer", "expires_in": 3600 }),
        );
    }
    if r.header("authorization") != Some(format!("Bearer {HALO_TOKEN}").as_str()) {
        return Answer::Json(401, json!({"error": "invalid_token"}));
    }
    let Some(rest) = r.target.strip_prefix("/api") else {
        return Answer::Json(404, Value::Null);
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let b = body_json(r);
    match (r.method.as_str(), segments.as_slice()) {
        ("GET", ["Tickets"]) => {
            let search = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("search="))
                .map(decode)
                .unwrap_or_default();
            let hits: Vec<Value> = desk
                .tickets()
                .iter()
                .filter(|t| {
                    !search.is_empty()
                        && (t.description.contains(&search) || t.summary.contains(&search))
                })
                .map(halo_json)
                .collect();
            Answer::Json(200, json!({ "record_count": hits.len(), "tickets": hits }))
        }
        ("POST", ["Tickets"]) => {
            let Some(t) = b.as_array().filter(|a| a.len() == 1).map(|a| a[0].clone()) else {
                return Answer::Json(400, json!({"error": "expected a JSON array of one ticket"}));
            };
            if let Some(id) = t["id"].as_u64() {
                let status = t["status_id"].to_string();
                return match desk.update(id, |x| x.status = status) {
                    Some(x) => Answer::Json(201, halo_json(&x)),
                    None => Answer::Json(404, Value::Null),
                };
            }
            for field in ["client_id", "tickettype_id", "priority_id"] {
                if !t[field].is_i64() {
                    return Answer::Json(400, json!({"error": format!("{field} is required")}));
                }
            }
            let created = desk.create(FakeTicket {
                id: 0,
                external_ref: text(&t, "/details")
                    .lines()
                    .find_map(|l| l.strip_prefix("Warden reference: "))
                    .unwrap_or_default()
                    .to_string(),
                summary: text(&t, "/summary"),
                description: text(&t, "/details"),
                notes: vec![],
                status: "1".into(),
                placed: json!({ "client_id": t["client_id"], "tickettype_id": t["tickettype_id"],
                                "priority_id": t["priority_id"] }),
            });
            if desk.faults.lose_first_create.swap(false, Ordering::SeqCst) {
                return Answer::Hangup;
            }
            Answer::Json(201, halo_json(&created))
        }
        ("GET", ["Tickets", id]) => match desk.update(id.parse().unwrap_or(0), |_| {}) {
            Some(t) => Answer::Json(200, halo_json(&t)),
            None => Answer::Json(404, Value::Null),
        },
        ("POST", ["Actions"]) => {
            let Some(a) = b.as_array().and_then(|a| a.first()) else {
                return Answer::Json(400, json!({"error": "expected a JSON array"}));
            };
            let note = text(a, "/note");
            match desk.update(a["ticket_id"].as_u64().unwrap_or(0), |t| t.notes.push(note)) {
                Some(t) => Answer::Json(201, json!({ "id": t.notes.len(), "ticket_id": t.id })),
                None => Answer::Json(404, Value::Null),
            }
        }
        _ => Answer::Json(404, Value::Null),
    }
}
