//! The contract between a component and its manifest, over the names the component imports and
//! exports: importing a capability the manifest does not request is refused (naming it),
//! requesting one the component never imports is a warning, and the role's exports must be
//! present.
//!
//! Pure over names, so that the sandbox checks it before a component may run (names read by
//! wasmtime) and `warden plugin build` checks it as soon as a component is built (names read
//! from the binary), with the same words: an author learns at build what an agent would refuse
//! at install.

use crate::Capability;
use crate::error::RunError;
use crate::manifest::{Manifest, Role};

/// The WIT package every plugin interface belongs to.
pub const PACKAGE: &str = "warden:plugin";
/// The package version this runner implements.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// `warden:plugin/exec@0.1.0` -> `exec`.
fn warden_interface(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// Whether the component may import `interface` under its manifest.
fn requested(manifest: &Manifest, interface: &str) -> bool {
    match interface {
        "types" | "log" => true,
        other => Capability::from_interface(other).is_some_and(|c| manifest.may_import(c)),
    }
}

fn required_exports(role: Role) -> &'static [&'static str] {
    match role {
        Role::Discovery => &["discovery"],
        Role::Check => &["check"],
        Role::Remediation => &["remediation"],
        Role::CheckRemediation => &["check", "remediation"],
        Role::Ticketing => &["ticketing"],
    }
}

/// The line of WIT a world needs to import `interface` (what a Python or JavaScript author adds
/// to `world.wit`).
pub fn import_line(interface: &str) -> String {
    format!("import {PACKAGE}/{interface}@{PACKAGE_VERSION};")
}

/// Check the names a component imports and exports against its manifest. Returns warnings for
/// requested capabilities the component never imports.
pub fn check<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    exports: impl IntoIterator<Item = &'a str>,
    manifest: &Manifest,
) -> Result<Vec<String>, RunError> {
    let mut imported = Vec::new();
    for name in imports {
        if name.starts_with("wasi:") {
            // WASI is linked with a context that grants nothing: no files, no network, no env.
            continue;
        }
        let Some(interface) = warden_interface(name) else {
            return Err(RunError::ImportNotGranted {
                plugin: manifest.name.clone(),
                interface: name.to_string(),
                reason: "which this runner does not provide (only warden:plugin and WASI interfaces are)".into(),
            });
        };
        if !name.ends_with(&format!("@{PACKAGE_VERSION}")) {
            return Err(RunError::InvalidComponent {
                reason: format!(
                    "`{name}` targets another version of {PACKAGE}; this runner implements {PACKAGE_VERSION}"
                ),
            });
        }
        if !requested(manifest, interface) {
            let reason = if Capability::from_interface(interface)
                .is_some_and(|c| c.changes_machine())
                && !manifest.role.may_change_machine()
            {
                format!(
                    "which a {} plugin may not use; only remediation roles may",
                    manifest.role
                )
            } else {
                format!(
                    "which its manifest does not request: add it to [capabilities] in plugin.toml (capability `{interface}`)"
                )
            };
            return Err(RunError::ImportNotGranted {
                plugin: manifest.name.clone(),
                interface: name.to_string(),
                reason,
            });
        }
        imported.push(interface.to_string());
    }
    let exported: Vec<&str> = exports.into_iter().filter_map(warden_interface).collect();
    for needed in required_exports(manifest.role) {
        if !exported.contains(needed) {
            return Err(RunError::InvalidComponent {
                reason: format!(
                    "a {} plugin must export `{PACKAGE}/{needed}@{PACKAGE_VERSION}`, and this component does not (it exports: {})",
                    manifest.role,
                    if exported.is_empty() {
                        "nothing of warden:plugin".to_string()
                    } else {
                        exported.join(", ")
                    }
                ),
            });
        }
    }
    // Requested but never imported: the grant is wider than the plugin needs. Service control
    // is named with services (one `[capabilities]` entry requests both).
    let imports = |c: Capability| imported.iter().any(|x| x == c.interface());
    let warnings = Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::ServiceControl && manifest.requests(*c))
        .filter(|c| match c {
            Capability::Service => {
                !imports(Capability::Service) && !imports(Capability::ServiceControl)
            }
            other => !imports(*other),
        })
        .map(|c| {
            format!(
                "the manifest requests `{}` but the component never uses it: remove it from [capabilities] to keep the grant minimal",
                c.request_name()
            )
        })
        .collect();
    Ok(warnings)
}
