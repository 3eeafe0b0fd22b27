//! Test support shared by the modules: an audit log resealer, a `/metrics` scraper (the full filesystem is the
//! `warden-tmpfs` crate).

pub mod reseal;
pub mod scrape;
