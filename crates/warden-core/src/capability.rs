//! The capabilities a plugin can be granted, as one enum. Every place that used to spell them as
//! strings (the grant, the import check, the site policy, a key's ceiling, the scaffolds) goes
//! through it, with exhaustive matches: a capability nobody mapped fails to compile.
//!
//! A capability has three names, for three audiences:
//! - its WIT interface ([`Capability::interface`]): `fs`, `fs-write`, `service`, ...;
//! - how the site policy's `[allow]` and a key's `capabilities` ceiling name it
//!   ([`Capability::policy_name`], also its serde form): `fs-read`, `services`, ...;
//! - how refusals and warnings name the manifest's request ([`Capability::request_name`]):
//!   `fs.read`, `services`, ...

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Exec,
    FsRead,
    FsWrite,
    Sysinfo,
    Kv,
    Http,
    /// Service status; the policy and the manifest call it `services`.
    #[serde(rename = "services")]
    Service,
    /// Starting, stopping and restarting services (remediation roles only).
    ServiceControl,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::Exec,
        Capability::FsRead,
        Capability::FsWrite,
        Capability::Sysinfo,
        Capability::Kv,
        Capability::Http,
        Capability::Service,
        Capability::ServiceControl,
    ];

    /// The WIT interface of package `warden:plugin` that carries it.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Exec => "exec",
            Capability::FsRead => "fs",
            Capability::FsWrite => "fs-write",
            Capability::Sysinfo => "sysinfo",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Service => "service",
            Capability::ServiceControl => "service-control",
        }
    }

    /// The capability a WIT interface carries; `None` for `types`, `log` and anything unknown.
    pub fn from_interface(interface: &str) -> Option<Capability> {
        Capability::ALL
            .into_iter()
            .find(|c| c.interface() == interface)
    }

    /// Its name in the site policy and in a trusted key's `capabilities` ceiling.
    pub fn policy_name(self) -> &'static str {
        match self {
            Capability::Exec => "exec",
            Capability::FsRead => "fs-read",
            Capability::FsWrite => "fs-write",
            Capability::Sysinfo => "sysinfo",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Service => "services",
            Capability::ServiceControl => "service-control",
        }
    }

    /// Its name in refusals and warnings about a manifest's request (`[capabilities]` keys).
    pub fn request_name(self) -> &'static str {
        match self {
            Capability::Exec => "exec",
            Capability::FsRead => "fs.read",
            Capability::FsWrite => "fs.write",
            Capability::Sysinfo => "sysinfo",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Service => "services",
            Capability::ServiceControl => "service-control",
        }
    }

    /// Whether using it changes the machine, so only a remediation's `apply` may.
    pub fn changes_machine(self) -> bool {
        match self {
            Capability::FsWrite | Capability::ServiceControl => true,
            Capability::Exec
            | Capability::FsRead
            | Capability::Sysinfo
            | Capability::Kv
            | Capability::Http
            | Capability::Service => false,
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.policy_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_back_and_the_serde_form_is_the_policy_name() {
        for c in Capability::ALL {
            assert_eq!(Capability::from_interface(c.interface()), Some(c));
            let json = serde_json::to_value(c).expect("serializes");
            assert_eq!(json, c.policy_name(), "{c:?}");
            let back: Capability = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, c);
        }
        assert_eq!(Capability::from_interface("log"), None);
        assert_eq!(Capability::from_interface("types"), None);
    }
}
