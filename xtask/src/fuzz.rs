//! `cargo xtask fuzz [CASES] [SEED]`: the parser fuzz targets of `tests/all/fuzz_parsers.rs` with
//! many more cases than the normal test run gives them (default 50,000 per target), in a release
//! build. Another SEED explores another stream of mutants; a failure prints the seed and case.

use std::path::Path;

use crate::util;

/// Cases per target when none is given: about a minute for the six targets in release.
const DEFAULT_CASES: &str = "50000";

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let cases = args.first().map_or(DEFAULT_CASES, String::as_str);
    let mut cmd = util::cargo(root);
    cmd.args([
        "test",
        "--release",
        "-p",
        "warden-tests",
        "--test",
        "all",
        "fuzz_parsers",
    ])
    .env("WARDEN_FUZZ_CASES", cases);
    if let Some(seed) = args.get(1) {
        cmd.env("WARDEN_FUZZ_SEED", seed);
    }
    util::run(&mut cmd)
}
