//! Renewal of the agent's NATS credentials at half-life of its user JWT, over its own
//! connection (the controller's side and the reasons are in `warden_fleet_identity::renewal`).
//!
//! The connection signs in from a [`CredsSlot`] at every (re)connect, so a renewal is: ask on
//! `fleet.renew.<t>.<a>` with a request signed by the agent's key, check that the JWT it gets
//! is for that key, write the new `.creds` file atomically (mode 0600), put it in the slot,
//! audit `fleet.credentials-renewed`, and reconnect with it. A refusal is audited
//! (`fleet.renewal-refused`) and retried later: the current JWT stays valid until it expires.
//!
//! When to ask is pure ([`next_attempt`]): at half-life plus a share of
//! [`HALF_LIFE_SPREAD`], then after a failure [`RETRY_MIN`] doubling to [`RETRY_MAX`] with equal
//! jitter ([`warden_core::retry`]), both drawn from a seed each agent takes from its OS: a
//! thousand agents enrolled in the same minute, or cut off by the same controller outage, do not
//! all ask in the same second. Waits are cut into [`RECHECK`] pieces: the
//! monotonic clock stops while a laptop sleeps, the JWT's times are wall-clock.

use super::core::LinkCore;
use super::identity::{self, IdentityError};
use async_nats::{Auth, AuthError};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use warden_core::retry::{Retry, os_seed};
use warden_fleet_identity::renewal::MAX_RENEWAL_BYTES;
use warden_fleet_identity::{AgentKey, Credentials, RenewalReply, subjects, unix_now};

/// First retry after a failed renewal: 1 minute (a controller restarting, a server election).
pub const RETRY_MIN: Duration = Duration::from_secs(60);
/// Retries at most this far apart: 1 hour. Half a lifetime (15 days) leaves hundreds of tries.
pub const RETRY_MAX: Duration = Duration::from_secs(60 * 60);
/// Renewals are spread over this share of the lifetime after half-life (a tenth: 3 days of a
/// 30-day JWT, which still leaves 12 days of retries before it expires).
pub const HALF_LIFE_SPREAD: f64 = 0.1;
/// The longest single wait before the schedule is computed again from the wall clock.
pub const RECHECK: Duration = Duration::from_secs(60 * 60);

/// The credentials the connection signs in with; replaced by a renewal.
#[derive(Clone)]
pub(crate) struct CredsSlot(Arc<RwLock<String>>);

impl CredsSlot {
    pub fn new(creds: String) -> CredsSlot {
        CredsSlot(Arc::new(RwLock::new(creds)))
    }

    pub fn get(&self) -> String {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, creds: String) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = creds;
    }

    /// The answer to a server's connect nonce: the current JWT and the nonce signed by the seed.
    pub fn sign(&self, nonce: &[u8]) -> Result<Auth, AuthError> {
        let creds = self.get();
        let (jwt, seed) = match (identity::jwt_of(&creds), identity::seed_of(&creds)) {
            (Some(jwt), Some(seed)) => (jwt, seed),
            _ => {
                return Err(AuthError::new(
                    "the fleet credentials lost their JWT or seed",
                ));
            }
        };
        let key = nkeys::KeyPair::from_seed(seed)
            .map_err(|e| AuthError::new(format!("the fleet seed: {e}")))?;
        let signature = key
            .sign(nonce)
            .map_err(|e| AuthError::new(format!("signing the nonce: {e}")))?;
        let mut auth = Auth::new();
        auth.jwt = Some(jwt.to_string());
        auth.signature = Some(signature);
        Ok(auth)
    }
}

/// `(issued_at, expires_at)` of the JWT in `creds`, Unix seconds.
pub fn jwt_times(creds: &str) -> Option<(i64, i64)> {
    let jwt = identity::jwt_of(creds)?;
    let claims =
        warden_fleet_identity::jwt::decode::<warden_fleet_identity::jwt::User>(jwt).ok()?;
    Some((claims.issued_at, claims.expires?))
}

/// When to ask for new credentials (Unix seconds), for a JWT valid `issued_at..expires_at`,
/// after `failures` failed attempts in a row, for an agent whose jitter comes from `seed`: at
/// half-life plus up to [`HALF_LIFE_SPREAD`] of the lifetime; after a failure, not before a
/// pause from [`RETRY_MIN`] doubling to [`RETRY_MAX`] (each in its upper half) from `now`.
pub fn next_attempt(issued_at: i64, expires_at: i64, now: i64, failures: u32, seed: u64) -> i64 {
    let lifetime = expires_at.saturating_sub(issued_at).max(0);
    // The seed's top 53 bits as a fraction in [0, 1).
    let share = (seed >> 11) as f64 / (1u64 << 53) as f64;
    let spread = (lifetime as f64 * HALF_LIFE_SPREAD * share) as i64;
    let due = issued_at + lifetime / 2 + spread;
    if failures == 0 {
        return due;
    }
    let pause = Retry::jittered(RETRY_MIN, RETRY_MAX, seed).pause(failures);
    due.max(now.saturating_add(i64::try_from(pause.as_secs()).unwrap_or(i64::MAX)))
}

#[derive(Debug, thiserror::Error)]
enum RenewError {
    #[error("the request: {0}")]
    Request(String),
    #[error("the controller refused: {0}")]
    Refused(String),
    #[error("the controller's answer: {0}")]
    Answer(String),
    #[error(transparent)]
    Store(#[from] IdentityError),
}

/// Renew whenever due until `stop`; the new credentials go to `path` and `slot`.
pub(crate) async fn run(
    core: Arc<LinkCore>,
    client: async_nats::Client,
    slot: CredsSlot,
    path: PathBuf,
    mut connected: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let seed = os_seed();
    loop {
        let Some((issued_at, expires_at)) = jwt_times(&slot.get()) else {
            tracing::warn!("fleet: the credentials' JWT has no expiry; never renewed");
            return;
        };
        let at = next_attempt(issued_at, expires_at, unix_now(), failures, seed);
        let wait = u64::try_from(at.saturating_sub(unix_now())).unwrap_or(0);
        if wait > 0 {
            let wait = Duration::from_secs(wait).min(RECHECK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        tokio::select! {
            up = connected.wait_for(|c| *c) => if up.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        match renew(&core, &client, &slot, &path).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!("fleet: renewing the credentials: {e}");
            }
        }
    }
}

async fn renew(
    core: &Arc<LinkCore>,
    client: &async_nats::Client,
    slot: &CredsSlot,
    path: &std::path::Path,
) -> Result<(), RenewError> {
    let current = slot.get();
    let key = identity::seed_of(&current)
        .and_then(AgentKey::from_seed)
        .ok_or_else(|| RenewError::Request("the credentials hold no user seed".into()))?;
    let tenant = &core.identity.tenant;
    let request = key
        .renewal_request(tenant, unix_now())
        .map_err(|e| RenewError::Request(e.to_string()))?;
    let body = serde_json::to_vec(&request).map_err(|e| RenewError::Request(e.to_string()))?;
    let message = client
        .request(subjects::renewal(tenant, &core.identity.agent), body.into())
        .await
        .map_err(|e| RenewError::Request(e.to_string()))?;
    if message.payload.len() > MAX_RENEWAL_BYTES {
        return Err(RenewError::Answer(format!(
            "{} bytes, more than {MAX_RENEWAL_BYTES}",
            message.payload.len()
        )));
    }
    let reply: RenewalReply =
        serde_json::from_slice(&message.payload).map_err(|e| RenewError::Answer(e.to_string()))?;
    if let Some(error) = reply.error {
        core.audit("fleet.renewal-refused", json!({ "error": error }));
        return Err(RenewError::Refused(error));
    }
    let (Some(jwt), Some(expires_at)) = (reply.jwt, reply.expires_at) else {
        return Err(RenewError::Answer("neither a JWT nor an error".into()));
    };
    // Only a JWT for this very key is worth storing: anything else would lock the agent out.
    let claims = warden_fleet_identity::jwt::decode::<warden_fleet_identity::jwt::User>(&jwt)
        .map_err(|e| RenewError::Answer(format!("not a user JWT: {e}")))?;
    if claims.subject != core.identity.agent.as_str() || claims.expires != Some(expires_at) {
        return Err(RenewError::Answer(
            "a JWT for another key or with another expiry than announced".into(),
        ));
    }
    let seed = key.seed().map_err(|e| RenewError::Request(e.to_string()))?;
    let creds = Credentials::new(jwt, seed, expires_at);
    let target = path.to_path_buf();
    let written = creds.clone();
    tokio::task::spawn_blocking(move || identity::store_credentials(&target, &written))
        .await
        .map_err(|e| RenewError::Request(format!("the task failed: {e}")))??;
    slot.set(creds.creds());
    let issued_at = claims.issued_at;
    core.audit(
        "fleet.credentials-renewed",
        json!({ "issued_at": issued_at, "expires_at": expires_at, "file": path.display().to_string() }),
    );
    tracing::info!("fleet: credentials renewed, valid until {expires_at}; reconnecting with them");
    if let Err(e) = client.force_reconnect().await {
        tracing::warn!("fleet: reconnecting with the renewed credentials: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    #[test]
    fn the_first_attempt_is_at_half_life_plus_a_seeded_share_of_a_tenth_of_the_lifetime() {
        let iat = 1_900_000_000;
        let exp = iat + 30 * DAY;
        let half = iat + 15 * DAY;
        let spread = 3 * DAY;
        // Seed 0 asks at half-life exactly, however early it is asked or past it.
        assert_eq!(next_attempt(iat, exp, iat, 0, 0), half);
        assert_eq!(next_attempt(iat, exp, half + 100, 0, 0), half);
        // The largest seed: just under three days later.
        let last = next_attempt(iat, exp, iat, 0, u64::MAX);
        assert!(last > half + spread - 60 && last < half + spread, "{last}");
        // 1,000 agents enrolled in the same second spread over the three days.
        let mut hours = std::collections::BTreeSet::new();
        for agent in 0..1000u64 {
            let seed = agent.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let at = next_attempt(iat, exp, iat, 0, seed);
            assert!(at >= half && at < half + spread, "agent {agent}: {at}");
            hours.insert((at - half) / 3600);
        }
        assert!(hours.len() > 60, "{} of 72 hours used", hours.len());
        // A short injected lifetime: 10 minutes, due after 5 (and at most 1 more).
        let short = next_attempt(iat, iat + 600, iat, 0, u64::MAX / 2);
        assert!((iat + 300..iat + 360).contains(&short), "{short}");
    }

    #[test]
    fn failures_back_off_within_their_upper_half_and_never_before_the_due_time() {
        let iat = 1_900_000_000;
        let exp = iat + 30 * DAY;
        let now = iat + 20 * DAY;
        let (min, max) = (RETRY_MIN.as_secs() as i64, RETRY_MAX.as_secs() as i64);
        for seed in [0, 1, 42, u64::MAX] {
            for (failures, nominal) in [(1, min), (2, 2 * min), (3, 4 * min)] {
                let at = next_attempt(iat, exp, now, failures, seed);
                assert!(
                    at >= now + nominal / 2 && at <= now + nominal,
                    "seed {seed}, failure {failures}: {}",
                    at - now
                );
            }
            for failures in 7..40 {
                let at = next_attempt(iat, exp, now, failures, seed);
                assert!(
                    at >= now + max / 2 && at <= now + max,
                    "{failures}: {}",
                    at - now
                );
            }
        }
        // A failure before the due time does not bring the next attempt forward.
        assert_eq!(next_attempt(iat, exp, iat, 1, 0), iat + 15 * DAY);
    }
}
