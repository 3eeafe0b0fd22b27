//! `cargo xtask test`: build the guest plugins the end-to-end tests load, then run the root
//! workspace's tests, passing any extra arguments through to `cargo test`.

use std::path::Path;

use crate::{build_plugins, util};

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    build_plugins::run(root, &[])?;
    util::run(util::cargo(root).args(["test", "--workspace"]).args(args))
}
