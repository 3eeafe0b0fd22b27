//! A rollout as the store keeps it: the plan object, its state, and one row per targeted
//! agent (its wave, when it was released, and what was desired on it before, for rollback).

use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::UnixMillis;

use super::plan::Plan;
use super::state::State;

/// One recorded rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRecord {
    /// `ro-` and 16 hex digits.
    pub id: String,
    pub plugin: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// The bundle, released wave by wave.
    pub bundle: Vec<u8>,
    /// The selector as resolved.
    pub target: String,
    /// The tenants of the targeted agents (a scoped caller sees the rollout only if it
    /// covers all of them).
    pub tenants: Vec<TenantId>,
    pub plan: Plan,
    pub state: State,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub updated_at: UnixMillis,
}

/// What was desired on an agent for the plugin before the rollout reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub version: String,
    pub sha256: String,
    pub size: u64,
}

/// One targeted agent of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutAgent {
    pub agent: AgentId,
    pub tenant: TenantId,
    /// 0-based; the canary wave is 0 when the plan has one.
    pub wave: usize,
    /// When it was given the new desired state.
    pub released_at: Option<UnixMillis>,
    /// Recorded when it was released.
    pub previous: Option<Previous>,
}
