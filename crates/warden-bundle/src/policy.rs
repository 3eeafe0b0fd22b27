//! Signed site policies (issue 16): a site policy distributed to agents is a bundle of kind
//! `policy`, named [`POLICY_NAME`], whose payload is the policy's TOML text and whose version
//! only goes up. An agent accepts one only when it is signed by enough of the **policy keys of
//! its own file** (`trust.policy-keys`), keys that are neither the publishers' nor the
//! controller's: whoever holds the controller (its NATS credentials, its store, its keys) can
//! hand an agent any bytes, but cannot widen a grant.
//!
//! What a distributed policy may change: everything in the file but the root of trust and the
//! machine's own paths. `trust.policy-keys`, `trust.policy-min-signatures`, `data-dir` and
//! `cache-dir` always come from the agent's file; a policy that sets them differently is
//! refused rather than silently narrowed, so its signer learns at once. There is no
//! development mode for policies: an unsigned one is refused whatever `allow-unsigned` says.
//!
//! Versions are semver and strictly increasing per agent ([`POLICY_MARK`] in the high-water
//! marks): an older signed policy replayed is a rollback; the same version with other
//! contents is refused too, so one version always means one text.

use std::collections::BTreeSet;

use super::trust::{TrustError, verify_one};
use super::{Bundle, BundleError, STATEMENT_FORMAT, keys};
use warden_core::policy::SitePolicy;
use warden_core::sha256_hex;

/// The statement kind of a signed site policy.
pub const POLICY_KIND: &str = "policy";
/// The statement name of a signed site policy (an agent has one).
pub const POLICY_NAME: &str = "site-policy";
/// Its name in the agent's high-water marks: no plugin name starts with `@`, so the two never
/// share a mark.
pub const POLICY_MARK: &str = "@site-policy";

/// A policy this agent accepts.
#[derive(Debug, Clone)]
pub struct AcceptedPolicy {
    /// The policy in force from now on: the signed text, with the agent's own root of trust
    /// and paths.
    pub policy: SitePolicy,
    pub version: semver::Version,
    /// SHA-256 of the policy text (the bundle's payload).
    pub sha256: String,
    /// Names of the policy keys whose signatures counted.
    pub signers: Vec<String>,
}

impl Bundle {
    /// Build an unsigned site policy bundle; its text must parse as a site policy.
    pub fn from_policy(
        text: &str,
        version: &semver::Version,
        valid_days: u64,
    ) -> Result<Bundle, BundleError> {
        SitePolicy::parse(text, "the policy to sign")
            .map_err(|e| BundleError::Malformed(e.to_string()))?;
        Bundle::unsigned(
            POLICY_KIND,
            POLICY_NAME,
            &version.to_string(),
            String::new(),
            text.as_bytes().to_vec(),
            valid_days,
        )
    }
}

/// What the agent applied before: the version and the policy text's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'a> {
    pub version: &'a semver::Version,
    pub sha256: &'a str,
}

/// Decide whether this agent accepts a signed site policy. `local` is the agent's own file (its
/// root of trust); `applied` the policy applied before, if any (its version is the high-water
/// mark); `now` in seconds, or `None` to skip the expiry (re-reading, at a start, a policy that
/// was accepted while it was valid).
pub fn evaluate_policy(
    bundle: &Bundle,
    local: &SitePolicy,
    applied: Option<Applied<'_>>,
    now: Option<u64>,
) -> Result<AcceptedPolicy, TrustError> {
    let st = &bundle.statement;
    let bad = |message: String| TrustError::BadStatement { message };
    if st.format != STATEMENT_FORMAT || st.kind != POLICY_KIND || st.name != POLICY_NAME {
        return Err(bad(format!(
            "expected a `{POLICY_NAME}` statement of kind `{POLICY_KIND}`, found `{}` of kind `{}`",
            st.name, st.kind
        )));
    }
    if sha256_hex(&bundle.component) != st.component_sha256
        || bundle.component.len() as u64 != st.component_length
    {
        return Err(TrustError::ComponentMismatch);
    }
    let version = semver::Version::parse(&st.version)
        .map_err(|e| bad(format!("version `{}`: {e}", st.version)))?;
    let signers = count_policy_signers(bundle, local)?;
    if let Some(now) = now
        && now > st.expires_at
    {
        return Err(TrustError::Expired {
            expires_at: st.expires_at,
        });
    }
    let sha256 = st.component_sha256.clone();
    if let Some(applied) = applied {
        if version < *applied.version {
            return Err(TrustError::Rollback {
                offered: version.to_string(),
                highest: applied.version.to_string(),
            });
        }
        if version == *applied.version && sha256 != applied.sha256 {
            return Err(TrustError::PolicyVersionReused {
                version: version.to_string(),
            });
        }
    }
    let text = std::str::from_utf8(&bundle.component).map_err(|_| TrustError::PolicyInvalid {
        message: "not UTF-8 text".into(),
    })?;
    let signed = SitePolicy::parse(text, &format!("signed version {version}")).map_err(|e| {
        TrustError::PolicyInvalid {
            message: e.to_string(),
        }
    })?;
    let policy = with_local_root(signed, local)?;
    Ok(AcceptedPolicy {
        policy,
        version,
        sha256,
        signers,
    })
}

/// The signed policy with the agent's own root of trust and paths; refused when it tries to
/// set them otherwise.
fn with_local_root(mut signed: SitePolicy, local: &SitePolicy) -> Result<SitePolicy, TrustError> {
    let local_only = |field: &str| TrustError::PolicyLocalOnly {
        field: field.to_string(),
    };
    if signed.data_dir.is_some() && signed.data_dir != local.data_dir {
        return Err(local_only("data-dir"));
    }
    if signed.cache_dir.is_some() && signed.cache_dir != local.cache_dir {
        return Err(local_only("cache-dir"));
    }
    if !signed.trust.policy_keys.is_empty() && signed.trust.policy_keys != local.trust.policy_keys {
        return Err(local_only("trust.policy-keys"));
    }
    // The default (1) is "not set": only a different explicit value is a change.
    let min = signed.trust.policy_min_signatures;
    if min != 1 && min != local.trust.policy_min_signatures {
        return Err(local_only("trust.policy-min-signatures"));
    }
    signed.data_dir = local.data_dir.clone();
    signed.cache_dir = local.cache_dir.clone();
    signed.trust.policy_keys = local.trust.policy_keys.clone();
    signed.trust.policy_min_signatures = local.trust.policy_min_signatures;
    Ok(signed)
}

/// The policy keys of `local` whose valid signatures are on the bundle, each key once.
fn count_policy_signers(bundle: &Bundle, local: &SitePolicy) -> Result<Vec<String>, TrustError> {
    let trust = &local.trust;
    if trust.policy_keys.is_empty() {
        return Err(TrustError::NoPolicyKeys);
    }
    if bundle.signatures.is_empty() {
        return Err(TrustError::Unsigned);
    }
    let message = Bundle::signed_message(&bundle.statement_text);
    let mut counted = BTreeSet::new();
    let mut signers = Vec::new();
    let mut unknown = Vec::new();
    for s in &bundle.signatures {
        let (key, key_id, valid) = verify_one(s, &message);
        let trusted = key.as_ref().and_then(|k| {
            trust
                .policy_keys
                .iter()
                .find(|t| keys::parse_public(&t.public_key).is_ok_and(|tk| tk == *k))
        });
        match trusted {
            // A policy key's signature that fails means the policy was changed after signing.
            Some(_) if !valid => return Err(TrustError::BadSignature { key_id }),
            Some(t) => {
                if counted.insert(t.public_key.to_ascii_lowercase()) {
                    signers.push(t.name.clone());
                }
            }
            None => unknown.push(key_id),
        }
    }
    let needed = trust.policy_min_signatures.max(1);
    if signers.is_empty() {
        return Err(TrustError::UnknownKey { key_ids: unknown });
    }
    if (signers.len() as u32) < needed {
        return Err(TrustError::NotEnoughSignatures {
            needed,
            have: signers.len() as u32,
        });
    }
    Ok(signers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use warden_core::policy::PolicyKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn local(keys: &[&SigningKey]) -> SitePolicy {
        let mut p = SitePolicy::embedded_default();
        p.trust.policy_keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| PolicyKey {
                name: format!("policy-{i}"),
                public_key: hex::encode(k.verifying_key().as_bytes()),
            })
            .collect();
        p
    }

    const TEXT: &str = "[allow]\nkv = true\nsysinfo = [\"os\"]\n";

    fn signed(text: &str, version: &str, by: &[&SigningKey]) -> Bundle {
        let mut b = Bundle::from_policy(text, &semver::Version::parse(version).expect("v"), 30)
            .expect("bundle");
        for k in by {
            b.sign(k);
        }
        b
    }

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).expect("version")
    }

    #[test]
    fn a_policy_signed_by_a_local_policy_key_is_accepted_with_the_local_root() {
        let root = key(1);
        let mut mine = local(&[&root]);
        mine.data_dir = Some("/var/lib/warden".into());
        let accepted = evaluate_policy(&signed(TEXT, "2.0.0", &[&root]), &mine, None, Some(0))
            .expect("accepted");
        assert_eq!(accepted.version, v("2.0.0"));
        assert_eq!(accepted.signers, ["policy-0"]);
        assert!(accepted.policy.allow.kv);
        assert_eq!(accepted.policy.trust.policy_keys, mine.trust.policy_keys);
        assert_eq!(accepted.policy.data_dir, mine.data_dir);
        assert_eq!(accepted.sha256, sha256_hex(TEXT.as_bytes()));
    }

    #[test]
    fn forged_changed_and_misaddressed_policies_are_refused() {
        let (root, publisher) = (key(1), key(2));
        let mine = local(&[&root]);
        let now = Some(0);
        // No policy keys in the file: nothing distributed is accepted.
        let none = SitePolicy::embedded_default();
        assert_eq!(
            evaluate_policy(&signed(TEXT, "1.0.0", &[&root]), &none, None, now)
                .expect_err("no policy keys"),
            TrustError::NoPolicyKeys
        );
        assert_eq!(
            evaluate_policy(&signed(TEXT, "1.0.0", &[]), &mine, None, now).expect_err("unsigned"),
            TrustError::Unsigned
        );
        // A publisher key (or the controller's) is not a policy key.
        assert!(matches!(
            evaluate_policy(&signed(TEXT, "1.0.0", &[&publisher]), &mine, None, now),
            Err(TrustError::UnknownKey { .. })
        ));
        // Widened after signing: the payload no longer matches the statement.
        let mut widened = signed(TEXT, "1.0.0", &[&root]);
        widened.component = b"[allow]\nkv = true\nservice-control = true\n".to_vec();
        assert_eq!(
            evaluate_policy(&widened, &mine, None, now).expect_err("widened"),
            TrustError::ComponentMismatch
        );
        // The statement changed after signing (its digest made to match the new payload).
        let mut restated = widened.clone();
        restated.statement.component_sha256 = sha256_hex(&restated.component);
        restated.statement.component_length = restated.component.len() as u64;
        restated.statement_text = serde_json::to_string(&restated.statement).expect("json");
        assert!(matches!(
            evaluate_policy(&restated, &mine, None, now),
            Err(TrustError::BadSignature { .. })
        ));
        // A plugin or runbook statement is not a policy, whoever signed it.
        let runbook = {
            let mut b = Bundle::from_runbook("site-policy", TEXT, 30).expect("runbook");
            b.sign(&root);
            b
        };
        assert!(matches!(
            evaluate_policy(&runbook, &mine, None, now),
            Err(TrustError::BadStatement { .. })
        ));
        let expired = signed(TEXT, "1.0.0", &[&root]);
        assert!(matches!(
            evaluate_policy(&expired, &mine, None, Some(u64::MAX)),
            Err(TrustError::Expired { .. })
        ));
        assert!(evaluate_policy(&expired, &mine, None, None).is_ok());
    }

    #[test]
    fn versions_only_go_up_and_one_version_is_one_text() {
        let root = key(1);
        let mine = local(&[&root]);
        let applied_sha = sha256_hex(TEXT.as_bytes());
        let applied = || {
            Some(Applied {
                version: &V3,
                sha256: &applied_sha,
            })
        };
        static V3: std::sync::LazyLock<semver::Version> =
            std::sync::LazyLock::new(|| semver::Version::new(3, 0, 0));
        assert!(matches!(
            evaluate_policy(&signed(TEXT, "2.9.0", &[&root]), &mine, applied(), None),
            Err(TrustError::Rollback { .. })
        ));
        // The same version and text again (a restart, a re-announce): accepted.
        assert!(evaluate_policy(&signed(TEXT, "3.0.0", &[&root]), &mine, applied(), None).is_ok());
        let other = "[allow]\nkv = false\n";
        assert!(matches!(
            evaluate_policy(&signed(other, "3.0.0", &[&root]), &mine, applied(), None),
            Err(TrustError::PolicyVersionReused { .. })
        ));
        assert!(evaluate_policy(&signed(other, "3.0.1", &[&root]), &mine, applied(), None).is_ok());
    }

    #[test]
    fn the_root_of_trust_and_the_paths_stay_local() {
        let (root, other) = (key(1), key(3));
        let mine = local(&[&root]);
        let adds_key = format!(
            "[[trust.policy-keys]]\nname = \"mallory\"\npublic-key = \"{}\"\n",
            hex::encode(other.verifying_key().as_bytes())
        );
        assert_eq!(
            evaluate_policy(&signed(&adds_key, "1.0.0", &[&root]), &mine, None, None)
                .expect_err("a policy key added"),
            TrustError::PolicyLocalOnly {
                field: "trust.policy-keys".into()
            }
        );
        let moves = "data-dir = \"/tmp/elsewhere\"\n";
        assert!(matches!(
            evaluate_policy(&signed(moves, "1.0.0", &[&root]), &mine, None, None),
            Err(TrustError::PolicyLocalOnly { field }) if field == "data-dir"
        ));
        let lowers = "[trust]\npolicy-min-signatures = 2\n";
        assert!(matches!(
            evaluate_policy(&signed(lowers, "1.0.0", &[&root]), &mine, None, None),
            Err(TrustError::PolicyLocalOnly { .. })
        ));
        assert!(Bundle::from_policy("not = [valid", &v("1.0.0"), 1).is_err());
    }

    #[test]
    fn two_of_n_policy_keys_need_two_distinct_signatures() {
        let (a, b) = (key(1), key(2));
        let mut mine = local(&[&a, &b]);
        mine.trust.policy_min_signatures = 2;
        assert!(matches!(
            evaluate_policy(&signed(TEXT, "1.0.0", &[&a, &a]), &mine, None, None),
            Err(TrustError::NotEnoughSignatures { needed: 2, have: 1 })
        ));
        let both = evaluate_policy(&signed(TEXT, "1.0.0", &[&a, &b]), &mine, None, None)
            .expect("two keys");
        assert_eq!(both.signers.len(), 2);
        assert_eq!(both.policy.trust.policy_min_signatures, 2);
    }
}
