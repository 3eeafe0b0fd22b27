//! The proc macro behind `warden-sdk`'s role macros (`warden_sdk::check!` and the others); use
//! those, never this crate directly.
//!
//! `wit_bindgen::generate!` takes its WIT as a path relative to the crate that expands it, or as
//! a string literal. A plugin crate has no path to the SDK's `wit/`, and a `macro_rules!` macro
//! cannot hand `generate!` a literal it computed, so this macro does: the WIT text of `wit/` is
//! compiled into it (`include_str!`, which also rebuilds it, and every plugin, when a file
//! changes) and it expands to `generate!` with that text inline. No path ends up in a plugin
//! crate or a build artifact.

use proc_macro::{Literal, TokenStream, TokenTree};

/// The WIT package, declared once at the top of the inline text.
const PACKAGE: &str = "warden:plugin@0.1.0";

/// Every file of `wit/`. A file missing here makes `generate!` report the interface it lacks;
/// the `lists_every_wit_file` test catches it first.
const WIT_FILES: [(&str, &str); 11] = [
    ("exec.wit", include_str!("../../../wit/exec.wit")),
    ("fs.wit", include_str!("../../../wit/fs.wit")),
    ("http.wit", include_str!("../../../wit/http.wit")),
    ("kv.wit", include_str!("../../../wit/kv.wit")),
    ("log.wit", include_str!("../../../wit/log.wit")),
    ("roles.wit", include_str!("../../../wit/roles.wit")),
    ("service.wit", include_str!("../../../wit/service.wit")),
    ("sysinfo.wit", include_str!("../../../wit/sysinfo.wit")),
    ("ticketing.wit", include_str!("../../../wit/ticketing.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// Interfaces the SDK generates itself (every capability, and `types`): a plugin's bindings
/// reuse them, so its own code is only its world's exports. What the SDK embeds in a component
/// names imports only, and a component imports only the functions it calls, so the role's world
/// still bounds what a correct plugin imports.
const SDK_INTERFACES: [&str; 8] = [
    "types", "log", "exec", "fs", "sysinfo", "kv", "http", "service",
];

/// Capabilities only the worlds that may change the machine import.
const MACHINE_INTERFACES: [&str; 2] = ["fs-write", "service-control"];

/// The worlds a plugin may be built for, and whether each may change the machine.
const WORLDS: [(&str, bool); 5] = [
    ("discovery-plugin", false),
    ("check-plugin", false),
    ("remediation-plugin", true),
    ("check-remediation-plugin", true),
    ("ticketing-plugin", false),
];

/// `world!("check-plugin")` expands to `mod __warden_world { ... }`: the `wit-bindgen`
/// bindings of that world, their imports shared with `warden_sdk::__private::bindings`.
#[proc_macro]
pub fn world(input: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = input.into_iter().collect();
    let name = match tokens.as_slice() {
        [TokenTree::Literal(lit)] => lit.to_string().trim_matches('"').to_string(),
        _ => return error("expected the world name as a string literal"),
    };
    let Some(&(_, changes_machine)) = WORLDS.iter().find(|(w, _)| *w == name) else {
        return error(&format!("`{name}` is not a plugin world"));
    };
    let machine: &[&str] = if changes_machine {
        &MACHINE_INTERFACES
    } else {
        &[]
    };
    let mut with = String::new();
    for interface in SDK_INTERFACES.iter().chain(machine) {
        let module = interface.replace('-', "_");
        with.push_str(&format!(
            "\"warden:plugin/{interface}@0.1.0\": \
             warden_sdk::__private::bindings::warden::plugin::{module},\n"
        ));
    }
    let source = format!(
        "#[allow(missing_docs, unsafe_code, unused, clippy::all)]
        mod __warden_world {{
            warden_sdk::__private::wit_bindgen::generate!({{
                world: {world},
                inline: {wit},
                runtime_path: \"warden_sdk::__private::wit_bindgen::rt\",
                with: {{ {with} }},
            }});
        }}",
        world = Literal::string(&name),
        wit = Literal::string(&wit_text()),
    );
    source
        .parse()
        .unwrap_or_else(|e| error(&format!("warden-sdk-macros generated invalid code: {e}")))
}

/// The files of `wit/` as one WIT document: the package declared once, then every file's body.
fn wit_text() -> String {
    let header = format!("package {PACKAGE};");
    let mut text = format!("{header}\n");
    for (_, file) in WIT_FILES {
        for line in file.lines().filter(|line| line.trim() != header) {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

fn error(message: &str) -> TokenStream {
    format!("::core::compile_error!({});", Literal::string(message))
        .parse()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{PACKAGE, WIT_FILES, wit_text};

    #[test]
    fn lists_every_wit_file() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("wit/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = WIT_FILES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn declares_the_package_once() {
        let text = wit_text();
        assert_eq!(text.matches(&format!("package {PACKAGE};")).count(), 1);
        for (name, file) in WIT_FILES {
            assert!(file.contains(&format!("package {PACKAGE};")), "{name}");
        }
    }
}
