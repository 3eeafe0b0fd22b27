//! Implementation details that [`crate::export_plugin!`] expands to in plugin crates: the raw
//! bindings and the adapter that connects them to the role traits. Not part of the API.

pub use wit_bindgen;

#[allow(missing_docs, unsafe_code, clippy::all)]
#[path = "bindings.rs"]
pub mod bindings;

/// Implements the generated `Guest` traits for a plugin type `T` by delegating to its role
/// traits, converting between SDK types and raw WIT types.
pub struct Adapter<T: ?Sized>(core::marker::PhantomData<fn() -> T>);
