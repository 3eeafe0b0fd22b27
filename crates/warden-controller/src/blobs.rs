//! Blob collection (issue 16): the bundles in `FLEET_BLOBS` that nothing needs any more are
//! purged, at start, daily, and on `warden fleet gc`.
//!
//! A blob (one tenant's copy of one bundle, by digest) is needed while a desired row of its
//! tenant names it (what agents converge on, offline ones included), or while a rollout that
//! can still be rolled back names it as an agent's previous bundle (rollback rewrites desired
//! rows to it and uploads nothing). Everything else is garbage once it is older than
//! [`GRACE`]: a publish stores its blob before the desired rows that name it. Publishing and
//! collecting hold one lock ([`crate::Controller`]'s `blobs`), so a publish of a bundle that is
//! being collected waits, then stores it again.
//!
//! Which blobs exist is the store's `blobs` table, written before the chunks go out. Blobs
//! stored by a controller older than the table are found by their first chunk's subject in the
//! stream (`fleet.blob.*.*.0`) and recorded as stored now, so they go after one more grace.

use std::time::Duration;

use async_nats::jetstream;
use tokio_stream::StreamExt as _;
use warden_access::{Caller, Role};
use warden_fleet_identity::subjects;

use crate::controller::{Controller, FleetError, need};
use crate::store::BlobRecord;

/// A blob younger than this is never collected: longer than any publish takes between storing
/// its blob and writing the rows that name it (seconds, or minutes for a large fleet).
pub const GRACE: Duration = Duration::from_secs(60 * 60);

/// How often the controller collects by itself: blobs are a few MiB each, a day's more is
/// nothing, and each collection lists every blob's subject.
pub const INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// What a collection removed (or, dry, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub blobs: Vec<BlobRecord>,
    pub bytes: u64,
    pub dry_run: bool,
}

fn nats(e: impl std::fmt::Display) -> FleetError {
    FleetError::Nats(e.to_string())
}

impl Controller {
    /// Collect the blobs nothing needs (module doc); an MSP-wide admin's call, audited
    /// `fleet.blobs.collected` when anything went.
    pub async fn collect_blobs(
        &self,
        caller: &Caller,
        dry_run: bool,
    ) -> Result<Collected, FleetError> {
        need(caller, Role::Admin)?;
        if caller.scope.tenant().is_some() {
            return Err(FleetError::Forbidden(format!(
                "blob collection spans every tenant; `{}` is scoped to one",
                caller.name
            )));
        }
        let _held = self.blobs.lock().await;
        let js = jetstream::new(self.nats.clone());
        let stream = js.get_stream(subjects::BLOBS_STREAM).await.map_err(nats)?;
        self.record_unknown_blobs(&stream).await?;
        let grace_ms = i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX);
        let unused = self.store.unused_blobs(self.now().plus_millis(-grace_ms))?;
        let bytes = unused.iter().map(|b| b.size).sum();
        if dry_run || unused.is_empty() {
            return Ok(Collected {
                blobs: unused,
                bytes,
                dry_run,
            });
        }
        let mut gone = Vec::with_capacity(unused.len());
        for blob in unused {
            stream
                .purge()
                .filter(subjects::blob_chunks(&blob.tenant, &blob.sha256))
                .await
                .map_err(nats)?;
            self.store.forget_blob(&blob)?;
            gone.push(blob);
        }
        let bytes = gone.iter().map(|b| b.size).sum();
        self.audit(
            "fleet.blobs.collected",
            serde_json::json!({
                "blobs": gone.iter().map(|b| serde_json::json!({
                    "tenant": b.tenant.as_str(), "sha256": b.sha256, "bytes": b.size,
                })).collect::<Vec<_>>(),
                "bytes": bytes, "caller": caller.name,
            }),
        )?;
        Ok(Collected {
            blobs: gone,
            bytes,
            dry_run,
        })
    }

    /// Record, as stored now, the blobs in the stream the store does not know.
    async fn record_unknown_blobs(
        &self,
        stream: &jetstream::stream::Stream,
    ) -> Result<(), FleetError> {
        let mut firsts = stream
            .info_with_subjects(subjects::blob_first_chunks())
            .await
            .map_err(nats)?;
        let now = self.now();
        while let Some(first) = firsts.next().await {
            let (subject, _) = first.map_err(nats)?;
            if let Some((tenant, sha256)) = subjects::parse_blob_chunk(&subject) {
                self.store.record_blob_if_unknown(&tenant, &sha256, now)?;
            }
        }
        Ok(())
    }
}
