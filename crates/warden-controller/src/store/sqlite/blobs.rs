//! The blobs the controller stored in `FLEET_BLOBS`, one row per (tenant, bundle digest), and
//! which of them something still needs: what blob collection ([`crate::blobs`]) reads.

use rusqlite::{Connection, params};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;

use super::{collect, corrupt};
use crate::store::{BlobRecord, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    tenant TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    stored_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, sha256)
);
";

/// Record a blob stored at `at`; stored again, its time moves to the later one (and its size
/// is the one now known).
pub(super) fn record(
    db: &Connection,
    tenant: &TenantId,
    sha256: &str,
    size: u64,
    at: UnixMillis,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO blobs (tenant, sha256, size, stored_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, sha256) DO UPDATE SET
             stored_ms = max(stored_ms, excluded.stored_ms), size = excluded.size",
        params![
            tenant.as_str(),
            sha256,
            i64::try_from(size).unwrap_or(i64::MAX),
            at.as_millis()
        ],
    )?;
    Ok(())
}

/// Record a blob found in the stream, unless known (its size unknown: 0).
pub(super) fn record_if_unknown(
    db: &Connection,
    tenant: &TenantId,
    sha256: &str,
    at: UnixMillis,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT OR IGNORE INTO blobs (tenant, sha256, size, stored_ms) VALUES (?1, ?2, 0, ?3)",
        params![tenant.as_str(), sha256, at.as_millis()],
    )?;
    Ok(())
}

/// The recorded blobs no desired row of their tenant names (a removal names no blob) and no
/// rollout that can still be rolled back names as an agent's previous bundle, stored before
/// `stored_before`: what collection may delete.
pub(super) fn unused(
    db: &Connection,
    stored_before: UnixMillis,
) -> Result<Vec<BlobRecord>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT b.tenant, b.sha256, b.size, b.stored_ms FROM blobs b
         WHERE b.stored_ms < ?1
           AND NOT EXISTS (SELECT 1 FROM desired d
                           WHERE d.tenant = b.tenant AND d.sha256 = b.sha256 AND d.removed = 0)
           AND NOT EXISTS (SELECT 1 FROM rollout_agents a JOIN rollouts r ON r.id = a.rollout_id
                           WHERE r.phase != 'rolled-back'
                             AND a.tenant = b.tenant AND a.prev_sha256 = b.sha256)
         ORDER BY b.stored_ms, b.tenant, b.sha256",
    )?;
    collect(&mut stmt, [stored_before.as_millis()], |row| {
        let tenant: String = row.get(0)?;
        let size: i64 = row.get(2)?;
        Ok(BlobRecord {
            tenant: TenantId::new(tenant).map_err(|e| corrupt("blob tenant")(e.to_string()))?,
            sha256: row.get(1)?,
            size: u64::try_from(size).unwrap_or(0),
            stored_at: UnixMillis(row.get(3)?),
        })
    })
}

/// Forget a collected blob, unless it was stored again since `stored_at` (a publish racing
/// the collection: its row then stays, and so must its chunks).
pub(super) fn forget(db: &Connection, blob: &BlobRecord) -> Result<bool, StoreError> {
    let n = db.execute(
        "DELETE FROM blobs WHERE tenant = ?1 AND sha256 = ?2 AND stored_ms = ?3",
        params![
            blob.tenant.as_str(),
            blob.sha256,
            blob.stored_at.as_millis()
        ],
    )?;
    Ok(n == 1)
}
