//! Generates `foreach_guest!`: every guest plugin the tests build (the members of
//! `tests/guests/Cargo.toml` and `plugins/Cargo.toml`), so that `all/guests.rs` can require a
//! test for each (wasmtime's `foreach_*!` pattern). A guest added to a workspace without a test
//! of its name then fails to compile.

use std::fmt::Write as _;
use std::path::Path;

fn members(workspace: &Path) -> Vec<String> {
    println!("cargo:rerun-if-changed={}", workspace.display());
    let text = std::fs::read_to_string(workspace)
        .unwrap_or_else(|e| panic!("reading {}: {e}", workspace.display()));
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", workspace.display()));
    manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .unwrap_or_else(|| panic!("{} has no [workspace] members", workspace.display()))
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut guests: Vec<String> = members(&root.join("guests").join("Cargo.toml"));
    guests.extend(members(&root.join("..").join("plugins").join("Cargo.toml")));
    guests.sort();
    let mut out = String::from("macro_rules! foreach_guest {\n    ($m:ident) => {\n");
    for guest in &guests {
        let ident = guest.replace('-', "_");
        let _ = writeln!(out, "        $m!({ident}, {guest:?});");
    }
    out.push_str("    };\n}\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}
