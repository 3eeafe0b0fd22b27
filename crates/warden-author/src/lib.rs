//! The plugin author's tools behind `warden plugin new|build`: a project scaffold per role and
//! language, and builds with pinned toolchains. Testing a built plugin is `testkit`.

pub mod build;
pub mod contract;
pub mod scaffold;
pub mod toolchain;

use std::path::Path;
use warden_core::manifest::ManifestError;

/// Why a build failed, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot tell the language of {dir}: {why}")]
    UnknownLanguage { dir: String, why: String },
    #[error(
        "{dir} has no world.wit (nor wit/world.wit): Python and JavaScript plugins declare a world `plugin` importing the capabilities they use (see `warden plugin new`)"
    )]
    MissingWorld { dir: String },
    #[error("the built file is not a plugin component: {why}")]
    NotAComponent { why: String },
    /// The component and its manifest disagree: an agent would refuse to install it.
    #[error("the component does not match plugin.toml, and an agent would refuse it: {why}")]
    Contract { why: String },
    #[error("`{command}`: {message}")]
    Tool { command: String, message: String },
    // `error`, not `source`: the message already says it, and a source would repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl BuildError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> BuildError {
        BuildError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}
