//! The fleet's subject scheme, and the one permission template every agent gets from it.
//!
//! Per agent, with `<t>` its tenant and `<a>` its id (its user public key):
//!
//! | subject | who publishes | who subscribes |
//! | --- | --- | --- |
//! | `fleet.cmd.<t>.<a>` | controller | the agent |
//! | `fleet.res.<t>.<a>` and `fleet.res.<t>.<a>.>` | the agent (JetStream publish, PubAck) | the results stream |
//! | `fleet.hb.<t>.<a>` | the agent | controller |
//! | `fleet.evt.<t>.<a>` and `fleet.evt.<t>.<a>.>` | the agent | controller (or a stream) |
//! | `fleet.desired.<t>.<a>` | KV RePublish of bucket `desired` (key `<t>.<a>`) | the agent |
//! | `$JS.API.DIRECT.GET.KV_desired.$KV.desired.<t>.<a>` | the agent (Direct-Get of its own key) | the bucket's stream |
//! | `fleet.blob.<t>.<sha256>.<n>` | controller (chunks of a signed bundle) | stream `FLEET_BLOBS` |
//! | `$JS.API.DIRECT.GET.FLEET_BLOBS.fleet.blob.<t>.>` | the agent (Direct-Get of a chunk) | the blob stream |
//! | `fleet.renew.<t>.<a>` | the agent (request: a new JWT at half-life) | controller, replying to the agent's inbox |
//! | `_INBOX.<a>.>` | the server (replies: PubAcks, Direct-Get answers) | the agent |
//!
//! The agent must set its client's inbox prefix to [`inbox_prefix`]: the default `_INBOX.>`
//! would let it read every reply in its account, its tenant neighbours' included.
//!
//! Commands are one-way (the agent may not answer a command's reply subject); answers go to the
//! results stream, where they are durable and deduplicated.

use crate::ids::{AgentId, TenantId};
use crate::jwt::{Permission, Permissions, UserPermissionLimits};

pub const COMMANDS: &str = "fleet.cmd";
pub const RESULTS: &str = "fleet.res";
pub const HEARTBEATS: &str = "fleet.hb";
pub const EVENTS: &str = "fleet.evt";
pub const DESIRED: &str = "fleet.desired";
pub const BLOBS: &str = "fleet.blob";
/// The stream holding the blobs (chunks of signed bundles), one message per chunk subject.
pub const BLOBS_STREAM: &str = "FLEET_BLOBS";
pub const RENEWALS: &str = "fleet.renew";
/// The KV bucket holding the desired state; its stream is `KV_desired`, its keys
/// `<tenant>.<...>`, and it RePublishes `$KV.desired.>` to `fleet.desired.>`.
pub const DESIRED_BUCKET: &str = "desired";
/// Where the results stream takes its messages from.
pub const RESULTS_STREAM_SUBJECTS: &str = "fleet.res.>";

/// Subscriptions one agent may hold. It needs three (its commands, its tenant's announcements,
/// its reply inbox); the cap bounds what a stolen credential can make the server hold.
pub const MAX_AGENT_SUBSCRIPTIONS: i64 = 32;

/// Stands for the agent's id in a permission template: the server replaces it with the
/// connecting user's public key, which the connection proved it holds.
const AGENT: &str = "{{subject()}}";

pub fn command(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{COMMANDS}.{tenant}.{agent}")
}

pub fn result(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{RESULTS}.{tenant}.{agent}")
}

pub fn heartbeat(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{HEARTBEATS}.{tenant}.{agent}")
}

pub fn renewal(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{RENEWALS}.{tenant}.{agent}")
}

pub fn event(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{EVENTS}.{tenant}.{agent}")
}

/// The agent's desired-state notices (the RePublish of its own key).
pub fn desired(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{DESIRED}.{tenant}.{agent}")
}

/// The Direct-Get (last message) of the agent's own desired-state key `<tenant>.<agent>`.
pub fn desired_direct_get(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{}.{tenant}.{agent}", desired_direct_get_root())
}

/// Chunk `n` (from 0) of the blob with digest `sha256`, stored for `tenant`.
pub fn blob_chunk(tenant: &TenantId, sha256: &str, n: u32) -> String {
    format!("{BLOBS}.{tenant}.{sha256}.{n}")
}

/// Every chunk of one blob: what collecting it purges.
pub fn blob_chunks(tenant: &TenantId, sha256: &str) -> String {
    format!("{BLOBS}.{tenant}.{sha256}.>")
}

/// The first chunk of every blob: one subject per stored blob.
pub fn blob_first_chunks() -> String {
    format!("{BLOBS}.*.*.0")
}

/// The tenant and digest of a blob chunk's subject; `None` for anything else.
pub fn parse_blob_chunk(subject: &str) -> Option<(TenantId, String)> {
    let rest = subject.strip_prefix(BLOBS)?.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let (tenant, sha256, _n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || sha256.len() != 64
        || !sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some((TenantId::new(tenant.to_string()).ok()?, sha256.to_string()))
}

/// Every chunk subject of the blob stream.
pub fn blob_stream_subjects() -> String {
    format!("{BLOBS}.>")
}

/// The Direct-Get (last message) of a blob chunk.
pub fn blob_direct_get(tenant: &TenantId, sha256: &str, n: u32) -> String {
    format!(
        "{}.{}",
        blob_direct_get_root(),
        blob_chunk(tenant, sha256, n)
    )
}

fn blob_direct_get_root() -> String {
    format!("$JS.API.DIRECT.GET.{BLOBS_STREAM}")
}

/// The agent's reply inbox prefix (`async_nats::ConnectOptions::custom_inbox_prefix`).
pub fn inbox_prefix(agent: &AgentId) -> String {
    format!("_INBOX.{agent}")
}

fn desired_direct_get_root() -> String {
    format!("$JS.API.DIRECT.GET.KV_{DESIRED_BUCKET}.$KV.{DESIRED_BUCKET}")
}

/// What crosses from the fleet (controller) account into a tenant's account, and back: the
/// tenant account imports exactly its own slice of each, the fleet account exports the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Fleet -> tenant, no replies (a NATS stream export).
    ToTenant,
    /// Tenant -> fleet, with one reply back (a NATS service export: PubAcks, Direct-Get).
    ToFleet,
}

/// `(name, subject prefix, flow)`; the exported subject is `<prefix>.>` and a tenant imports
/// `<prefix>.<tenant>.>`.
pub(crate) fn shared_subjects() -> Vec<(&'static str, String, Flow)> {
    vec![
        ("commands", COMMANDS.to_string(), Flow::ToTenant),
        ("desired", DESIRED.to_string(), Flow::ToTenant),
        ("results", RESULTS.to_string(), Flow::ToFleet),
        ("heartbeats", HEARTBEATS.to_string(), Flow::ToFleet),
        ("events", EVENTS.to_string(), Flow::ToFleet),
        ("renewals", RENEWALS.to_string(), Flow::ToFleet),
        ("desired-get", desired_direct_get_root(), Flow::ToFleet),
        (
            "blob-get",
            format!("{}.{BLOBS}", blob_direct_get_root()),
            Flow::ToFleet,
        ),
    ]
}

/// The permissions of every agent of `tenant`, as the template of the tenant's scoped signing
/// key: the user JWTs carry none, the server expands this for each connection. Allow lists only,
/// so anything not listed is denied; the tenant is written in, the agent is `{{subject()}}`.
pub(crate) fn agent_template(tenant: &TenantId) -> UserPermissionLimits {
    let own = |prefix: &str| format!("{prefix}.{tenant}.{AGENT}");
    UserPermissionLimits {
        permissions: Permissions {
            publish: Permission {
                allow: vec![
                    own(RESULTS),
                    format!("{}.>", own(RESULTS)),
                    own(HEARTBEATS),
                    own(RENEWALS),
                    own(EVENTS),
                    format!("{}.>", own(EVENTS)),
                    // Its own desired document only; blobs of its tenant (a blob is a signed
                    // bundle any agent of the tenant may be sent, named by its digest).
                    format!("{}.{tenant}.{AGENT}", desired_direct_get_root()),
                    format!("{}.{BLOBS}.{tenant}.>", blob_direct_get_root()),
                ],
                deny: Vec::new(),
            },
            subscribe: Permission {
                allow: vec![own(COMMANDS), own(DESIRED), format!("_INBOX.{AGENT}.>")],
                deny: Vec::new(),
            },
            response: None,
        },
        subs: Some(MAX_AGENT_SUBSCRIPTIONS),
        data: Some(crate::jwt::NO_LIMIT),
        payload: Some(crate::jwt::NO_LIMIT),
        bearer_token: false,
        // Plain client connections only: an agent's credential cannot attach a leaf node,
        // websocket or MQTT client (a later site relay gets its own role).
        allowed_connection_types: vec!["STANDARD".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_subject_names_its_tenant_and_itself() {
        let t = TenantId::new("acme").expect("tenant");
        let a = AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent");
        assert_eq!(command(&t, &a), format!("fleet.cmd.acme.{a}"));
        assert_eq!(result(&t, &a), format!("fleet.res.acme.{a}"));
        assert_eq!(heartbeat(&t, &a), format!("fleet.hb.acme.{a}"));
        assert_eq!(desired(&t, &a), format!("fleet.desired.acme.{a}"));
        assert_eq!(
            desired_direct_get(&t, &a),
            format!("$JS.API.DIRECT.GET.KV_desired.$KV.desired.acme.{a}")
        );
        assert_eq!(
            blob_direct_get(&t, "ab", 3),
            "$JS.API.DIRECT.GET.FLEET_BLOBS.fleet.blob.acme.ab.3"
        );
        let sha = "c".repeat(64);
        assert_eq!(
            parse_blob_chunk(&blob_chunk(&t, &sha, 0)),
            Some((t.clone(), sha.clone()))
        );
        assert_eq!(blob_chunks(&t, &sha), format!("fleet.blob.acme.{sha}.>"));
        for bad in [
            "fleet.blob.acme.ab.0".to_string(),
            format!("fleet.blob.acme.{sha}"),
            format!("fleet.blob.acme.{sha}.0.1"),
            format!("fleet.blob.Ac!me.{sha}.0"),
            format!("fleet.res.acme.{sha}.0"),
        ] {
            assert_eq!(parse_blob_chunk(&bad), None, "{bad}");
        }
        let template = agent_template(&t);
        let all: Vec<&String> = template
            .permissions
            .publish
            .allow
            .iter()
            .chain(&template.permissions.subscribe.allow)
            .collect();
        for subject in all {
            let tokens: Vec<&str> = subject.split('.').collect();
            assert!(
                tokens.contains(&"acme") || subject.starts_with("_INBOX.{{subject()}}."),
                "{subject} is not confined to the tenant"
            );
            // Only a trailing `>` below the tenant or the agent, never a `*` or a bare `>`.
            assert!(!tokens.contains(&"*"), "{subject}");
            let tail_ok = tokens.iter().position(|t| *t == ">").is_none_or(|i| {
                i == tokens.len() - 1
                    && (tokens[..i].contains(&"acme") || tokens[..i].contains(&AGENT))
            });
            assert!(tail_ok, "{subject}");
        }
    }
}
