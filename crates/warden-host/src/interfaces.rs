//! What a component imports and exports, read by wasmtime and checked against its manifest
//! before it may run ([`warden_core::contract`] is the rule; `warden plugin build` applies the
//! same rule to the names it reads from the binary).

use warden_core::error::RunError;
use warden_core::manifest::Manifest;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Check the component's imports and exports against its manifest. Returns warnings for
/// requested capabilities the component never imports.
pub fn check(
    engine: &Engine,
    component: &Component,
    manifest: &Manifest,
) -> Result<Vec<String>, RunError> {
    let ty = component.component_type();
    let imports: Vec<&str> = ty.imports(engine).map(|(name, _)| name).collect();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    warden_core::contract::check(imports, exports, manifest)
}
