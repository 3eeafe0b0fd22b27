//! Implementation details that the role macros ([`crate::check!`] and the others) expand to in
//! plugin crates: the raw bindings and the macro that generates the role's world there. Not part
//! of the API.

pub use warden_sdk_macros::world;
pub use wit_bindgen;

#[allow(missing_docs, unsafe_code, clippy::all)]
#[path = "bindings.rs"]
pub mod bindings;

/// The raw WIT `cap-error`, shared by the SDK's bindings and every plugin's.
pub type RawCapError = bindings::warden::plugin::types::CapError;
/// The raw WIT `plugin-error`, shared by the SDK's bindings and every plugin's.
pub type RawPluginError = bindings::warden::plugin::types::PluginError;

/// The plugin type `T`, as the implementor of the generated `Guest` traits (which the role
/// macro implements in the plugin crate, converting between SDK and raw WIT types).
pub struct Adapter<T: ?Sized>(core::marker::PhantomData<fn() -> T>);
