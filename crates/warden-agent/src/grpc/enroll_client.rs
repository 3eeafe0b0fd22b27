//! Enrollment, the agent's side, over the controller's gRPC service `warden.fleet.v1.Enrollment`
//! (the agent has no NATS credentials before it). The agent generates its own key; `Begin`
//! sends the token, the tenant and the public key and gets a challenge; the agent signs it
//! (with the token id, tenant and key, never the bare nonce); `Complete` returns the user JWT.
//! The seed never leaves the agent. The token is the only credential (no bearer token).
//!
//! The protobuf types stay in this adapter: callers get domain types
//! ([`warden_fleet_identity`] credentials).

use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use warden_fleet_identity::{AgentId, AgentJwt, AgentKey, Challenge, Credentials, TenantId};
use warden_proto::fleet::enrollment_client::EnrollmentClient;
use warden_proto::fleet::{BeginEnrollmentRequest, CompleteEnrollmentRequest};

/// Connecting to the controller and each call: enrollment is two small round trips.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// `http://host:port` or `https://host:port` (the controller's gRPC API).
    pub controller: String,
    pub token: String,
    pub tenant: TenantId,
    /// Display name (the host name).
    pub name: String,
    /// A PEM CA to verify an `https://` controller with.
    pub ca_file: Option<PathBuf>,
}

/// A completed enrollment.
#[derive(Debug)]
pub struct Enrolled {
    pub agent: AgentId,
    pub credentials: Credentials,
    /// Where the controller says to connect.
    pub nats_urls: Vec<String>,
    /// Tags the token carried (`key=value`).
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollClientError {
    #[error("bad controller address {0}")]
    Address(String),
    #[error("cannot read the CA file {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("cannot reach the controller at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the controller refused the enrollment ({code:?}): {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("the controller's answer does not fit this enrollment: {0}")]
    Mismatch(String),
    #[error("cannot sign the challenge: {0}")]
    Sign(String),
}

fn refused(s: tonic::Status) -> EnrollClientError {
    EnrollClientError::Refused {
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// Enroll a new key; returns its credentials (store them with
/// [`crate::fleet::store_credentials`]).
pub async fn enroll(options: &EnrollOptions) -> Result<Enrolled, EnrollClientError> {
    let mut endpoint = Endpoint::from_shared(options.controller.clone())
        .map_err(|_| EnrollClientError::Address(options.controller.clone()))?
        .connect_timeout(ENROLL_TIMEOUT)
        .timeout(ENROLL_TIMEOUT);
    if let Some(ca) = &options.ca_file {
        let pem = std::fs::read(ca).map_err(|e| EnrollClientError::Ca {
            path: ca.clone(),
            message: e.to_string(),
        })?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| EnrollClientError::Connect {
                url: options.controller.clone(),
                message: e.to_string(),
            })?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| EnrollClientError::Connect {
            url: options.controller.clone(),
            message: e.to_string(),
        })?;
    let mut client = EnrollmentClient::new(channel);
    let key = AgentKey::generate();
    let me = key.id();
    let request = key.request(&options.token, &options.tenant, &options.name);
    let challenge = client
        .begin(BeginEnrollmentRequest {
            token: request.token.clone(),
            tenant: request.tenant,
            agent: request.agent,
            name: request.name,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if challenge.agent != me.as_str() || challenge.tenant != options.tenant.as_str() {
        return Err(EnrollClientError::Mismatch(format!(
            "challenge for agent {} of tenant {}",
            challenge.agent, challenge.tenant
        )));
    }
    let challenge = Challenge {
        token_id: challenge.token_id,
        tenant: options.tenant.clone(),
        agent: me.clone(),
        nonce: challenge.nonce,
        expires_at: challenge.expires_at,
    };
    let answer = key
        .answer(&challenge)
        .map_err(|e| EnrollClientError::Sign(e.to_string()))?;
    let done = client
        .complete(CompleteEnrollmentRequest {
            token: options.token.clone(),
            token_id: answer.token_id,
            agent: answer.agent,
            nonce: answer.nonce,
            signature: answer.signature,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if done.agent != me.as_str() || done.tenant != options.tenant.as_str() || done.jwt.is_empty() {
        return Err(EnrollClientError::Mismatch(format!(
            "credentials for agent {} of tenant {}",
            done.agent, done.tenant
        )));
    }
    let jwt = AgentJwt {
        tenant: options.tenant.clone(),
        agent: me.clone(),
        jwt: done.jwt,
        issued_at: warden_fleet_identity::unix_now(),
        expires_at: done.expires_at,
    };
    let credentials = key
        .credentials(&jwt)
        .map_err(|e| EnrollClientError::Sign(e.to_string()))?;
    Ok(Enrolled {
        agent: me,
        credentials,
        nats_urls: done.nats_urls,
        tags: done.tags,
    })
}
