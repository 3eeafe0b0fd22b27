//! The console's tests: the auth rules over plain HTTP ([`auth`]), the store's fleet queries at
//! 1,000 agents ([`queries`]), the patch columns and filters over plain HTTP ([`patches`]), the
//! failing checks by name ([`failing`]), the agent page's audit records ([`audit`]), the
//! console's own TLS ([`tls`]), and the pages in headless Chromium ([`browser`]), all against a
//! real nats-server, controller and SQLite store.

mod actions;
mod audit;
mod auth;
mod browser;
mod failing;
mod patches;
mod queries;
mod reports;
mod support;
mod tls;
