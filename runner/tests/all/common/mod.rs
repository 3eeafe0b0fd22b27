//! Test support shared by the modules: a controller with its API (`controller`), an audit log
//! resealer, a `/metrics` scraper (the full filesystem is the
//! `warden-tmpfs` crate).

pub mod controller;
pub mod reseal;
pub mod scrape;
