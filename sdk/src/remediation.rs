//! The remediation role (WIT `remediation`): `plan` lists what would change without changing
//! anything; `apply` carries out exactly the approved actions and reports each one.

use crate::__private::Adapter;
use crate::__private::bindings::exports::warden::plugin::remediation as wit;
use crate::PluginError;

/// A remediation plugin. Implement it and register the type with [`crate::export_plugin!`].
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
/// # #[cfg(feature = "check")]
/// # impl warden_sdk::Check for RemoveFlag {
/// #     fn check(_: &str) -> Result<warden_sdk::CheckResult, PluginError> {
/// #         Ok(warden_sdk::CheckResult::ok("fine"))
/// #     }
/// # }
///
/// warden_sdk::export_plugin!(RemoveFlag);
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

impl From<Action> for wit::Action {
    fn from(a: Action) -> Self {
        wit::Action {
            id: a.id,
            kind: match a.kind {
                ActionKind::Create => wit::ActionKind::Create,
                ActionKind::Modify => wit::ActionKind::Modify,
                ActionKind::Delete => wit::ActionKind::Delete,
                ActionKind::Exec => wit::ActionKind::Exec,
                ActionKind::ServiceStart => wit::ActionKind::ServiceStart,
                ActionKind::ServiceStop => wit::ActionKind::ServiceStop,
                ActionKind::ServiceRestart => wit::ActionKind::ServiceRestart,
                ActionKind::Other => wit::ActionKind::Other,
            },
            target: a.target,
            description: a.description,
        }
    }
}

impl From<wit::Action> for Action {
    fn from(a: wit::Action) -> Self {
        Action {
            id: a.id,
            kind: match a.kind {
                wit::ActionKind::Create => ActionKind::Create,
                wit::ActionKind::Modify => ActionKind::Modify,
                wit::ActionKind::Delete => ActionKind::Delete,
                wit::ActionKind::Exec => ActionKind::Exec,
                wit::ActionKind::ServiceStart => ActionKind::ServiceStart,
                wit::ActionKind::ServiceStop => ActionKind::ServiceStop,
                wit::ActionKind::ServiceRestart => ActionKind::ServiceRestart,
                wit::ActionKind::Other => ActionKind::Other,
            },
            target: a.target,
            description: a.description,
        }
    }
}

impl From<ActionOutcome> for wit::ActionOutcome {
    fn from(o: ActionOutcome) -> Self {
        wit::ActionOutcome {
            id: o.id,
            status: match o.status {
                OutcomeStatus::Applied => wit::OutcomeStatus::Applied,
                OutcomeStatus::Skipped => wit::OutcomeStatus::Skipped,
                OutcomeStatus::Failed => wit::OutcomeStatus::Failed,
            },
            detail: o.detail,
        }
    }
}

impl<T: Remediation> wit::Guest for Adapter<T> {
    fn plan(config: String) -> Result<Vec<wit::Action>, wit::PluginError> {
        T::plan(&config)
            .map(|actions| actions.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }

    fn apply(
        config: String,
        actions: Vec<wit::Action>,
    ) -> Result<Vec<wit::ActionOutcome>, wit::PluginError> {
        T::apply(&config, actions.into_iter().map(Into::into).collect())
            .map(|outcomes| outcomes.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }
}
