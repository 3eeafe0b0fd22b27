//! The remediation role (WIT `remediation`): `plan` lists what would change without changing
//! anything; `apply` carries out exactly the approved actions and reports each one.

use crate::PluginError;

/// A remediation plugin. Implement it and register the type with
/// [`crate::remediation!`] (or [`crate::check_remediation!`] when it also implements
/// [`crate::Check`]).
///
/// `plan` must not change anything: the runner calls it for dry runs. `apply` receives the plan
/// the operator approved and must act on nothing else.
///
/// ```
/// use warden_sdk::{Action, ActionKind, ActionOutcome, PluginError, Remediation, fs, fs_write};
///
/// struct RemoveFlag;
///
/// const FLAG: &str = "/tmp/maintenance.flag";
///
/// impl Remediation for RemoveFlag {
///     fn plan(_config: &str) -> Result<Vec<Action>, PluginError> {
///         match fs::stat(FLAG) {
///             Ok(meta) if meta.is_file() => Ok(vec![Action::new(
///                 "remove-flag",
///                 ActionKind::Delete,
///                 FLAG,
///                 "remove the stale maintenance flag",
///             )]),
///             _ => Ok(Vec::new()),
///         }
///     }
///
///     fn apply(_config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
///         Ok(actions
///             .iter()
///             .map(|a| match fs_write::remove_file(&a.target) {
///                 Ok(()) => ActionOutcome::applied(a, "removed"),
///                 Err(e) => ActionOutcome::failed(a, e.to_string()),
///             })
///             .collect())
///     }
/// }
///
/// warden_sdk::remediation!(RemoveFlag);
/// ```
pub trait Remediation {
    /// Say what would change. Must have no side effects.
    fn plan(config: &str) -> Result<Vec<Action>, PluginError>;

    /// Carry out `actions` (the approved plan) and report one outcome per action.
    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError>;
}

/// What kind of change an action makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Create a file or object.
    Create,
    /// Change an existing file or object.
    Modify,
    /// Delete a file or object.
    Delete,
    /// Run a program.
    Exec,
    /// Start a service.
    ServiceStart,
    /// Stop a service.
    ServiceStop,
    /// Restart a service.
    ServiceRestart,
    /// Anything else.
    Other,
}

/// One change a plan proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Stable within one plan; `apply` reports against it.
    pub id: String,
    /// What kind of change.
    pub kind: ActionKind,
    /// What is acted on: a path, a service name, a package.
    pub target: String,
    /// One line for a human.
    pub description: String,
}

impl Action {
    /// A new action.
    pub fn new(
        id: impl Into<String>,
        kind: ActionKind,
        target: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Action {
            id: id.into(),
            kind,
            target: target.into(),
            description: description.into(),
        }
    }
}

/// How one action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeStatus {
    /// The change was made.
    Applied,
    /// The change was not needed or no longer safe, and was not made.
    Skipped,
    /// The change was attempted and failed.
    Failed,
}

/// The report for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The [`Action::id`] reported on.
    pub id: String,
    /// How it went.
    pub status: OutcomeStatus,
    /// Details for a human.
    pub detail: String,
}

impl ActionOutcome {
    /// An outcome for `action`.
    pub fn new(action: &Action, status: OutcomeStatus, detail: impl Into<String>) -> Self {
        ActionOutcome {
            id: action.id.clone(),
            status,
            detail: detail.into(),
        }
    }

    /// `action` was carried out.
    pub fn applied(action: &Action, detail: impl Into<String>) -> Self {
        ActionOutcome::new(action, OutcomeStatus::Applied, detail)
    }

    /// `action` was deliberately not carried out.
    pub fn skipped(action: &Action, detail: impl Into<String>) -> Self {
        ActionOutcome::new(action, OutcomeStatus::Skipped, detail)
    }

    /// `action` was attempted and failed.
    pub fn failed(action: &Action, detail: impl Into<String>) -> Self {
        ActionOutcome::new(action, OutcomeStatus::Failed, detail)
    }
}
