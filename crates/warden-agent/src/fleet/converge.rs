//! Desired state (issue 16): bring the installed plugins to what the agent's desired document
//! names, on connect and at each notice of its own key.
//!
//! 1. The document: the one a notice on `fleet.desired.<t>.<a>` carries (KV RePublish of the
//!    agent's own key `<tenant>.<agent>` in the bucket `desired`), else a Direct-Get of that
//!    key (on connect, after a failure, and every 10 minutes); no consumer, no watcher.
//! 2. For each item not yet settled in this process: if the plugin is installed at the desired
//!    version, report `installed`; else fetch the bundle's chunks by digest
//!    (`fleet.blob.<t>.<sha256>.<n>`, Direct-Get), check size and SHA-256, check the statement
//!    names the desired plugin and version, and install it through the agent's one install
//!    path ([`FleetAgent::install`]: the publisher signature against the agent's own trust
//!    policy, the anti-rollback marks). The controller is trusted for nothing but the choice:
//!    a refusal keeps the installed version, is audited, and is reported.
//! 3. Each outcome goes through the outbox as a [`DeployReport`] (JetStream, `Nats-Msg-Id`).
//!
//! Removals (`remove`) go through the agent's own removal paths and are reported `removed`.
//! Desired runbooks come last (they may name the new plugins): each is held as
//! `<runbooks-dir>/<name>.wbundle` after the agent's checks ([`FleetAgent::install_runbook`]).
//! A desired site policy comes first (it may trust the key a new plugin is signed with, or
//! grant what it needs): fetched the same way, applied only when signed by a policy key of
//! the agent's own file ([`FleetAgent::apply_policy`], `crate::site_policy`).
//!
//! An air-gapped agent applies a kit's document through the same [`apply_desired`], with the
//! kit's bundles in place of the blob stream ([`Blobs::Kit`], `super::kit`).
//!
//! Idempotent: a digest settled (installed or refused for good) is remembered for the life of
//! the process, so a re-announce of the same state does nothing; a transient refusal
//! (blob missing, agent store failing) or a failed read is tried again with backoff (2 s, up to
//! a minute). A notice carries the document itself (KV RePublish), which is used as it is: a
//! Direct-Get may be answered by a replica that is behind (seen after a node restart: "not
//! found" for a document just written). The document is read again every 10 minutes (spread by
//! agent) whatever happens, since a notice may be lost. After a restart
//! every item is evaluated once more (the trust policy may have changed); an installed one
//! costs a version comparison and a report the controller already has.

use super::core::LinkCore;
use super::outbox::{OutboxKind, Outgoing};
use super::seam::InstallRefused;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use warden_fleet_identity::subjects;
use warden_fleet_wire::desired::{
    MAX_BLOB_BYTES, MAX_POLICY_BLOB_BYTES, MAX_RUNBOOK_BLOB_BYTES, POLICY_REPORT_NAME, chunk_count,
};
use warden_fleet_wire::result::MAX_ERROR_LEN;
use warden_fleet_wire::{
    DeployOutcome, DeployRefusal, DeployReport, DesiredPlugin, DesiredPolicy, DesiredRemoval,
    DesiredRunbook, DesiredState, ItemKind, OwnCheck, UnixMillis, WIRE_VERSION, decode, encode,
    one_line,
};

/// What the agent decided about one digest in this process.
pub(crate) type Settled = HashMap<String, DeployOutcome>;

/// Why the desired document could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("reading the desired state: {0}")]
    Nats(String),
    #[error("the desired state is unreadable: {0}")]
    Wire(#[from] warden_fleet_wire::WireError),
    #[error("the desired state names {tenant}.{agent}, not this agent")]
    Misaddressed { tenant: String, agent: String },
}

/// After a transient failure (a read or a chunk the server did not answer, the agent's own
/// store failing), the first retry: 2 s, doubling up to [`RETRY_MAX`]. A follower that has not
/// caught up after a node restart answers "not found" for a while; so does a server under the
/// load of a thousand agents fetching at once.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Without a failure, the document is read again this often anyway (plus up to half of it, by
/// agent, so a fleet does not read at once): a notice is core NATS and may be lost, and a read
/// may be answered by a replica that is behind. One Direct-Get per agent per 10 minutes.
const REREAD: Duration = Duration::from_secs(10 * 60);

/// The task: converge at each (re)connect, each notice (from the notice's own document), after
/// a transient failure (with backoff) and every [`REREAD`], until `stop`.
pub(crate) async fn run(
    core: Arc<LinkCore>,
    client: async_nats::Client,
    mut notices: async_nats::Subscriber,
    mut connected: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut settled = Settled::new();
    let mut given: Option<DesiredState> = None;
    let mut retry = RETRY_FIRST;
    loop {
        // Wait until connected, then converge; then for a notice, a reconnect or a timer.
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            ready = connected.wait_for(|c| *c) => if ready.is_err() { break },
        }
        let wait = match converge(&core, &client, &mut settled, given.take()).await {
            Pass::Done => {
                retry = RETRY_FIRST;
                spread(&core, REREAD)
            }
            Pass::Retry => {
                let wait = retry;
                retry = (retry * 2).min(RETRY_MAX);
                wait
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            notice = notices.next() => match notice {
                None => break,
                Some(m) => given = notice_document(&m),
            },
            // A reconnect: read again (a notice may have been lost while away).
            changed = async {
                let _ = connected.wait_for(|c| !*c).await;
                connected.wait_for(|c| *c).await.map(|_| ())
            } => if changed.is_err() { break },
            () = tokio::time::sleep(wait) => {}
        }
        // Notices that came meanwhile: the last one's document is the newest.
        while let Some(Some(m)) = notices.next().now_or_never() {
            given = notice_document(&m);
        }
    }
    let _ = notices.unsubscribe().await;
}

/// Whether a pass settled everything it could, or should be tried again soon.
pub(crate) enum Pass {
    Done,
    Retry,
}

/// `base` plus up to half of it, by agent id: the same agent always waits the same, a fleet
/// spreads over the interval.
fn spread(core: &LinkCore, base: Duration) -> Duration {
    let h = core
        .identity
        .agent
        .as_str()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    base + base.mul_f64((h % 1000) as f64 / 2000.0)
}

/// The document a notice carries (KV RePublish sends the value written); `None` (read it
/// instead) when it carries none, or one that does not decode.
fn notice_document(m: &async_nats::Message) -> Option<DesiredState> {
    if m.payload.is_empty() {
        return None;
    }
    match decode::<DesiredState>(&m.payload) {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::warn!("fleet: a desired-state notice is unreadable ({e}); reading instead");
            None
        }
    }
}

/// `Option` of a ready future without waiting.
trait NowOrNever: std::future::Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(self);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
impl<F: std::future::Future> NowOrNever for F {}

async fn converge(
    core: &Arc<LinkCore>,
    client: &async_nats::Client,
    settled: &mut Settled,
    given: Option<DesiredState>,
) -> Pass {
    let read = match given {
        Some(doc) => addressed(core, doc).map(Some),
        None => read_desired(core, client).await,
    };
    let desired = match read {
        Ok(Some(desired)) => desired,
        Ok(None) => return Pass::Done,
        // The transport: tried again soon.
        Err(e @ ReadError::Nats(_)) => {
            tracing::warn!("fleet: {e}");
            return Pass::Retry;
        }
        // What the controller wrote is refused: audited.
        Err(e) => {
            tracing::warn!("fleet: {e}");
            core.audit(
                "fleet.desired-refused",
                json!({ "error": one_line(&e.to_string(), MAX_ERROR_LEN) }),
            );
            return Pass::Done;
        }
    };
    apply_desired(core, &Blobs::Nats(client), settled, desired)
        .await
        .0
}

/// Where the bundles a desired document names come from: the fleet's blob stream, or a kit
/// carried by hand to an air-gapped site (`super::kit`). Everything after the bytes (size,
/// digest, statement, the agent's install paths, audit, report) is the same for both.
pub(crate) enum Blobs<'a> {
    Nats(&'a async_nats::Client),
    Kit(&'a warden_fleet_wire::airgap::Kit),
}

/// What the agent did about one item of its desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub kind: ItemKind,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub outcome: DeployOutcome,
    /// It was there already (installed at the desired version): nothing changed.
    pub already: bool,
    pub error: Option<String>,
}

/// Bring the agent to `desired`: every item not in `settled`, in order (policy, plugins,
/// runbooks, removals), through the agent's own paths; each audited `fleet.deploy` and
/// reported through the outbox. What it settled for good is added to `settled`.
pub(crate) async fn apply_desired(
    core: &Arc<LinkCore>,
    blobs: &Blobs<'_>,
    settled: &mut Settled,
    desired: DesiredState,
) -> (Pass, Vec<Applied>) {
    // The policy first (it may trust a new plugin's signer), runbooks last (they may name the
    // new plugins).
    let mut pending: Vec<Item> = desired.policy.into_iter().map(Item::policy).collect();
    pending.extend(desired.plugins.into_iter().map(Item::plugin));
    pending.extend(desired.runbooks.into_iter().map(Item::runbook));
    pending.extend(desired.remove.into_iter().map(Item::removal));
    pending.retain(|item| !settled.contains_key(&item.sha256));
    let mut applied = Vec::with_capacity(pending.len());
    if pending.is_empty() {
        return (Pass::Done, applied);
    }
    let needs_inventory = pending
        .iter()
        .any(|i| i.kind == ItemKind::Plugin && !i.removal);
    let inventory = if needs_inventory {
        let core = core.clone();
        match tokio::task::spawn_blocking(move || core.agent.inventory()).await {
            Ok(inventory) => inventory,
            Err(e) => {
                tracing::error!("fleet: the inventory task failed: {e}");
                return (Pass::Retry, applied);
            }
        }
    } else {
        Default::default()
    };
    let mut pass = Pass::Done;
    for item in pending {
        let present = item.kind == ItemKind::Plugin
            && !item.removal
            && inventory
                .plugins
                .iter()
                .any(|p| p.name == item.name && p.version == item.version);
        let done = if item.removal {
            DeployOutcome::Removed
        } else {
            DeployOutcome::Installed
        };
        let outcome = match item.kind {
            _ if present => Ok(None),
            _ if item.removal => remove(core, &item).await.map(|()| None),
            ItemKind::Plugin => install(core, blobs, &item).await,
            ItemKind::Policy => apply_policy(core, blobs, &item).await.map(|()| None),
            ItemKind::Runbook => install_runbook(core, blobs, &item).await.map(|()| None),
        };
        let (outcome, error, check) = match outcome {
            Ok(check) => (done, None, check),
            Err(refused) => (
                DeployOutcome::Refused {
                    reason: refused.reason,
                },
                Some(one_line(&refused.message, MAX_ERROR_LEN)),
                None,
            ),
        };
        let reason = match outcome {
            DeployOutcome::Refused { reason } => Some(reason),
            DeployOutcome::Installed | DeployOutcome::Removed => None,
        };
        core.audit(
            "fleet.deploy",
            json!({
                "kind": item.kind, "plugin": item.name, "version": item.version,
                "sha256": item.sha256, "outcome": outcome.name(), "already": present,
                "reason": reason.map(DeployRefusal::name), "error": error,
                "check": check.as_ref().map(|c| c.status.name()),
            }),
        );
        let transient = reason.is_some_and(DeployRefusal::is_transient);
        if transient {
            pass = Pass::Retry;
        } else {
            settled.insert(item.sha256.clone(), outcome);
        }
        applied.push(Applied {
            kind: item.kind,
            name: item.name.clone(),
            version: item.version.clone(),
            sha256: item.sha256.clone(),
            outcome,
            already: present,
            error: error.clone(),
        });
        report(core, &item, outcome, error, check).await;
    }
    (pass, applied)
}

/// One desired item: a plugin, a runbook, the site policy, or the removal of a plugin or
/// runbook (`sha256` then names the removal).
struct Item {
    kind: ItemKind,
    removal: bool,
    name: String,
    version: String,
    sha256: String,
    size: u64,
}

impl Item {
    fn plugin(p: DesiredPlugin) -> Item {
        Item {
            kind: ItemKind::Plugin,
            removal: false,
            name: p.name,
            version: p.version,
            sha256: p.sha256,
            size: p.size,
        }
    }

    fn policy(p: DesiredPolicy) -> Item {
        Item {
            kind: ItemKind::Policy,
            removal: false,
            name: POLICY_REPORT_NAME.into(),
            version: p.version,
            sha256: p.sha256,
            size: p.size,
        }
    }

    fn runbook(r: DesiredRunbook) -> Item {
        Item {
            kind: ItemKind::Runbook,
            removal: false,
            name: r.name,
            version: r.signed,
            sha256: r.sha256,
            size: r.size,
        }
    }

    fn removal(r: DesiredRemoval) -> Item {
        Item {
            kind: r.kind,
            removal: true,
            name: r.name,
            version: String::new(),
            sha256: r.sha256,
            size: 0,
        }
    }

    fn chunks(&self) -> u32 {
        chunk_count(self.size)
    }
}

/// The agent's own desired document; `None` when it has none.
async fn read_desired(
    core: &LinkCore,
    client: &async_nats::Client,
) -> Result<Option<DesiredState>, ReadError> {
    let (tenant, agent) = (&core.identity.tenant, &core.identity.agent);
    let reply = client
        .request(subjects::desired_direct_get(tenant, agent), "".into())
        .await
        .map_err(|e| ReadError::Nats(e.to_string()))?;
    if reply.status == Some(async_nats::StatusCode::NOT_FOUND) {
        return Ok(None);
    }
    if let Some(status) = reply.status
        && status != async_nats::StatusCode::OK
    {
        return Err(ReadError::Nats(format!(
            "status {status}: {}",
            reply.description.unwrap_or_default()
        )));
    }
    // A KV delete or purge leaves an empty marker: nothing desired.
    if reply.payload.is_empty() {
        return Ok(None);
    }
    let desired: DesiredState = decode(&reply.payload)?;
    addressed(core, desired).map(Some)
}

/// The document, if it is this agent's own.
fn addressed(core: &LinkCore, desired: DesiredState) -> Result<DesiredState, ReadError> {
    let (tenant, agent) = (&core.identity.tenant, &core.identity.agent);
    if &desired.tenant != tenant || &desired.agent != agent {
        return Err(ReadError::Misaddressed {
            tenant: desired.tenant.to_string(),
            agent: desired.agent.to_string(),
        });
    }
    Ok(desired)
}

/// Fetch, check and apply the desired site policy. The agent's policy check decides; the
/// statement's version must be the one the document names (the controller's view).
async fn apply_policy(
    core: &Arc<LinkCore>,
    blobs: &Blobs<'_>,
    item: &Item,
) -> Result<(), InstallRefused> {
    let (bytes, parsed) = fetch_bundle(core, blobs, item).await?;
    if parsed.statement.version != item.version {
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!(
                "the bundle is {} `{}` {}, the desired state names the site policy {}",
                parsed.statement.kind,
                parsed.statement.name,
                parsed.statement.version,
                item.version
            ),
        ));
    }
    let source = format!("fleet:desired:{}", item.sha256);
    on_agent(core, move |agent| agent.apply_policy(&bytes, &source)).await
}

/// `f` on the agent, on the blocking pool (its installs and removals read and write files).
async fn on_agent<T: Send + 'static>(
    core: &Arc<LinkCore>,
    f: impl FnOnce(&dyn super::seam::FleetAgent) -> Result<T, InstallRefused> + Send + 'static,
) -> Result<(), InstallRefused> {
    let core = core.clone();
    tokio::task::spawn_blocking(move || f(core.agent.as_ref()))
        .await
        .map_err(|e| {
            InstallRefused::new(DeployRefusal::AgentError, format!("the task failed: {e}"))
        })?
        .map(drop)
}

/// Remove a plugin or a runbook through the agent's own paths (audited there).
async fn remove(core: &Arc<LinkCore>, item: &Item) -> Result<(), InstallRefused> {
    let (kind, name) = (item.kind, item.name.clone());
    on_agent(core, move |agent| agent.remove(kind, &name)).await
}

/// Fetch, check and hold one runbook (the agent's checks: `daemon/fleet_runbooks.rs`). A
/// runbook held already costs its fetch once per process (it is at most 256 KiB).
async fn install_runbook(
    core: &Arc<LinkCore>,
    blobs: &Blobs<'_>,
    item: &Item,
) -> Result<(), InstallRefused> {
    let bytes = fetch(core, blobs, item).await?;
    let source = format!("fleet:desired:{}", item.sha256);
    let name = item.name.clone();
    on_agent(core, move |agent| {
        agent.install_runbook(&name, &bytes, &source)
    })
    .await
}

/// Fetch, check and install one plugin; a check plugin's first run comes back with it
/// ([`Installed`]).
async fn install(
    core: &Arc<LinkCore>,
    blobs: &Blobs<'_>,
    item: &Item,
) -> Result<Option<OwnCheck>, InstallRefused> {
    let (bytes, parsed) = fetch_bundle(core, blobs, item).await?;
    let statement = &parsed.statement;
    if statement.kind != "plugin"
        || statement.name != item.name
        || statement.version != item.version
    {
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!(
                "the bundle is {} `{}` {}, the desired state names plugin `{}` {}",
                statement.kind, statement.name, statement.version, item.name, item.version
            ),
        ));
    }
    let source = format!("fleet:desired:{}", item.sha256);
    let installed = {
        let core = core.clone();
        tokio::task::spawn_blocking(move || core.agent.install(&bytes, &source))
            .await
            .map_err(|e| {
                InstallRefused::new(DeployRefusal::AgentError, format!("the task failed: {e}"))
            })??
    };
    if installed.name != item.name || installed.version != item.version {
        // The install path read the same statement: this cannot differ, but a report must
        // never claim a version that is not there.
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!(
                "installed `{}` {}, not the desired {}",
                installed.name, installed.version, item.version
            ),
        ));
    }
    Ok(installed.check)
}

/// The blob, and the bundle it is (parsed, not yet trusted).
async fn fetch_bundle(
    core: &LinkCore,
    blobs: &Blobs<'_>,
    item: &Item,
) -> Result<(Vec<u8>, warden_bundle::Bundle), InstallRefused> {
    let bytes = fetch(core, blobs, item).await?;
    let parsed = warden_bundle::Bundle::parse(&bytes)
        .map_err(|e| InstallRefused::new(DeployRefusal::Invalid, e.to_string()))?;
    Ok((bytes, parsed))
}

/// The blob (chunks by Direct-Get, or from the kit), checked against the desired size and
/// digest.
async fn fetch(core: &LinkCore, blobs: &Blobs<'_>, item: &Item) -> Result<Vec<u8>, InstallRefused> {
    let cap = match item.kind {
        ItemKind::Plugin => MAX_BLOB_BYTES,
        ItemKind::Policy => MAX_POLICY_BLOB_BYTES,
        ItemKind::Runbook => MAX_RUNBOOK_BLOB_BYTES,
    };
    if item.size > cap {
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!("{} bytes, over {cap}", item.size),
        ));
    }
    let size = usize::try_from(item.size)
        .map_err(|_| InstallRefused::new(DeployRefusal::Mismatch, "size too large"))?;
    let bytes = match blobs {
        Blobs::Nats(client) => fetch_chunks(core, client, item, size).await?,
        Blobs::Kit(kit) => kit.blob(&item.sha256).map(<[u8]>::to_vec).ok_or_else(|| {
            InstallRefused::new(
                DeployRefusal::Unavailable,
                format!("the kit does not carry {}", item.sha256),
            )
        })?,
    };
    if bytes.len() != size {
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!("the blob is {} bytes, the desired {size}", bytes.len()),
        ));
    }
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != item.sha256 {
        return Err(InstallRefused::new(
            DeployRefusal::Mismatch,
            format!("the blob's sha256 is {digest}, the desired {}", item.sha256),
        ));
    }
    Ok(bytes)
}

/// The blob's chunks by Direct-Get, at most `size` bytes.
async fn fetch_chunks(
    core: &LinkCore,
    client: &async_nats::Client,
    item: &Item,
    size: usize,
) -> Result<Vec<u8>, InstallRefused> {
    let unavailable = |m: String| InstallRefused::new(DeployRefusal::Unavailable, m);
    let mut bytes = Vec::with_capacity(size);
    let tenant = &core.identity.tenant;
    for n in 0..item.chunks() {
        let reply = client
            .request(
                subjects::blob_direct_get(tenant, &item.sha256, n),
                "".into(),
            )
            .await
            .map_err(|e| unavailable(format!("chunk {n}: {e}")))?;
        if let Some(status) = reply.status
            && status != async_nats::StatusCode::OK
        {
            return Err(unavailable(format!(
                "chunk {n} of {}: status {status}",
                item.sha256
            )));
        }
        if bytes.len() + reply.payload.len() > size {
            return Err(InstallRefused::new(
                DeployRefusal::Mismatch,
                format!("the blob is longer than the desired {size} bytes"),
            ));
        }
        bytes.extend_from_slice(&reply.payload);
    }
    Ok(bytes)
}

async fn report(
    core: &Arc<LinkCore>,
    item: &Item,
    outcome: DeployOutcome,
    error: Option<String>,
    check: Option<OwnCheck>,
) {
    let report = DeployReport {
        v: WIRE_VERSION,
        tenant: core.identity.tenant.clone(),
        agent: core.identity.agent.clone(),
        kind: item.kind,
        name: item.name.clone(),
        version: item.version.clone(),
        sha256: item.sha256.clone(),
        outcome,
        error,
        check,
        at: UnixMillis::now(),
    };
    match encode(&report) {
        Ok(payload) => {
            core.enqueue(Outgoing {
                kind: OutboxKind::Result,
                subject: report.nats_subject(),
                msg_id: report.msg_id(),
                payload,
            })
            .await;
        }
        Err(e) => tracing::error!("fleet: the deploy report of {} is not sent: {e}", item.name),
    }
}
