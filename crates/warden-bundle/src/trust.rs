//! Deciding whether this agent accepts a bundle: signatures from trusted publisher keys (strict
//! ed25519 verification, each key counted once), the keys' scope (plugin names, capability
//! ceiling), the statement's integrity (component hash and length, manifest), expiry, rollback.

use super::{Bundle, STATEMENT_FORMAT, keys};
use ed25519_dalek::Signature;
use serde::Serialize;
use std::collections::BTreeSet;
use warden_core::Capability;
use warden_core::manifest::Manifest;
use warden_core::names::validate_plugin_name;
use warden_core::policy::{SitePolicy, TrustedKey};
use warden_core::sha256_hex;

/// Why a bundle is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum TrustError {
    #[error(
        "the bundle is unsigned, and unsigned plugins are accepted only in development mode (trust.allow-unsigned)"
    )]
    Unsigned,
    #[error("signed only by keys this agent does not trust: {}", key_ids.join(", "))]
    UnknownKey { key_ids: Vec<String> },
    #[error(
        "signature by key {key_id} does not match the signed statement: the bundle was changed after signing, or the signature is for other bytes"
    )]
    BadSignature { key_id: String },
    #[error("the component is not the one that was signed (sha256 or length differs)")]
    ComponentMismatch,
    #[error("the statement is malformed: {message}")]
    BadStatement { message: String },
    #[error("needs signatures from {needed} distinct trusted keys, has {have}")]
    NotEnoughSignatures { needed: u32, have: u32 },
    #[error("key `{key}` may not sign plugin `{plugin}`")]
    KeyNotAllowedForPlugin { key: String, plugin: String },
    #[error("key `{key}` may not sign plugins requesting `{capability}`")]
    CapabilityAboveKeyCeiling { key: String, capability: String },
    #[error("the signed statement expired at {expires_at} (seconds since the epoch)")]
    Expired { expires_at: u64 },
    #[error(
        "rollback refused: version {offered} is lower than {highest}, the highest ever installed"
    )]
    Rollback { offered: String, highest: String },
    #[error(
        "this agent trusts no policy key (trust.policy-keys in its site policy file): its policy changes only there"
    )]
    NoPolicyKeys,
    #[error(
        "version {version} of the site policy was applied already with other contents: a change needs a higher version"
    )]
    PolicyVersionReused { version: String },
    #[error("the site policy is invalid: {message}")]
    PolicyInvalid { message: String },
    #[error("a distributed site policy may not set `{field}`: it stays in the agent's own file")]
    PolicyLocalOnly { field: String },
}

/// One signature, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    pub key_id: String,
    /// The trusted key's name in the site policy, when it is trusted.
    pub trusted_as: Option<String>,
    pub valid: bool,
}

/// A bundle this agent accepts.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub manifest: Manifest,
    /// Names of the trusted keys whose signatures counted; empty in development mode.
    pub signers: Vec<String>,
    pub unsigned: bool,
}

fn matches_name(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches(name)))
}

/// Check every signature against the policy's trusted keys.
pub fn check_signatures(
    bundle: &Bundle,
    policy: &SitePolicy,
) -> Vec<(SignatureCheck, Option<TrustedKey>)> {
    let message = Bundle::signed_message(&bundle.statement_text);
    bundle
        .signatures
        .iter()
        .map(|s| {
            let (key, key_id, valid) = verify_one(s, &message);
            let trusted = key.as_ref().and_then(|k| {
                policy
                    .trust
                    .keys
                    .iter()
                    .find(|t| keys::parse_public(&t.public_key).is_ok_and(|tk| tk == *k))
                    .cloned()
            });
            (
                SignatureCheck {
                    key_id,
                    trusted_as: trusted.as_ref().map(|t| t.name.clone()),
                    valid,
                },
                trusted,
            )
        })
        .collect()
}

/// One signature over `message` (strict ed25519): the signer's key when it parses, its id, and
/// whether the signature is valid.
pub(crate) fn verify_one(
    s: &crate::BundleSignature,
    message: &[u8],
) -> (Option<ed25519_dalek::VerifyingKey>, String, bool) {
    let key = keys::parse_public(&s.public_key).ok();
    let key_id = key
        .as_ref()
        .map(keys::key_id)
        .unwrap_or_else(|| "malformed-key".into());
    let signature = hex::decode(&s.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok());
    let valid = match (&key, signature) {
        (Some(k), Some(sig)) => k.verify_strict(message, &sig).is_ok(),
        _ => false,
    };
    (key, key_id, valid)
}

/// The trusted keys whose valid signatures count for `name` requesting `requested`, each key
/// once; `(signers, unsigned)`, where unsigned is allowed only in development mode.
fn count_signers(
    bundle: &Bundle,
    policy: &SitePolicy,
    name: &str,
    requested: &BTreeSet<Capability>,
) -> Result<(Vec<String>, bool), TrustError> {
    let checks = check_signatures(bundle, policy);
    let mut signers = Vec::new();
    let mut unsigned = false;
    if checks.is_empty() {
        if !policy.trust.allow_unsigned {
            return Err(TrustError::Unsigned);
        }
        unsigned = true;
    } else {
        // A trusted key whose signature fails means the bundle was tampered with: refuse outright.
        if let Some((c, _)) = checks.iter().find(|(c, t)| t.is_some() && !c.valid) {
            return Err(TrustError::BadSignature {
                key_id: c.key_id.clone(),
            });
        }
        let mut counted = BTreeSet::new();
        let mut scope_error = None;
        for (check, trusted) in &checks {
            let Some(key) = trusted.as_ref().filter(|_| check.valid) else {
                continue;
            };
            if !matches_name(&key.plugins, name) {
                scope_error.get_or_insert(TrustError::KeyNotAllowedForPlugin {
                    key: key.name.clone(),
                    plugin: name.to_string(),
                });
                continue;
            }
            if let Some(ceiling) = &key.capabilities
                && let Some(extra) = requested.iter().find(|k| !ceiling.contains(k))
            {
                scope_error.get_or_insert(TrustError::CapabilityAboveKeyCeiling {
                    key: key.name.clone(),
                    capability: extra.policy_name().into(),
                });
                continue;
            }
            // Each key counts once, however many signatures it has in the bundle.
            if counted.insert(key.public_key.to_ascii_lowercase()) {
                signers.push(key.name.clone());
            }
        }
        let needed = policy.trust.min_signatures.max(1);
        if (counted.len() as u32) < needed {
            if let Some(e) = scope_error {
                return Err(e);
            }
            if checks.iter().all(|(_, t)| t.is_none()) {
                return Err(TrustError::UnknownKey {
                    key_ids: checks.iter().map(|(c, _)| c.key_id.clone()).collect(),
                });
            }
            return Err(TrustError::NotEnoughSignatures {
                needed,
                have: counted.len() as u32,
            });
        }
    }
    Ok((signers, unsigned))
}

/// Decide. `highest` is the rollback high-water mark for the statement's name; `now` in seconds.
pub fn evaluate(
    bundle: &Bundle,
    policy: &SitePolicy,
    highest: Option<&semver::Version>,
    now: u64,
) -> Result<Accepted, TrustError> {
    let st = &bundle.statement;
    let bad = |message: String| TrustError::BadStatement { message };
    if st.format != STATEMENT_FORMAT || st.kind != "plugin" {
        return Err(bad(format!(
            "unsupported statement `{}` of kind `{}`",
            st.format, st.kind
        )));
    }
    validate_plugin_name(&st.name).map_err(bad)?;
    if sha256_hex(&bundle.component) != st.component_sha256
        || bundle.component.len() as u64 != st.component_length
    {
        return Err(TrustError::ComponentMismatch);
    }
    let manifest = Manifest::parse(&st.manifest).map_err(|e| bad(format!("manifest: {e}")))?;
    if manifest.name != st.name || manifest.version.to_string() != st.version {
        return Err(bad(
            "the manifest's name or version differs from the statement's".into(),
        ));
    }

    let (signers, unsigned) = count_signers(bundle, policy, &manifest.name, &manifest.requested())?;
    if now > st.expires_at {
        return Err(TrustError::Expired {
            expires_at: st.expires_at,
        });
    }
    if let Some(highest) = highest
        && manifest.version < *highest
    {
        return Err(TrustError::Rollback {
            offered: manifest.version.to_string(),
            highest: highest.to_string(),
        });
    }
    Ok(Accepted {
        manifest,
        signers,
        unsigned,
    })
}

/// Decide whether this agent accepts a signed runbook; returns the runbook text and its signers.
pub fn evaluate_runbook(
    bundle: &Bundle,
    policy: &SitePolicy,
    now: u64,
) -> Result<(String, Vec<String>), TrustError> {
    let st = &bundle.statement;
    let bad = |message: String| TrustError::BadStatement { message };
    if st.format != STATEMENT_FORMAT || st.kind != "runbook" {
        return Err(bad(format!(
            "expected a runbook statement, found `{}` of kind `{}`",
            st.format, st.kind
        )));
    }
    validate_plugin_name(&st.name).map_err(bad)?;
    if sha256_hex(&bundle.component) != st.component_sha256
        || bundle.component.len() as u64 != st.component_length
    {
        return Err(TrustError::ComponentMismatch);
    }
    let (signers, _) = count_signers(bundle, policy, &st.name, &BTreeSet::new())?;
    if now > st.expires_at {
        return Err(TrustError::Expired {
            expires_at: st.expires_at,
        });
    }
    let text = String::from_utf8(bundle.component.clone())
        .map_err(|_| bad("the runbook is not UTF-8 text".into()))?;
    Ok((text, signers))
}
