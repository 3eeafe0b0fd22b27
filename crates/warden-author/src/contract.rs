//! A built component checked against its manifest at build time, with the rule an agent applies
//! at install ([`warden_core::contract`]): the names come from the binary's top-level import
//! and export sections, read without compiling it (a Python component is ~18 MB of code; the
//! sandbox compiles it later, once, at install).

use crate::BuildError;
use wasmparser::{Parser, Payload};

/// The top-level import and export names of a component binary.
pub fn interface_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), BuildError> {
    let invalid =
        |e: wasmparser::BinaryReaderError| BuildError::NotAComponent { why: e.to_string() };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    // Nested modules and components come inline, each closed by its own `End`: only depth 0
    // is the component's own interface.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { encoding, .. }
                if depth == 0 && encoding != wasmparser::Encoding::Component =>
            {
                return Err(BuildError::NotAComponent {
                    why: "it is a core module; plugins are components (wasm32-wasip2)".into(),
                });
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => break,
            },
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// Check the built component against its manifest; returns the warnings (capabilities requested
/// and never used).
pub fn check(bytes: &[u8], manifest: &warden_core::Manifest) -> Result<Vec<String>, BuildError> {
    let (imports, exports) = interface_names(bytes)?;
    warden_core::contract::check(
        imports.iter().map(String::as_str),
        exports.iter().map(String::as_str),
        manifest,
    )
    .map_err(|e| BuildError::Contract { why: e.to_string() })
}
