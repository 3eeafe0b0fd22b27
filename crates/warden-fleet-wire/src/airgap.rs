//! Air-gapped sites (issue 16): the two files carried by hand between a controller and agents
//! that may not talk out.
//!
//! - A **kit** (`.wkit`, [`Kit`]): what `warden fleet export` writes for the agents of one
//!   tenant: each agent's whole [`DesiredState`] (the same document the KV bucket holds) and
//!   the signed bundles it names, byte for byte as published, each once. The controller signs
//!   none of it: every bundle carries its publisher's signatures and the agent verifies them
//!   against its own trust policy exactly as it does online. Each agent's entry also carries
//!   the controller's acknowledgement of the results it imported from that agent
//!   ([`KitAgent::imported_through`]), so the agent may forget them.
//! - A **results file** (`.wres`, [`ResultsFile`]): what `warden kit collect` writes on the
//!   agent: its pending outbox (run results, deploy reports, events, each with the subject and
//!   `Nats-Msg-Id` it would have been published with) and its audit log's head, signed with
//!   the agent's own fleet key (the one it enrolled with, so the controller knows it).
//!
//! Both are one binary container: an 8-byte magic (kind and format version), a big-endian
//! `u32` length and that many bytes of JSON (the manifest, a [`Message`] with `"v"`, checked
//! for size and bounds like every message of the wire), then the kit's blobs back to back in
//! the manifest's order (sizes from the manifest), or the results file's signature (a `u32`
//! length and the ed25519 signature over everything before it). Every length is bounded
//! before anything is allocated; a file with bytes left over, a blob whose SHA-256 is not the
//! manifest's, or a signature that does not verify is refused.

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warden_fleet_identity::{AgentId, TenantId};

use crate::codec::{Malformed, Message, WireError, check_text, decode, encode};
use crate::desired::{DesiredState, MAX_BLOB_BYTES, is_sha256};
use crate::time::UnixMillis;

/// The first bytes of a kit: `WKIT`, then the container's format version.
pub const KIT_MAGIC: &[u8; 8] = b"WKIT\0\0\0\x01";
/// The first bytes of a results file: `WRES`, then the container's format version.
pub const RESULTS_MAGIC: &[u8; 8] = b"WRES\0\0\0\x01";
/// Largest kit: 256 MiB. Its blobs are the distinct bundles of one tenant's desired state
/// (each at most [`MAX_BLOB_BYTES`]); a kit is read whole into memory on both sides.
pub const MAX_KIT_BYTES: u64 = 256 * 1024 * 1024;
/// Largest kit manifest: 16 MiB, room for [`MAX_KIT_AGENTS`] desired documents of a few
/// hundred bytes each (one at its bound is 64 KiB).
pub const MAX_KIT_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// Agents one kit carries at most.
pub const MAX_KIT_AGENTS: usize = 10_000;
/// Distinct bundles one kit carries at most.
pub const MAX_KIT_BLOBS: usize = 1_000;
/// Largest results file: 64 MiB. An outbox holds at most `outbox-cap` entries (10,000 by
/// default) of at most 64 KiB each; a results file over this cap is refused unread.
pub const MAX_RESULTS_BYTES: u64 = 64 * 1024 * 1024;
/// Entries one results file carries at most (the outbox's largest cap).
pub const MAX_RESULTS_ENTRIES: usize = 100_000;
/// Largest payload of one entry: the largest message of the results stream (a run result).
pub const MAX_ENTRY_PAYLOAD_BYTES: usize = crate::result::MAX_RESULT_BYTES;
/// What the agent's signature covers besides the file: a results file's signature can never
/// pass for a signature of anything else the agent's key signs (renewal requests, nonces).
pub const RESULTS_SIGNATURE_CONTEXT: &[u8] = b"warden-offline-results-v1\0";
/// Largest subject or `Nats-Msg-Id` of an entry.
const MAX_ENTRY_TEXT: usize = 512;
/// Largest `created_by` of a kit.
const MAX_CREATED_BY: usize = 256;
/// An ed25519 signature.
const SIGNATURE_BYTES: usize = 64;

/// Why bytes are not a kit or a results file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("not a {expected}: it does not start with its magic bytes")]
    NotThisFile { expected: &'static str },
    #[error("the {what} is {len} bytes, over its cap of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("the {what} is cut short")]
    Truncated { what: &'static str },
    #[error("{0} byte(s) after the end of the file's content")]
    Trailing(usize),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("blob {sha256}: its bytes hash to {found}")]
    BlobMismatch { sha256: String, found: String },
    #[error("the desired state of {agent} names bundle {sha256}, which the kit does not carry")]
    BlobMissing { agent: String, sha256: String },
    #[error("the results file's signature does not verify against agent {0}'s key")]
    BadSignature(String),
    #[error("the results file cannot be signed: {0}")]
    Sign(String),
}

// ---- kit ------------------------------------------------------------------------------------

/// The manifest of a kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitManifest {
    pub v: u32,
    pub tenant: TenantId,
    pub created_at: UnixMillis,
    /// The operator who exported it (for the audit logs on both sides).
    pub created_by: String,
    pub agents: Vec<KitAgent>,
    /// The blobs that follow the manifest, in this order.
    pub blobs: Vec<KitBlob>,
}

/// One agent's part of a kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitAgent {
    pub desired: DesiredState,
    /// The highest outbox entry id of this agent's results files the controller imported
    /// (their [`ResultsBody::through`]); the agent may forget its entries up to it. `None`:
    /// nothing imported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_through: Option<u64>,
}

/// A bundle in a kit, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitBlob {
    pub sha256: String,
    pub size: u64,
}

impl Message for KitManifest {
    const KIND: &'static str = "kit manifest";
    const MAX_BYTES: usize = MAX_KIT_MANIFEST_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        check_text("created_by", &self.created_by, MAX_CREATED_BY)?;
        if self.agents.len() > MAX_KIT_AGENTS {
            return Err(Malformed::new(
                "agents",
                format!("{} agents, at most {MAX_KIT_AGENTS}", self.agents.len()),
            ));
        }
        if self.blobs.len() > MAX_KIT_BLOBS {
            return Err(Malformed::new(
                "blobs",
                format!("{} blobs, at most {MAX_KIT_BLOBS}", self.blobs.len()),
            ));
        }
        let mut total = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.blobs {
            if !is_sha256(&b.sha256) {
                return Err(Malformed::new(
                    "blobs.sha256",
                    "not a lowercase hex SHA-256",
                ));
            }
            if b.size > MAX_BLOB_BYTES {
                return Err(Malformed::new(
                    "blobs.size",
                    format!("{} bytes, at most {MAX_BLOB_BYTES}", b.size),
                ));
            }
            if !seen.insert(&b.sha256) {
                return Err(Malformed::new("blobs", format!("{} twice", b.sha256)));
            }
            total = total.saturating_add(b.size);
        }
        if total > MAX_KIT_BYTES {
            return Err(Malformed::new(
                "blobs",
                format!("{total} bytes in all, at most {MAX_KIT_BYTES}"),
            ));
        }
        for a in &self.agents {
            if a.desired.tenant != self.tenant {
                return Err(Malformed::new(
                    "agents.desired.tenant",
                    format!("{}, the kit is for {}", a.desired.tenant, self.tenant),
                ));
            }
            a.desired
                .check()
                .map_err(|m| Malformed::new(format!("agents.desired.{}", m.field), m.problem))?;
        }
        Ok(())
    }
}

/// A kit: its manifest and its blobs (checked against their digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kit {
    pub manifest: KitManifest,
    /// In the manifest's order: `(sha256, bytes)`.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Kit {
    /// The kit's bytes. Refused if the manifest breaks its bounds, a blob is not what the
    /// manifest says, or a desired document names a blob the kit does not carry.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FileError> {
        self.check_blobs()?;
        let manifest = encode(&self.manifest)?;
        let total: usize = self.blobs.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(KIT_MAGIC.len() + 4 + manifest.len() + total);
        out.extend_from_slice(KIT_MAGIC);
        push_framed(&mut out, &manifest, "kit manifest")?;
        for (_, bytes) in &self.blobs {
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Read a kit: magic, bounded manifest, each blob's size and SHA-256, nothing left over.
    pub fn parse(bytes: &[u8]) -> Result<Kit, FileError> {
        let rest = open_file(bytes, MAX_KIT_BYTES, KIT_MAGIC, "warden kit (.wkit)")?;
        let (manifest, mut rest) = take_framed(rest, MAX_KIT_MANIFEST_BYTES, "kit manifest")?;
        let manifest: KitManifest = decode(manifest)?;
        let mut blobs = Vec::with_capacity(manifest.blobs.len());
        for b in &manifest.blobs {
            // The manifest's check bounded every size.
            let size =
                usize::try_from(b.size).map_err(|_| FileError::Truncated { what: "blob" })?;
            if rest.len() < size {
                return Err(FileError::Truncated { what: "blob" });
            }
            let (blob, tail) = rest.split_at(size);
            blobs.push((b.sha256.clone(), blob.to_vec()));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(FileError::Trailing(rest.len()));
        }
        let kit = Kit { manifest, blobs };
        kit.check_blobs()?;
        Ok(kit)
    }

    /// The bytes of blob `sha256`, if the kit carries it.
    pub fn blob(&self, sha256: &str) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|(s, _)| s == sha256)
            .map(|(_, b)| b.as_slice())
    }

    /// The part of the kit for `agent`.
    pub fn agent(&self, agent: &AgentId) -> Option<&KitAgent> {
        self.manifest
            .agents
            .iter()
            .find(|a| &a.desired.agent == agent)
    }

    fn check_blobs(&self) -> Result<(), FileError> {
        if self.blobs.len() != self.manifest.blobs.len() {
            return Err(FileError::Truncated { what: "blob list" });
        }
        for ((sha256, bytes), declared) in self.blobs.iter().zip(&self.manifest.blobs) {
            let found = sha256_hex(bytes);
            let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            if *sha256 != declared.sha256 || found != declared.sha256 || size != declared.size {
                return Err(FileError::BlobMismatch {
                    sha256: declared.sha256.clone(),
                    found,
                });
            }
        }
        for a in &self.manifest.agents {
            let d = &a.desired;
            let named = d
                .plugins
                .iter()
                .map(|p| &p.sha256)
                .chain(d.runbooks.iter().map(|r| &r.sha256))
                .chain(d.policy.iter().map(|p| &p.sha256));
            for sha256 in named {
                if self.blob(sha256).is_none() {
                    return Err(FileError::BlobMissing {
                        agent: d.agent.to_string(),
                        sha256: sha256.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

// ---- results --------------------------------------------------------------------------------

/// The agent's audit log head when it collected: the hash chain's last record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    /// sha256 of that record's line, hex.
    pub hash: String,
    pub at: UnixMillis,
}

/// One outbox entry, as the publisher would have sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsEntry {
    /// The agent's outbox id (increasing).
    pub id: u64,
    /// `result` (the results stream: run results and deploy reports) or `event`.
    pub kind: String,
    pub subject: String,
    pub msg_id: String,
    /// The message's JSON, base64.
    pub payload: String,
}

impl ResultsEntry {
    /// The message's bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, Malformed> {
        BASE64
            .decode(self.payload.as_bytes())
            .map_err(|e| Malformed::new("entries.payload", format!("not base64: {e}")))
    }

    /// An entry of `payload`.
    pub fn new(id: u64, kind: &str, subject: &str, msg_id: &str, payload: &[u8]) -> ResultsEntry {
        ResultsEntry {
            id,
            kind: kind.to_string(),
            subject: subject.to_string(),
            msg_id: msg_id.to_string(),
            payload: BASE64.encode(payload),
        }
    }
}

/// What an agent's results file says (the signed part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsBody {
    pub v: u32,
    pub tenant: TenantId,
    pub agent: AgentId,
    pub created_at: UnixMillis,
    /// The highest outbox id in `entries` (or the one acknowledged before, when none is new):
    /// what the controller acknowledges back in the next kit.
    pub through: u64,
    pub audit_head: AuditHead,
    pub entries: Vec<ResultsEntry>,
}

impl Message for ResultsBody {
    const KIND: &'static str = "results file";
    // The body is the file less its magic, frame and signature.
    const MAX_BYTES: usize = MAX_RESULTS_BYTES as usize - 256;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        if self.entries.len() > MAX_RESULTS_ENTRIES {
            return Err(Malformed::new(
                "entries",
                format!(
                    "{} entries, at most {MAX_RESULTS_ENTRIES}",
                    self.entries.len()
                ),
            ));
        }
        if !is_sha256(&self.audit_head.hash) {
            return Err(Malformed::new(
                "audit_head.hash",
                "not a lowercase hex SHA-256",
            ));
        }
        let mut last = 0u64;
        for e in &self.entries {
            if e.id <= last {
                return Err(Malformed::new("entries.id", "not increasing"));
            }
            last = e.id;
            if e.kind != "result" && e.kind != "event" {
                return Err(Malformed::new(
                    "entries.kind",
                    format!("{:?}, not result or event", e.kind),
                ));
            }
            check_text("entries.subject", &e.subject, MAX_ENTRY_TEXT)?;
            check_text("entries.msg_id", &e.msg_id, MAX_ENTRY_TEXT)?;
            // base64 is 4/3 of the bytes.
            if e.payload.len() > MAX_ENTRY_PAYLOAD_BYTES / 3 * 4 + 4 {
                return Err(Malformed::new(
                    "entries.payload",
                    format!("over {MAX_ENTRY_PAYLOAD_BYTES} bytes"),
                ));
            }
        }
        if last > self.through {
            return Err(Malformed::new(
                "through",
                format!("{} is below the last entry's id {last}", self.through),
            ));
        }
        Ok(())
    }
}

/// A results file: the body and the agent's signature over it, verified on parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsFile {
    pub body: ResultsBody,
    /// sha256 of the whole file, hex (what the audit logs name it by).
    pub sha256: String,
}

impl ResultsFile {
    /// The file's bytes, signed by `sign` (the agent's key over the context and the
    /// unsigned part: see [`RESULTS_SIGNATURE_CONTEXT`]).
    pub fn sign(
        body: &ResultsBody,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<Vec<u8>, FileError> {
        let encoded = encode(body)?;
        let mut out = Vec::with_capacity(RESULTS_MAGIC.len() + 8 + encoded.len() + 64);
        out.extend_from_slice(RESULTS_MAGIC);
        push_framed(&mut out, &encoded, "results body")?;
        let signature = sign(&signed_bytes(&out)).map_err(FileError::Sign)?;
        push_framed(&mut out, &signature, "signature")?;
        Ok(out)
    }

    /// Read a results file and verify its signature against the key of the agent it names
    /// (its id is its public key). Whether that agent is enrolled and not revoked is the
    /// reader's to check.
    pub fn parse(bytes: &[u8]) -> Result<ResultsFile, FileError> {
        let rest = open_file(
            bytes,
            MAX_RESULTS_BYTES,
            RESULTS_MAGIC,
            "warden results file (.wres)",
        )?;
        let (body_bytes, rest) = take_framed(rest, ResultsBody::MAX_BYTES, "results body")?;
        let signed_len = bytes.len() - rest.len();
        let (signature, rest) = take_framed(rest, SIGNATURE_BYTES, "signature")?;
        if !rest.is_empty() {
            return Err(FileError::Trailing(rest.len()));
        }
        // The signature first: nothing of an unsigned body is parsed beyond its agent id.
        let agent = peek_agent(body_bytes)?;
        let verifies = nkeys::KeyPair::from_public_key(agent.as_str())
            .and_then(|key| key.verify(&signed_bytes(&bytes[..signed_len]), signature))
            .is_ok();
        if !verifies {
            return Err(FileError::BadSignature(agent.to_string()));
        }
        let body: ResultsBody = decode(body_bytes)?;
        Ok(ResultsFile {
            body,
            sha256: sha256_hex(bytes),
        })
    }
}

/// The agent a results body names, read alone (the signature is checked against it before
/// the body is trusted for anything else).
fn peek_agent(body: &[u8]) -> Result<AgentId, FileError> {
    #[derive(Deserialize)]
    struct Peek {
        agent: AgentId,
    }
    serde_json::from_slice::<Peek>(body)
        .map(|p| p.agent)
        .map_err(|e| {
            FileError::Wire(WireError::Unparsable {
                kind: ResultsBody::KIND,
                cause: e.to_string(),
            })
        })
}

fn signed_bytes(unsigned: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RESULTS_SIGNATURE_CONTEXT.len() + unsigned.len());
    out.extend_from_slice(RESULTS_SIGNATURE_CONTEXT);
    out.extend_from_slice(unsigned);
    out
}

// ---- the container --------------------------------------------------------------------------

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

/// The file's content after its magic, if it is at most `max` bytes and starts with `magic`.
fn open_file<'a>(
    bytes: &'a [u8],
    max: u64,
    magic: &[u8; 8],
    expected: &'static str,
) -> Result<&'a [u8], FileError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > max {
        return Err(FileError::TooLarge {
            what: expected,
            len,
            max,
        });
    }
    bytes
        .strip_prefix(magic.as_slice())
        .ok_or(FileError::NotThisFile { expected })
}

fn push_framed(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), FileError> {
    let len = u32::try_from(bytes.len()).map_err(|_| FileError::TooLarge {
        what,
        len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        max: u64::from(u32::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A `u32` length and that many bytes, at most `max`; and what follows.
fn take_framed<'a>(
    bytes: &'a [u8],
    max: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), FileError> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(FileError::Truncated { what })?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > max {
        return Err(FileError::TooLarge {
            what,
            len: len as u64,
            max: max as u64,
        });
    }
    if rest.len() < len {
        return Err(FileError::Truncated { what });
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WIRE_VERSION;
    use crate::desired::DesiredPlugin;

    fn ids() -> (TenantId, nkeys::KeyPair, AgentId) {
        let key = nkeys::KeyPair::new_user();
        let id = AgentId::new(key.public_key()).expect("id");
        (TenantId::new("acme").expect("tenant"), key, id)
    }

    fn kit(tenant: &TenantId, agent: &AgentId, blob: &[u8]) -> Kit {
        let sha256 = sha256_hex(blob);
        let mut desired = DesiredState::new(tenant.clone(), agent.clone(), UnixMillis(1));
        desired.plugins.push(DesiredPlugin {
            name: "disk-usage".into(),
            version: "0.2.0".into(),
            sha256: sha256.clone(),
            size: blob.len() as u64,
        });
        Kit {
            manifest: KitManifest {
                v: WIRE_VERSION,
                tenant: tenant.clone(),
                created_at: UnixMillis(2),
                created_by: "noc".into(),
                agents: vec![KitAgent {
                    desired,
                    imported_through: Some(3),
                }],
                blobs: vec![KitBlob {
                    sha256,
                    size: blob.len() as u64,
                }],
            },
            blobs: vec![(sha256_hex(blob), blob.to_vec())],
        }
    }

    #[test]
    fn a_kit_round_trips_and_any_changed_or_missing_byte_is_refused() {
        let (tenant, _, agent) = ids();
        let kit = kit(&tenant, &agent, b"a signed bundle");
        let bytes = kit.to_bytes().expect("bytes");
        assert_eq!(Kit::parse(&bytes).expect("parses"), kit);
        assert_eq!(
            kit.blob(&sha256_hex(b"a signed bundle")),
            Some(&b"a signed bundle"[..])
        );

        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(matches!(
            Kit::parse(&changed),
            Err(FileError::BlobMismatch { .. })
        ));
        assert!(matches!(
            Kit::parse(&bytes[..bytes.len() - 1]),
            Err(FileError::Truncated { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Kit::parse(&longer), Err(FileError::Trailing(1)));
        assert!(matches!(
            Kit::parse(b"WRES\0\0\0\x01"),
            Err(FileError::NotThisFile { .. })
        ));
        // A document naming a bundle the kit does not carry.
        let mut missing = kit.clone();
        missing.manifest.blobs.clear();
        missing.blobs.clear();
        assert!(matches!(
            missing.to_bytes(),
            Err(FileError::BlobMissing { .. })
        ));
    }

    #[test]
    fn kit_bounds_are_checked_before_anything_is_allocated() {
        // A manifest length over the cap is refused from its four bytes.
        let mut huge = KIT_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Kit::parse(&huge),
            Err(FileError::TooLarge {
                what: "kit manifest",
                ..
            })
        ));
        // A blob declared over the distributed cap.
        let (tenant, _, agent) = ids();
        let mut big = kit(&tenant, &agent, b"x");
        big.manifest.blobs[0].size = MAX_BLOB_BYTES + 1;
        assert!(matches!(
            encode(&big.manifest),
            Err(WireError::Malformed(_, _))
        ));
        // Another tenant's document in the kit.
        let mut other = kit(&tenant, &agent, b"x");
        other.manifest.agents[0].desired.tenant = TenantId::new("globex").expect("t");
        assert!(encode(&other.manifest).is_err());
    }

    fn body(tenant: &TenantId, agent: &AgentId) -> ResultsBody {
        ResultsBody {
            v: WIRE_VERSION,
            tenant: tenant.clone(),
            agent: agent.clone(),
            created_at: UnixMillis(5),
            through: 7,
            audit_head: AuditHead {
                seq: 12,
                hash: "a".repeat(64),
                at: UnixMillis(4),
            },
            entries: vec![
                ResultsEntry::new(6, "result", "fleet.res.acme.U", "m6", b"{}"),
                ResultsEntry::new(7, "event", "fleet.evt.acme.U", "m7", b"{}"),
            ],
        }
    }

    #[test]
    fn a_results_file_verifies_only_unchanged_and_by_the_agent_it_names() {
        let (tenant, key, agent) = ids();
        let sign = |k: &nkeys::KeyPair| {
            let k = nkeys::KeyPair::from_seed(&k.seed().expect("seed")).expect("key");
            move |b: &[u8]| k.sign(b).map_err(|e| e.to_string())
        };
        let b = body(&tenant, &agent);
        let bytes = ResultsFile::sign(&b, sign(&key)).expect("signed");
        let file = ResultsFile::parse(&bytes).expect("verifies");
        assert_eq!(file.body, b);
        assert_eq!(file.sha256, sha256_hex(&bytes));
        assert_eq!(
            file.body.entries[0].payload_bytes().expect("b64"),
            b"{}".to_vec()
        );

        // Any byte of the body changed: the signature fails.
        let at = bytes
            .windows(2)
            .position(|w| w == b"m6")
            .expect("the msg id is in the body");
        let mut tampered = bytes.clone();
        tampered[at + 1] = b'9';
        assert_eq!(
            ResultsFile::parse(&tampered),
            Err(FileError::BadSignature(agent.to_string()))
        );
        // Signed by another key than the one of the agent it names.
        let (_, other, _) = ids();
        let forged = ResultsFile::sign(&b, sign(&other)).expect("signed");
        assert!(matches!(
            ResultsFile::parse(&forged),
            Err(FileError::BadSignature(_))
        ));
        // Cut, lengthened, oversized.
        assert!(matches!(
            ResultsFile::parse(&bytes[..bytes.len() - 3]),
            Err(FileError::Truncated { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(1);
        assert_eq!(ResultsFile::parse(&longer), Err(FileError::Trailing(1)));
        let mut huge = RESULTS_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            ResultsFile::parse(&huge),
            Err(FileError::TooLarge { .. })
        ));
        // Entries out of order, or beyond `through`, are malformed.
        let mut disordered = b.clone();
        disordered.entries.swap(0, 1);
        assert!(ResultsFile::sign(&disordered, sign(&key)).is_err());
        let mut beyond = b;
        beyond.through = 6;
        assert!(ResultsFile::sign(&beyond, sign(&key)).is_err());
    }
}
