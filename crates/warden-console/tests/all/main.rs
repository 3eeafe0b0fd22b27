//! The console's tests: the auth rules over plain HTTP ([`auth`]), the store's fleet queries at
//! 1,000 agents ([`queries`]), the patch columns and filters over plain HTTP ([`patches`]), and the pages in headless Chromium ([`browser`]), all against a
//! real nats-server, controller and SQLite store.

mod actions;
mod auth;
mod browser;
mod patches;
mod queries;
mod reports;
mod support;
