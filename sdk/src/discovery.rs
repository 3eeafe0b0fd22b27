//! The discovery role (WIT `discovery`): report facts about the machine as groups such as `os`,
//! one `disk` per disk, one `package` per installed package.

use crate::PluginError;

/// A discovery plugin. Implement it and register the type with [`crate::discovery!`].
///
/// ```
/// use warden_sdk::{Discovery, FactGroup, PluginError, sysinfo};
///
/// struct Host;
///
/// impl Discovery for Host {
///     fn discover(_config: &str) -> Result<Vec<FactGroup>, PluginError> {
///         let name = sysinfo::hostname()?;
///         let uptime = sysinfo::uptime()?;
///         Ok(vec![
///             FactGroup::new("host")
///                 .fact("hostname", name)
///                 .fact("uptime_secs", uptime.as_secs()),
///         ])
///     }
/// }
///
/// warden_sdk::discovery!(Host);
/// ```
pub trait Discovery {
    /// Collect the facts. `config` is the plugin's JSON configuration (see [`crate::config()`]).
    fn discover(config: &str) -> Result<Vec<FactGroup>, PluginError>;
}

/// The value of one fact.
#[derive(Debug, Clone, PartialEq)]
pub enum FactValue {
    /// Free text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A measurement.
    Float(f64),
    /// A flag.
    Boolean(bool),
    /// Several texts, e.g. the addresses of an interface.
    TextList(Vec<String>),
}

impl From<String> for FactValue {
    fn from(v: String) -> Self {
        FactValue::Text(v)
    }
}

impl From<&str> for FactValue {
    fn from(v: &str) -> Self {
        FactValue::Text(v.to_string())
    }
}

impl From<i64> for FactValue {
    fn from(v: i64) -> Self {
        FactValue::Integer(v)
    }
}

impl From<i32> for FactValue {
    fn from(v: i32) -> Self {
        FactValue::Integer(v.into())
    }
}

impl From<u32> for FactValue {
    fn from(v: u32) -> Self {
        FactValue::Integer(v.into())
    }
}

/// Saturates at `i64::MAX`; byte counts and uptimes never get near it.
impl From<u64> for FactValue {
    fn from(v: u64) -> Self {
        FactValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for FactValue {
    fn from(v: f64) -> Self {
        FactValue::Float(v)
    }
}

impl From<bool> for FactValue {
    fn from(v: bool) -> Self {
        FactValue::Boolean(v)
    }
}

impl From<Vec<String>> for FactValue {
    fn from(v: Vec<String>) -> Self {
        FactValue::TextList(v)
    }
}

/// One named fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Name of the fact, e.g. `version`.
    pub key: String,
    /// Its value.
    pub value: FactValue,
}

/// One object of the inventory: the `os`, a `disk`, a `network-interface`, a `package`, ...
#[derive(Debug, Clone, PartialEq)]
pub struct FactGroup {
    /// What kind of object the facts describe.
    pub kind: String,
    /// The facts, in the order they were added.
    pub facts: Vec<Fact>,
}

impl FactGroup {
    /// An empty group of the given kind.
    pub fn new(kind: impl Into<String>) -> Self {
        FactGroup {
            kind: kind.into(),
            facts: Vec::new(),
        }
    }

    /// Add a fact, builder style.
    pub fn fact(mut self, key: impl Into<String>, value: impl Into<FactValue>) -> Self {
        self.push(key, value);
        self
    }

    /// Add a fact in place.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<FactValue>) {
        self.facts.push(Fact {
            key: key.into(),
            value: value.into(),
        });
    }
}
