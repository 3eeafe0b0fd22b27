//! Target selectors: which agents a run goes to, written `tenant=acme,role=db,os=linux`.
//!
//! A selector is a comma-separated list of `key=value` terms, all of which must hold (and). The
//! keys with a meaning of their own:
//! - `tenant`: the agent's tenant (at most one `tenant` term);
//! - `os`: the agent's OS as its heartbeat reports it, or its tag `os`;
//! - `agent`: the agent's id; `host`: its host name.
//!
//! Any other key matches the agent's tag of that name exactly. `*` alone selects every agent
//! the caller may see: an empty selector is refused, so a forgotten `--target` is an error, not
//! the whole fleet. Revoked agents are never targeted.

use std::collections::BTreeMap;

use warden_fleet_identity::TenantId;

/// Most terms in one selector.
pub const MAX_TERMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("the target is empty: give terms like `tenant=acme,role=db`, or `*` for every agent")]
    Empty,
    #[error("target term {0:?} is not `key=value`")]
    NotATerm(String),
    #[error("the target names more than one tenant")]
    TwoTenants,
    #[error("the target's tenant is not a tenant id: {0}")]
    BadTenant(String),
    #[error("the target has more than {MAX_TERMS} terms")]
    TooManyTerms,
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub tenant: Option<TenantId>,
    /// `key -> value`, keys other than `tenant`.
    pub terms: BTreeMap<String, String>,
}

/// What a selector is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub agent: &'a str,
    pub tenant: &'a str,
    pub hostname: &'a str,
    pub os: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SelectorError::Empty);
        }
        let mut selector = Selector::default();
        if text == "*" {
            return Ok(selector);
        }
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() > MAX_TERMS {
            return Err(SelectorError::TooManyTerms);
        }
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(SelectorError::NotATerm(part.to_string()));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(SelectorError::NotATerm(part.to_string()));
            }
            if key == "tenant" {
                if selector.tenant.is_some() {
                    return Err(SelectorError::TwoTenants);
                }
                selector.tenant = Some(
                    TenantId::new(value).map_err(|e| SelectorError::BadTenant(e.to_string()))?,
                );
            } else {
                selector.terms.insert(key.to_string(), value.to_string());
            }
        }
        Ok(selector)
    }

    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        if self.tenant.as_ref().is_some_and(|t| t.as_str() != c.tenant) {
            return false;
        }
        self.terms.iter().all(|(key, value)| match key.as_str() {
            "os" => c.os == value || c.tags.get("os") == Some(value),
            "agent" => c.agent == value,
            "host" => c.hostname == value,
            _ => c.tags.get(key) == Some(value),
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut terms: Vec<String> = Vec::new();
        if let Some(t) = &self.tenant {
            terms.push(format!("tenant={t}"));
        }
        terms.extend(self.terms.iter().map(|(k, v)| format!("{k}={v}")));
        if terms.is_empty() {
            f.write_str("*")
        } else {
            f.write_str(&terms.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_selector_matches_tenant_tags_and_os() {
        let s = Selector::parse("tenant=acme, role=db ,os=linux").expect("parse");
        assert_eq!(s.to_string(), "tenant=acme,os=linux,role=db");
        let db = tags(&[("role", "db")]);
        let web = tags(&[("role", "web")]);
        let c = |tenant, os, tags| Candidate {
            agent: "U1",
            tenant,
            hostname: "h",
            os,
            tags,
        };
        assert!(s.matches(&c("acme", "linux", &db)));
        assert!(!s.matches(&c("globex", "linux", &db)));
        assert!(!s.matches(&c("acme", "windows", &db)));
        assert!(!s.matches(&c("acme", "linux", &web)));
        // `os` as a tag counts too (an agent whose config says so).
        let tagged = tags(&[("role", "db"), ("os", "linux")]);
        assert!(s.matches(&c("acme", "", &tagged)));
        let all = Selector::parse("*").expect("all");
        assert!(all.matches(&c("globex", "windows", &web)));
    }

    #[test]
    fn bad_selectors_are_refused() {
        assert_eq!(Selector::parse(" "), Err(SelectorError::Empty));
        assert!(matches!(
            Selector::parse("role"),
            Err(SelectorError::NotATerm(_))
        ));
        assert!(matches!(
            Selector::parse("role="),
            Err(SelectorError::NotATerm(_))
        ));
        assert_eq!(
            Selector::parse("tenant=a,tenant=b"),
            Err(SelectorError::TwoTenants)
        );
        assert!(matches!(
            Selector::parse("tenant=ACME"),
            Err(SelectorError::BadTenant(_))
        ));
    }
}
