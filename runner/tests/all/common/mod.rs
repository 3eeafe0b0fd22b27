//! Test support shared by the modules: a real full filesystem and an audit log resealer.

pub mod reseal;
pub mod tmpfs;
