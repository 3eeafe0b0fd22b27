//! The controller's side of JWT renewal: an agent past half its JWT's lifetime asks on
//! `fleet.renew.<tenant>.<agent>` (its own subject: the server lets no one else publish there)
//! with a request signed by its key, and gets a new user JWT for the same key, or a refusal.
//! The identity layer checks the request ([`warden_fleet_identity::FleetAuthority::renew`]);
//! here the agent must also be enrolled in this controller's store and not denied, and every
//! answer is audited (`fleet.renewed`, `fleet.renew-refused`) before it is sent: no credential
//! leaves without its record.

use warden_fleet_identity::renewal::MAX_RENEWAL_BYTES;
use warden_fleet_identity::{AgentId, RenewalError, RenewalReply, RenewalRequest, TenantId};

use crate::controller::{Controller, FleetError, lock};

impl Controller {
    /// Answer a renewal request that came on `subject`. `Err` only when the answer could not be
    /// audited; then nothing is sent (the agent asks again later).
    pub fn take_renewal(&self, subject: &str, payload: &[u8]) -> Result<RenewalReply, FleetError> {
        let (tenant, agent) = match renewal_subject(subject) {
            Some(parts) => parts,
            None => {
                tracing::warn!("a renewal request on {subject}, not an agent's renewal subject");
                return Ok(RenewalReply::refused(&RenewalError::Misaddressed {
                    claimed: String::new(),
                    subject: subject.to_string(),
                }));
            }
        };
        let answer = self.renew(&tenant, &agent, payload);
        self.bump(|p| p.renewals += 1);
        match answer {
            Ok(jwt) => {
                self.audit(
                    "fleet.renewed",
                    serde_json::json!({
                        "agent": agent.as_str(),
                        "tenant": tenant.as_str(),
                        "issued_at": jwt.issued_at,
                        "expires_at": jwt.expires_at,
                    }),
                )?;
                Ok(RenewalReply::renewed(&jwt))
            }
            Err(e) => {
                self.audit(
                    "fleet.renew-refused",
                    serde_json::json!({
                        "agent": agent.as_str(),
                        "tenant": tenant.as_str(),
                        "error": e.to_string(),
                    }),
                )?;
                Ok(RenewalReply::refused(&e))
            }
        }
    }

    fn renew(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        payload: &[u8],
    ) -> Result<warden_fleet_identity::AgentJwt, RenewalError> {
        if payload.len() > MAX_RENEWAL_BYTES {
            return Err(RenewalError::Authority(format!(
                "the request is {} bytes, more than {MAX_RENEWAL_BYTES}",
                payload.len()
            )));
        }
        let request: RenewalRequest = serde_json::from_slice(payload)
            .map_err(|e| RenewalError::Authority(format!("not a renewal request: {e}")))?;
        let record = self
            .store
            .agent(agent)
            .map_err(|e| RenewalError::Authority(format!("store: {e}")))?
            .filter(|r| &r.tenant == tenant)
            .ok_or_else(|| RenewalError::Unknown(agent.clone()))?;
        let now = self.now().as_secs();
        let deny = lock(&self.enrollment).deny.clone();
        if record.revoked_at.is_some() {
            return Err(RenewalError::Revoked(agent.clone()));
        }
        lock(&self.authority).renew(&request, tenant, agent, &record.name, &deny, now)
    }
}

/// `fleet.renew.<tenant>.<agent>` into its parts.
fn renewal_subject(subject: &str) -> Option<(TenantId, AgentId)> {
    let rest = subject.strip_prefix(warden_fleet_identity::subjects::RENEWALS)?;
    let rest = rest.strip_prefix('.')?;
    let (tenant, agent) = rest.split_once('.')?;
    Some((
        TenantId::new(tenant).ok()?,
        AgentId::new(agent.to_string()).ok()?,
    ))
}
