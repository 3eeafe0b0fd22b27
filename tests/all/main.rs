//! The end-to-end tests of the runner with real guest plugins, in one test binary (one link of
//! the whole stack instead of one per file). Each module is one area; `guests` ties every guest
//! plugin the tests build to a test.

mod attacks_sandbox;
mod audit_trail;
mod bundles;
mod capabilities;
mod compliance;
mod fuzz_parsers;
mod guests;
mod hostile;
mod http;
mod patching;
mod plugins;
mod polyglot;
mod runbooks;
mod testkit;
mod tickets;
