//! What a request is bound to, and the digest that binds it: SHA-256 over a canonical JSON
//! document of the artifact, its digest, the parameters, the target (selector and agents) and
//! the request's expiry. JSON is canonical here because every field has a fixed order (a
//! struct), maps are `BTreeMap`s (sorted keys) and the agents are sorted; the document carries
//! its own version, so a later change of form is a new version, never a silent reinterpretation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::UnixMillis;

use super::RequestId;

/// Version of the digest's document.
const BINDING_VERSION: u32 = 1;

/// What the approved thing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    /// A runbook run (`warden fleet run`): dispatched by the approval itself.
    Run,
    /// A rollout's start: the rollout presents the approved request to [`crate::Controller::gate`].
    Rollout,
}

impl SubjectKind {
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::Run => "run",
            SubjectKind::Rollout => "rollout",
        }
    }
}

/// What a caller wants to start, as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSubject {
    pub kind: SubjectKind,
    /// The runbook's (or plugin's) name.
    pub artifact: String,
    /// Hex SHA-256 of the bundle, when the controller holds it (an inline runbook bundle, a
    /// rollout's plugin). `None` for a runbook installed on the agents: what each agent runs
    /// is then its own signed copy, which the controller cannot see.
    pub sha256: Option<String>,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    /// The command's lifetime once started (ms).
    pub ttl_ms: i64,
    /// The selector, canonical (as [`crate::target::Selector`] prints it).
    pub target: String,
    /// The agents it resolves to, sorted.
    pub agents: Vec<(AgentId, TenantId)>,
    /// An approved request presented for this subject (a rollout's second start).
    #[serde(skip)]
    pub approval: Option<RequestId>,
}

impl ApprovalSubject {
    /// Sort the agents (the digest and the comparisons need one order).
    pub fn normalised(mut self) -> ApprovalSubject {
        self.agents.sort();
        self.agents.dedup();
        self
    }

    /// The distinct tenants of the agents, sorted.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut t: Vec<TenantId> = self.agents.iter().map(|(_, t)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    }

    /// What differs between what was requested (`self`) and `now`, for a reader: `None` if
    /// nothing the digest covers differs.
    pub fn difference(&self, now: &ApprovalSubject) -> Option<String> {
        let mut what = Vec::new();
        if self.kind != now.kind || self.artifact != now.artifact {
            what.push("the artifact".to_string());
        }
        if self.sha256 != now.sha256 {
            what.push("the artifact's sha256".to_string());
        }
        if self.params != now.params || self.dry_run != now.dry_run {
            what.push("the parameters".to_string());
        }
        if self.ttl_ms != now.ttl_ms {
            what.push("the ttl".to_string());
        }
        if self.target != now.target {
            what.push("the target".to_string());
        }
        if self.agents != now.agents {
            let added = now
                .agents
                .iter()
                .filter(|a| !self.agents.contains(a))
                .count();
            let gone = self
                .agents
                .iter()
                .filter(|a| !now.agents.contains(a))
                .count();
            what.push(format!(
                "the target's agents (+{added} -{gone}, {} now)",
                now.agents.len()
            ));
        }
        (!what.is_empty()).then(|| what.join(", "))
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    v: u32,
    kind: SubjectKind,
    artifact: &'a str,
    sha256: Option<&'a str>,
    params: &'a BTreeMap<String, String>,
    dry_run: bool,
    ttl_ms: i64,
    target: &'a str,
    agents: Vec<[&'a str; 2]>,
    expires_at: i64,
}

/// The binding digest (hex SHA-256) of `subject` (normalised) with the request's expiry.
pub fn digest(subject: &ApprovalSubject, expires_at: UnixMillis) -> String {
    let mut agents: Vec<[&str; 2]> = subject
        .agents
        .iter()
        .map(|(a, t)| [a.as_str(), t.as_str()])
        .collect();
    agents.sort();
    let doc = Canonical {
        v: BINDING_VERSION,
        kind: subject.kind,
        artifact: &subject.artifact,
        sha256: subject.sha256.as_deref(),
        params: &subject.params,
        dry_run: subject.dry_run,
        ttl_ms: subject.ttl_ms,
        target: &subject.target,
        agents,
        expires_at: expires_at.as_millis(),
    };
    // A struct of strings, integers and a string map always serialises.
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    warden_core::sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> (AgentId, TenantId) {
        let key = nkeys::KeyPair::new_user();
        (
            AgentId::new(key.public_key()).expect("agent"),
            TenantId::new("acme").expect("tenant"),
        )
    }

    fn subject() -> ApprovalSubject {
        ApprovalSubject {
            kind: SubjectKind::Run,
            artifact: "patch".into(),
            sha256: Some("ab".repeat(32)),
            params: [("kb".to_string(), "5031356".to_string())].into(),
            dry_run: false,
            ttl_ms: 3_600_000,
            target: "tenant=acme".into(),
            agents: vec![agent(), agent()],
            approval: None,
        }
    }

    #[test]
    fn the_digest_covers_every_bound_field_and_ignores_agent_order() {
        let s = subject();
        let at = UnixMillis(1_000);
        let d = digest(&s, at);
        let mut reversed = s.clone();
        reversed.agents.reverse();
        assert_eq!(digest(&reversed, at), d, "agent order does not matter");
        assert_ne!(digest(&s, UnixMillis(1_001)), d, "expiry");
        let changes: Vec<fn(&mut ApprovalSubject)> = vec![
            |s| s.kind = SubjectKind::Rollout,
            |s| s.artifact = "patch2".into(),
            |s| s.sha256 = None,
            |s| {
                s.params.insert("kb".into(), "1".into());
            },
            |s| {
                s.params.insert("reboot".into(), "yes".into());
            },
            |s| s.dry_run = true,
            |s| s.ttl_ms += 1,
            |s| s.target = "*".into(),
            |s| {
                s.agents.pop();
            },
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut other = s.clone();
            change(&mut other);
            assert_ne!(digest(&other, at), d, "change {i} is not bound");
            assert!(
                s.clone()
                    .normalised()
                    .difference(&other.normalised())
                    .is_some(),
                "{i}"
            );
        }
    }

    #[test]
    fn a_param_cannot_be_moved_between_key_and_value() {
        // `a=b=c` as {"a": "b=c"} or {"a=b": "c"}: JSON keeps keys and values apart.
        let mut one = subject();
        one.params = [("a".to_string(), "b=c".to_string())].into();
        let mut two = subject();
        two.params = [("a=b".to_string(), "c".to_string())].into();
        assert_ne!(digest(&one, UnixMillis(0)), digest(&two, UnixMillis(0)));
    }
}
