//! Project tooling, run as `cargo xtask <command>`: builds the wasm guest plugins into
//! `target/plugins/`, runs the tests, lints every workspace, and runs the demo. One module per
//! command; this file only dispatches.

mod apt;
mod build_plugins;
mod chromium;
mod demo;
mod demo_fleet;
mod demo_rollout;
mod fuzz;
mod layers;
mod lint;
mod nats;
mod polyglot;
mod python_env;
mod test;
mod util;
mod windows;

use std::path::Path;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  build-plugins [-v]   build the plugins, test guests and Python/JS examples into target/plugins/
  test [args...]       build-plugins, the NOC client's Python env and the pinned nats-server, then
                       `cargo test --workspace [args...]`
  lint                 cargo fmt --check and clippy -D warnings on every workspace
  layers               check the dependency rules between the workspace's crates
  nats                 install the pinned nats-server into target/tools/ and print its path
  chromium             install headless Chromium and chromedriver (Debian packages) for the
                       console's browser tests, and record their version
  demo                 run the demo
  demo fleet           the fleet demo: nats-server, a controller and two agents in two tenants
  check-windows        check that the warden binary compiles for x86_64-pc-windows-gnu
  fuzz [CASES] [SEED]  the parser fuzz targets (tests/fuzz_parsers.rs) with CASES each (50000)";

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask is expected one level below the repository root")?;
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    match command.as_deref() {
        Some("build-plugins") => build_plugins::run(root, &rest),
        Some("test") => test::run(root, &rest),
        Some("lint") => lint::run(root, &rest),
        Some("layers") => layers::run(root, &rest),
        Some("nats") => nats::run(root, &rest),
        Some("chromium") => chromium::run(root, &rest),
        Some("demo") => match rest.first().map(String::as_str) {
            None => demo::run(root),
            Some("fleet") => demo_fleet::run(root),
            Some(other) => {
                bail!("unknown demo {other:?}: `cargo xtask demo` or `cargo xtask demo fleet`")
            }
        },
        Some("fuzz") => fuzz::run(root, &rest),
        Some("check-windows") => windows::run(root, &rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
        None => bail!("no command given\n\n{USAGE}"),
    }
}
