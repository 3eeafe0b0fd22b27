//! The controller's store seam: agents (inventory and presence), runs, their targets and the
//! agents' results, events, desired state and rollouts, and the enrollment state (spent
//! tokens, the deny list).
//!
//! [`FleetStore`] is what the controller needs, nothing about SQL. The embedded default is
//! [`SqliteStore`] (one file in the data dir, one controller process). PostgreSQL would serve
//! several controller processes (docs/FLEET.md, "Several controllers"): the same trait, where
//! the uniqueness of a result per run and agent is the database's constraint, so two
//! controllers taking redeliveries of one result from the shared consumer still store it once.

pub mod approvals;
pub mod group;
pub mod query;
mod sqlite;

use std::collections::BTreeMap;

use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::{
    AgentEvent, Heartbeat, OwnCheck, PatchSummary, PluginInfo, RunId, RunResult, RunStatus,
    StepSummary, UnixMillis, WindowInfo,
};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("a stored {what} is unreadable: {cause}")]
    Corrupt { what: &'static str, cause: String },
    #[error("run {0} exists already")]
    RunExists(RunId),
}

/// One agent as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub tenant: TenantId,
    /// The name it enrolled with.
    pub name: String,
    pub hostname: String,
    pub os: String,
    pub version: String,
    pub tags: BTreeMap<String, String>,
    pub plugins: Vec<PluginInfo>,
    pub open_incidents: u32,
    /// When the controller last received a heartbeat (its own clock).
    pub last_seen: Option<UnixMillis>,
    /// The interval the agent announced last.
    pub interval_ms: i64,
    pub enrolled_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
    /// Its latest patch scan, from its last heartbeat; `None`: it never reported one.
    pub patches: Option<PatchSummary>,
    /// Its maintenance windows, from its last heartbeat; `None`: it never reported any (an
    /// older agent, or no heartbeat yet), which the approvals gate treats as unknown.
    pub windows: Option<Vec<WindowInfo>>,
    /// The monitors with an open incident, by name, from its last heartbeat (empty from an
    /// agent older than issue 18, whose `open_incidents` is then all there is).
    pub failing: Vec<String>,
}

/// An incident event as a client report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentEvent {
    /// When the agent saw it (its clock).
    pub at: UnixMillis,
    /// The agent's host name (its enrolled name before its first heartbeat).
    pub host: String,
    pub monitor: String,
    pub opened: bool,
    /// The check the monitor runs (`builtin:drift`, a compliance check); empty from an agent
    /// older than issue 18.
    pub check: String,
}

/// A PSA ticket as one event reported it (the client report folds them per ticket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEvent {
    pub at: UnixMillis,
    /// The agent's host name, as in [`IncidentEvent`].
    pub host: String,
    pub monitor: String,
    pub ticket: warden_fleet_wire::EventTicket,
}

/// A run as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: RunId,
    pub runbook: String,
    /// The selector as written.
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    pub requested_by: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// The tenants of the targeted agents (a tenant-scoped caller sees a run only if it is
    /// all of them).
    pub tenants: Vec<TenantId>,
    pub bundle: Option<Vec<u8>>,
    /// When the controller stopped re-sending (every agent answered, or the run expired).
    pub closed_at: Option<UnixMillis>,
}

/// One targeted agent of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub sends: u32,
    pub last_sent: Option<UnixMillis>,
}

/// An agent's latest result for a run: its final one, or `running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    pub agent: AgentId,
    pub status: RunStatus,
    pub error: Option<String>,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    pub steps: Vec<StepSummary>,
    pub received_at: UnixMillis,
}

/// What storing a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The first result of the agent for the run.
    New,
    /// A final result replaced `running`.
    Final,
    /// The agent's final result was stored already (a redelivery, a re-publish from the
    /// outbox, a late `replayed`): nothing changed.
    Duplicate,
    /// The run did not target this agent (or does not exist): dropped.
    NotTargeted,
}

/// One enrollment to record: the token it spent and the agent it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnrollment {
    pub token_id: String,
    pub token_expires_at: i64,
    pub agent: AgentId,
    pub tenant: TenantId,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub at: UnixMillis,
}

/// What the store knew of an agent before a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub previous: Option<UnixMillis>,
    pub previous_interval_ms: i64,
    pub revoked: bool,
}

/// One plugin desired on one agent (issue 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRecord {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub name: String,
    pub version: String,
    /// The bundle's (blob's) SHA-256.
    pub sha256: String,
    pub size: u64,
    pub published_at: UnixMillis,
    pub published_by: String,
    /// The item is to be removed (`sha256` then names the removal, `size` is 0).
    pub removed: bool,
    /// A runbook marked `maintenance = true` (issue 16: a run of it outside the agent's
    /// windows waits for an approval); read from the bundle when it was published.
    pub maintenance: bool,
}

/// An agent's latest report about one bundle digest of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecord {
    pub agent: AgentId,
    pub sha256: String,
    /// `installed` or `refused`.
    pub state: String,
    pub reason: Option<String>,
    pub error: Option<String>,
    /// The agent's time of the report.
    pub at: UnixMillis,
    /// An installed check plugin's first run on the agent.
    pub check: Option<OwnCheck>,
}

/// A blob the controller stored in `FLEET_BLOBS` for a tenant (blob collection, issue 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub tenant: TenantId,
    /// The bundle's SHA-256: the blob's name.
    pub sha256: String,
    pub size: u64,
    /// When it was (last) stored, the controller's clock.
    pub stored_at: UnixMillis,
}

/// The controller's persistent state.
pub trait FleetStore: Send + Sync + std::fmt::Debug {
    /// Record an enrollment (a new agent, or a re-enrolled one's name and tags).
    fn enroll_agent(
        &self,
        agent: &AgentId,
        tenant: &TenantId,
        name: &str,
        tags: &BTreeMap<String, String>,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Update presence and inventory from a heartbeat received at `received` (an agent not yet
    /// known is added: its credentials, not the store, prove who it is).
    fn record_heartbeat(&self, hb: &Heartbeat, received: UnixMillis) -> Result<Seen, StoreError>;
    /// [`FleetStore::record_heartbeat`] for several, in one commit, in order.
    fn record_heartbeats(
        &self,
        hbs: &[Heartbeat],
        received: UnixMillis,
    ) -> Result<Vec<Seen>, StoreError>;
    fn agents(&self, tenant: Option<&TenantId>) -> Result<Vec<AgentRecord>, StoreError>;
    fn agent(&self, agent: &AgentId) -> Result<Option<AgentRecord>, StoreError>;
    fn mark_revoked(&self, agent: &AgentId, at: UnixMillis) -> Result<(), StoreError>;

    fn create_run(
        &self,
        run: &RunRecord,
        targets: &[(AgentId, TenantId)],
    ) -> Result<(), StoreError>;
    fn run(&self, run: &RunId) -> Result<Option<RunRecord>, StoreError>;
    /// Newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    fn open_runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    fn close_run(&self, run: &RunId, at: UnixMillis) -> Result<(), StoreError>;
    fn targets(&self, run: &RunId) -> Result<Vec<TargetRecord>, StoreError>;
    fn record_sends(
        &self,
        run: &RunId,
        agents: &[AgentId],
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    fn record_result(&self, result: &RunResult, received: UnixMillis)
    -> Result<Stored, StoreError>;
    /// Store several results in one commit, in order (a `running` and the final result of one
    /// agent may be in the same batch); what each did. The ingest loop stores what the
    /// consumer delivered together this way: one commit (one flush) per batch, not per result.
    fn record_results(
        &self,
        results: &[RunResult],
        received: UnixMillis,
    ) -> Result<Vec<Stored>, StoreError>;
    fn results(&self, run: &RunId) -> Result<Vec<ResultRecord>, StoreError>;
    /// Open runs targeting `agent` that it has not answered at all.
    fn unanswered_for(&self, agent: &AgentId) -> Result<Vec<RunRecord>, StoreError>;

    /// Desire these plugins (one row per agent and plugin name, replacing what was desired).
    fn set_desired(&self, rows: &[DesiredRecord]) -> Result<(), StoreError>;
    /// What is desired on `agent`, by plugin name.
    fn desired_for(&self, agent: &AgentId) -> Result<Vec<DesiredRecord>, StoreError>;
    /// Every agent's desired row for plugin `name`.
    fn desired_of(&self, name: &str) -> Result<Vec<DesiredRecord>, StoreError>;
    /// Store deploy reports in one commit; `true` for each that changed what is stored (a
    /// redelivery or an older report for the same digest changes nothing).
    fn record_deploy_reports(
        &self,
        reports: &[warden_fleet_wire::DeployReport],
        received: UnixMillis,
    ) -> Result<Vec<bool>, StoreError>;
    /// Every agent's latest report per digest of plugin `name`.
    fn deploy_reports(&self, name: &str) -> Result<Vec<DeployRecord>, StoreError>;

    /// Record a blob stored for `tenant` at `at` (again: its time moves to `at`).
    fn record_blob(
        &self,
        tenant: &TenantId,
        sha256: &str,
        size: u64,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Record a blob found in the stream as stored at `at` (size unknown: 0), unless it is
    /// recorded already.
    fn record_blob_if_unknown(
        &self,
        tenant: &TenantId,
        sha256: &str,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The recorded blobs stored before `stored_before` that nothing needs: no desired row of
    /// their tenant names them, nor a rollout that can still be rolled back as an agent's
    /// previous bundle. Oldest first.
    fn unused_blobs(&self, stored_before: UnixMillis) -> Result<Vec<BlobRecord>, StoreError>;
    /// Forget a collected blob; `false` if it was stored again since (then it stays).
    fn forget_blob(&self, blob: &BlobRecord) -> Result<bool, StoreError>;

    /// Store an event; `false` if it was stored already (same agent and seq).
    fn record_event(&self, event: &AgentEvent, received: UnixMillis) -> Result<bool, StoreError>;
    /// Newest first.
    fn events(&self, limit: usize) -> Result<Vec<AgentEvent>, StoreError>;
    /// The incidents opened and resolved on the agents enrolled in `tenant` before `before`
    /// (the client report's input, which orders them itself), each with its agent's host name.
    fn incident_events(
        &self,
        tenant: &TenantId,
        before: UnixMillis,
    ) -> Result<Vec<IncidentEvent>, StoreError>;
    /// The PSA tickets the agents enrolled in `tenant` reported before `before`, one per
    /// ticket per event, with the agent's host name.
    fn ticket_events(
        &self,
        tenant: &TenantId,
        before: UnixMillis,
    ) -> Result<Vec<TicketEvent>, StoreError>;

    /// Record a spent enrollment token (until its token's expiry), and forget those expired
    /// by `now_secs`: one row per token, so an enrollment costs the same at the 10,000th.
    fn spend_token(&self, id: &str, expires_at: i64, now_secs: i64) -> Result<(), StoreError>;
    /// Record enrollments in one commit: each one's spent token ([`FleetStore::spend_token`])
    /// and its agent ([`FleetStore::enroll_agent`]). Concurrent enrollments are grouped into
    /// one call ([`group::GroupCommit`]), so this is one flush for all of them.
    fn record_enrollments(&self, batch: &[NewEnrollment], now_secs: i64) -> Result<(), StoreError>;
    /// The spent tokens not expired by `now_secs`: (id, its token's expiry).
    fn spent_tokens(&self, now_secs: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Record a new rollout and its targeted agents, none released (issue 16).
    fn create_rollout(
        &self,
        rollout: &crate::rollout::RolloutRecord,
        agents: &[crate::rollout::RolloutAgent],
    ) -> Result<(), StoreError>;
    fn rollout(&self, id: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError>;
    /// Rollouts the tick still drives (pending or running), oldest first.
    fn active_rollouts(&self) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError>;
    /// Every rollout, ended ones too, newest first, at most `limit` (the console's list).
    fn recent_rollouts(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError>;
    /// How many rollouts are in each phase (phases with none are absent).
    fn rollout_phases(&self) -> Result<Vec<(String, u64)>, StoreError>;
    fn save_rollout_state(
        &self,
        id: &str,
        state: &crate::rollout::State,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    /// By wave, then agent.
    fn rollout_agents(&self, id: &str) -> Result<Vec<crate::rollout::RolloutAgent>, StoreError>;
    /// Mark agents released, each with what was desired on it before (for rollback); an
    /// agent released already keeps its first record.
    fn release_rollout_agents(
        &self,
        id: &str,
        released: &[(AgentId, Option<crate::rollout::Previous>)],
        at: UnixMillis,
    ) -> Result<(), StoreError>;

    /// A small named state document (the spent enrollment tokens, the deny list), as JSON.
    fn load_state(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn save_state(&self, key: &str, json: &str) -> Result<(), StoreError>;
    /// Forget a state key (nothing when it is not there).
    fn delete_state(&self, key: &str) -> Result<(), StoreError>;

    /// One page of the agents `query` selects, presence judged at `now` (issue 18).
    fn agent_page(
        &self,
        query: &query::AgentQuery,
        now: UnixMillis,
    ) -> Result<query::AgentPage, StoreError>;
    /// The runs that targeted `agent`, newest first, with its result in each.
    fn agent_runs(
        &self,
        agent: &AgentId,
        limit: usize,
    ) -> Result<Vec<query::AgentRunRow>, StoreError>;
    /// The events `agent` sent, newest first.
    fn agent_events(&self, agent: &AgentId, limit: usize) -> Result<Vec<AgentEvent>, StoreError>;

    /// Approval requests (issue 16, [`approvals::ApprovalStore`]).
    fn approvals(&self) -> &dyn approvals::ApprovalStore;
}
