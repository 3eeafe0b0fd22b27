//! The `[approvals]` section of the controller's config and the blast-radius rule.
//!
//! ```toml
//! [approvals]
//! max-agents = 50           # a run to more than 50 agents needs a second operator
//! max-percent = 25          # ... or to more than 25 % of the fleet the requester may see
//! multi-tenant = true       # ... or to more than one tenant
//! request-ttl-secs = 3600   # an unapproved request expires (default 1 h, at most 7 days)
//! outside-window = true     # a maintenance runbook to an agent outside its windows (default)
//! approvers = "operators"   # who approves: "operators" (default) or "approvers-only"
//! ```
//!
//! Without the section every run proceeds (as before approvals existed); with it, each limit
//! that is set applies, and a run above any of them needs approval. `max-agents = 0` makes
//! every run need one.

use serde::Deserialize;
use warden_access::Approvers;

/// Default lifetime of a request: long enough for a second operator to look, short enough
/// that a forgotten request does not stay approvable.
pub const DEFAULT_REQUEST_TTL_SECS: i64 = 3600;
/// Longest a request may wait: the wire's bound on a command's lifetime.
pub const MAX_REQUEST_TTL_SECS: i64 = warden_fleet_wire::command::MAX_COMMAND_LIFETIME_MS / 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawApprovals {
    max_agents: Option<usize>,
    max_percent: Option<u32>,
    #[serde(default)]
    multi_tenant: bool,
    request_ttl_secs: Option<i64>,
    outside_window: Option<bool>,
    #[serde(default)]
    approvers: Approvers,
}

/// A checked `[approvals]` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub max_agents: Option<usize>,
    /// 1 ..= 100.
    pub max_percent: Option<u32>,
    pub multi_tenant: bool,
    pub request_ttl_secs: i64,
    /// A run of a maintenance runbook to an agent outside its reported windows waits.
    pub outside_window: bool,
    /// Who may approve (and deny another's request).
    pub approvers: Approvers,
}

/// Why a run needs approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Agents {
        agents: usize,
        max: usize,
    },
    Percent {
        agents: usize,
        fleet: usize,
        max: u32,
    },
    Tenants(usize),
    /// A maintenance runbook to agents outside their windows ([`super::windows`]).
    OutsideWindow {
        /// Agents with no window open now, of `agents`.
        outside: usize,
        /// Of them, agents that never reported windows (older agents): unknown counts as
        /// outside.
        unreported: usize,
        agents: usize,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Agents { agents, max } => write!(f, "{agents} agents, over max-agents {max}"),
            Reason::Percent { agents, fleet, max } => write!(
                f,
                "{agents} of {fleet} agents in scope, over max-percent {max} %"
            ),
            Reason::Tenants(n) => write!(f, "{n} tenants (multi-tenant)"),
            Reason::OutsideWindow {
                outside,
                unreported,
                agents,
            } => {
                write!(
                    f,
                    "maintenance runbook: {outside} of {agents} agents outside their maintenance windows (outside-window)"
                )?;
                if *unreported > 0 {
                    write!(f, ", {unreported} of them never reported windows")?;
                }
                Ok(())
            }
        }
    }
}

impl ApprovalPolicy {
    pub fn from_raw(raw: RawApprovals) -> Result<ApprovalPolicy, String> {
        if let Some(p) = raw.max_percent
            && !(1..=100).contains(&p)
        {
            return Err(format!("[approvals] max-percent {p}: 1 ..= 100"));
        }
        let ttl = raw.request_ttl_secs.unwrap_or(DEFAULT_REQUEST_TTL_SECS);
        if !(60..=MAX_REQUEST_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "[approvals] request-ttl-secs {ttl}: 60 ..= {MAX_REQUEST_TTL_SECS}"
            ));
        }
        // `outside-window` is on by default, but only an explicit `true` counts as the
        // section's limit: an empty section stays the mistake it always was.
        if raw.max_agents.is_none()
            && raw.max_percent.is_none()
            && !raw.multi_tenant
            && raw.outside_window != Some(true)
        {
            return Err(
                "[approvals] sets no limit: give max-agents, max-percent, multi-tenant = true or outside-window = true (or remove the section)"
                    .into(),
            );
        }
        Ok(ApprovalPolicy {
            max_agents: raw.max_agents,
            max_percent: raw.max_percent,
            multi_tenant: raw.multi_tenant,
            request_ttl_secs: ttl,
            outside_window: raw.outside_window.unwrap_or(true),
            approvers: raw.approvers,
        })
    }

    /// Why `agents` agents over `tenants` tenants, of `fleet` the requester may see, need a
    /// second operator (empty: they do not).
    pub fn reasons(&self, agents: usize, tenants: usize, fleet: usize) -> Vec<Reason> {
        let mut out = Vec::new();
        if let Some(max) = self.max_agents
            && agents > max
        {
            out.push(Reason::Agents { agents, max });
        }
        // agents / fleet > max / 100, in integers.
        if let Some(max) = self.max_percent
            && (agents as u128) * 100 > (fleet as u128) * u128::from(max)
        {
            out.push(Reason::Percent { agents, fleet, max });
        }
        if self.multi_tenant && tenants > 1 {
            out.push(Reason::Tenants(tenants));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Result<ApprovalPolicy, String> {
        let raw: RawApprovals = toml::from_str(text).map_err(|e| e.to_string())?;
        ApprovalPolicy::from_raw(raw)
    }

    #[test]
    fn each_limit_that_is_set_applies_and_only_above_it() {
        let p = policy("max-agents = 3\nmax-percent = 50\nmulti-tenant = true").expect("policy");
        assert_eq!(p.request_ttl_secs, DEFAULT_REQUEST_TTL_SECS);
        assert!(p.reasons(3, 1, 6).is_empty(), "3 of 6 is at the limits");
        assert_eq!(
            p.reasons(4, 1, 100),
            vec![Reason::Agents { agents: 4, max: 3 }]
        );
        assert_eq!(
            p.reasons(2, 1, 3),
            vec![Reason::Percent {
                agents: 2,
                fleet: 3,
                max: 50
            }]
        );
        assert_eq!(p.reasons(2, 2, 10), vec![Reason::Tenants(2)]);
        assert_eq!(p.reasons(10, 2, 10).len(), 3);
        let every = policy("max-agents = 0").expect("policy");
        assert_eq!(every.reasons(1, 1, 1).len(), 1, "max-agents 0: every run");
        assert!(every.outside_window, "on by default");
        assert_eq!(every.approvers, Approvers::Operators, "today's approvers");
    }

    #[test]
    fn the_window_rule_and_the_approvers_are_set_in_the_section() {
        let p = policy("outside-window = true\napprovers = \"approvers-only\"").expect("policy");
        assert!(p.outside_window && p.reasons(1000, 5, 1000).is_empty());
        assert_eq!(p.approvers, Approvers::ApproversOnly);
        let off = policy("max-agents = 5\noutside-window = false").expect("policy");
        assert!(!off.outside_window);
        let reason = Reason::OutsideWindow {
            outside: 2,
            unreported: 1,
            agents: 3,
        };
        assert!(
            reason.to_string().contains("2 of 3 agents outside"),
            "{reason}"
        );
        assert!(reason.to_string().contains("(outside-window)"), "{reason}");
    }

    #[test]
    fn a_policy_out_of_bounds_or_with_no_limit_is_refused() {
        for bad in [
            "max-percent = 0",
            "max-percent = 101",
            "max-agents = 5\nrequest-ttl-secs = 10",
            "multi-tenant = false",
            "outside-window = false",
            "approvers = \"approvers-only\"",
            "max-agents = 5\napprovers = \"everyone\"",
            "max-agent = 5",
        ] {
            assert!(policy(bad).is_err(), "{bad}");
        }
    }
}
