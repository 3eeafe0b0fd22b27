//! The agent's gRPC server, put together: TLS when configured, keepalive, the auth layer with its
//! stream slots, message size caps, every `warden.v1` service and the standard health service.
//! The daemon serves it on its listener; this is the only place that names the generated
//! servers.

use super::auth::{AuthLayer, Authenticator};
use super::pb::{
    agent_server::AgentServer, inventory_server::InventoryServer, plugins_server::PluginsServer,
    runbooks_server::RunbooksServer,
};
use super::streams::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, StreamSlots};
use super::{AgentApi, PluginsApi, RunbooksApi, State};
use crate::PluginManager;
use crate::daemon::DaemonError;
use crate::daemon::config::AgentConfig;
use std::sync::Arc;
use tonic::transport::server::Router;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tower::layer::util::Stack;

pub struct GrpcApi {
    pub router: Router<Stack<AuthLayer, tower::layer::util::Identity>>,
    pub health: Health,
    /// The tokens it checks; a SIGHUP reload replaces them.
    pub auth: Arc<Authenticator>,
}

/// The health service's handle: says when the agent stops taking runs.
pub struct Health(tonic_health::server::HealthReporter);

impl Health {
    pub async fn stopping(&self) {
        self.0
            .set_not_serving::<RunbooksServer<RunbooksApi>>()
            .await;
    }
}

impl GrpcApi {
    pub async fn build(
        state: State,
        config: &AgentConfig,
        runner: Arc<PluginManager>,
    ) -> Result<GrpcApi, DaemonError> {
        // Dead clients are found by keepalive pings; their streams end and free their slots.
        let mut builder = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
        if let Some(tls) = &config.api.tls {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| DaemonError::Tls(format!("{}: {e}", p.display())))
            };
            let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .map_err(|e| DaemonError::Tls(e.to_string()))?;
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RunbooksServer<RunbooksApi>>().await;
        let auth = Arc::new(Authenticator::new(&config.api.tokens, runner));
        let checks = auth.clone();
        let streams = StreamSlots::new(config.api.max_streams_per_token, config.api.max_streams);
        let max = config.api.max_message_bytes;
        let router = builder
            .layer(AuthLayer(checks, streams))
            .add_service(
                RunbooksServer::new(RunbooksApi(state.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                PluginsServer::new(PluginsApi(state.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                InventoryServer::new(AgentApi(state.clone()))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(
                AgentServer::new(AgentApi(state))
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(health_service);
        Ok(GrpcApi {
            router,
            health: Health(health),
            auth,
        })
    }
}
