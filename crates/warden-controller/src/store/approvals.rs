//! The store's part of approvals (issue 16): requests, each decided once. A decision is a
//! compare-and-set on the request's state, so two approvers at once, or an approval replayed,
//! change it once.

use warden_fleet_wire::{RunId, UnixMillis};

use super::StoreError;
use crate::approvals::{ApprovalRecord, ApprovalState, RequestId};

/// A decision to record: `from` -> `to`, only if the request is still `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub from: ApprovalState,
    pub to: ApprovalState,
    pub by: Option<&'a str>,
    pub at: UnixMillis,
    pub note: Option<&'a str>,
}

pub trait ApprovalStore: Send + Sync {
    fn create_approval(&self, record: &ApprovalRecord) -> Result<(), StoreError>;
    fn approval(&self, id: &RequestId) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Newest first.
    fn approvals(&self, limit: usize) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// Requests still waiting for a decision at `now` (pending and not expired).
    fn pending_approvals(&self, now: UnixMillis) -> Result<u64, StoreError>;
    /// Apply `decision` if the request is in its `from` state; `false` if it was not (decided
    /// meanwhile, or no such request).
    fn decide_approval(&self, id: &RequestId, decision: &Decision<'_>) -> Result<bool, StoreError>;
    /// The run a consumed approval dispatched.
    fn set_approval_run(&self, id: &RequestId, run: &RunId) -> Result<(), StoreError>;
}
