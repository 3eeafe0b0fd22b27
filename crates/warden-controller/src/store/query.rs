//! Fleet queries for the NOC's screens (issue 18): which agents a filter selects, in which
//! order, one page of them and how many in all. The store answers them itself (SQL), so a page
//! of a 10,000-agent fleet costs one indexed scan, not 10,000 records carried to the caller.
//!
//! Presence is the same rule as [`crate::presence`] evaluated by the store at the query's
//! `now`; a test checks both agree.

use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::{RunId, UnixMillis};

use super::AgentRecord;
use crate::presence::Presence;

/// Agents on one page at most.
pub const MAX_PAGE: usize = 500;

/// The column a page is ordered by (then by agent id, so pages never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Tenant,
    Host,
    Os,
    LastSeen,
    Incidents,
    /// Patches pending (never-scanned agents first when ascending).
    Patches,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::Tenant,
        SortKey::Host,
        SortKey::Os,
        SortKey::LastSeen,
        SortKey::Incidents,
        SortKey::Patches,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Tenant => "tenant",
            SortKey::Host => "host",
            SortKey::Os => "os",
            SortKey::LastSeen => "last-seen",
            SortKey::Incidents => "incidents",
            SortKey::Patches => "patches",
        }
    }

    pub fn parse(name: &str) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a fleet page selects; every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentQuery {
    pub tenant: Option<TenantId>,
    pub presence: Option<Presence>,
    /// Only agents with open incidents (what their failing checks opened).
    pub failing: bool,
    /// Only agents whose last heartbeat names each of these monitors as failing.
    pub failing_checks: Vec<String>,
    /// Only agents whose latest patch scan says a reboot is required.
    pub reboot_required: bool,
    /// Only agents whose latest patch scan found upgradable packages.
    pub patches_pending: bool,
    /// Tag `key = value` (the key `os` also matches the reported OS, as target selectors do).
    pub tags: Vec<(String, String)>,
    /// Each word must appear in the host name, name, id, tenant, OS or tags (case-insensitive).
    pub words: Vec<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub offset: usize,
    /// Clamped to 1 ..= [`MAX_PAGE`].
    pub limit: usize,
}

/// One page of a fleet query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPage {
    pub agents: Vec<AgentRecord>,
    /// Agents the query selects across all pages.
    pub total: usize,
}

/// One run an agent was targeted by, with the agent's latest result if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRunRow {
    pub run: RunId,
    pub runbook: String,
    pub requested_by: String,
    pub created_at: UnixMillis,
    /// `running`, `succeeded`, `failed`, `refused`, `cancelled`; `None`: no answer yet.
    pub status: Option<String>,
    pub error: Option<String>,
    pub finished_at: Option<UnixMillis>,
    pub agent: AgentId,
}
