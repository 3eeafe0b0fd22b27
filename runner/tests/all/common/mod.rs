//! Test support shared by the modules: an audit log resealer (the full filesystem is the
//! `warden-tmpfs` crate).

pub mod reseal;
