//! The fleet table's filter language, parsed into the store's [`AgentQuery`]:
//!
//! | term | selects |
//! | --- | --- |
//! | `is:online`, `is:overdue`, `is:offline`, `is:never-seen` | that presence |
//! | `is:failing` | agents with open incidents (what failing checks open) |
//! | `check:disk-space` | agents whose monitor `disk-space` has an open incident |
//! | `is:patches` | agents whose latest patch scan found upgradable packages |
//! | `is:reboot` | agents whose latest patch scan says a reboot is required |
//! | `tag:role=db` | tag `role` is `db` (`tag:os=linux` also matches the reported OS) |
//! | `tenant:acme` | one tenant |
//! | any other word | appears in the host name, name, id, tenant, OS or tags |
//!
//! Terms are separated by spaces and all must hold.

use warden_controller::presence::Presence;
use warden_controller::store::query::AgentQuery;
use warden_fleet_identity::TenantId;

/// Terms in one filter at most.
pub const MAX_TERMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "unknown state {0:?}: use is:online, is:overdue, is:offline, is:never-seen, is:failing, \
         is:patches or is:reboot"
    )]
    UnknownState(String),
    #[error("{0:?} is not tag:key=value")]
    BadTag(String),
    #[error("check: names no monitor (check:disk-space)")]
    BadCheck,
    #[error("tenant {0:?}: {1}")]
    BadTenant(String, String),
    #[error("two presence terms ({0} and {1}) select nothing")]
    TwoStates(&'static str, &'static str),
    #[error("two tenant terms select nothing")]
    TwoTenants,
    #[error("more than {MAX_TERMS} terms")]
    TooManyTerms,
}

/// The selecting part of a query (sort and page are the caller's).
pub fn parse(text: &str) -> Result<AgentQuery, FilterError> {
    let mut q = AgentQuery::default();
    let terms: Vec<&str> = text.split_whitespace().collect();
    if terms.len() > MAX_TERMS {
        return Err(FilterError::TooManyTerms);
    }
    for term in terms {
        if let Some(state) = term.strip_prefix("is:") {
            let p = match state {
                "online" => Presence::Online,
                "overdue" => Presence::Overdue,
                "offline" => Presence::Offline,
                "never-seen" => Presence::NeverSeen,
                "failing" => {
                    q.failing = true;
                    continue;
                }
                "patches" => {
                    q.patches_pending = true;
                    continue;
                }
                "reboot" => {
                    q.reboot_required = true;
                    continue;
                }
                other => return Err(FilterError::UnknownState(other.to_string())),
            };
            match q.presence {
                Some(was) if was != p => return Err(FilterError::TwoStates(was.name(), p.name())),
                _ => q.presence = Some(p),
            }
        } else if let Some(tag) = term.strip_prefix("tag:") {
            match tag.split_once('=') {
                Some((k, v)) if !k.is_empty() => q.tags.push((k.to_string(), v.to_string())),
                _ => return Err(FilterError::BadTag(term.to_string())),
            }
        } else if let Some(name) = term.strip_prefix("check:") {
            if name.is_empty() {
                return Err(FilterError::BadCheck);
            }
            q.failing_checks.push(name.to_string());
        } else if let Some(t) = term.strip_prefix("tenant:") {
            let tenant = TenantId::new(t.to_string())
                .map_err(|e| FilterError::BadTenant(t.to_string(), e.to_string()))?;
            if q.tenant.as_ref().is_some_and(|was| was != &tenant) {
                return Err(FilterError::TwoTenants);
            }
            q.tenant = Some(tenant);
        } else {
            q.words.push(term.to_string());
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_become_the_store_query() {
        let q = parse("is:offline tag:role=db  tenant:acme web-01 is:failing").expect("parses");
        assert_eq!(q.presence, Some(Presence::Offline));
        assert!(q.failing);
        assert!(!q.reboot_required && !q.patches_pending);
        assert_eq!(q.tags, vec![("role".to_string(), "db".to_string())]);
        assert_eq!(q.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
        assert_eq!(q.words, vec!["web-01".to_string()]);
        assert_eq!(parse("").expect("empty"), AgentQuery::default());
        let patched = parse("is:reboot is:patches").expect("parses");
        assert!(patched.reboot_required && patched.patches_pending);
        assert_eq!(patched.presence, None, "neither is a presence");
        assert!(!patched.failing);
        let checks = parse("check:disk-space check:backup").expect("parses");
        assert_eq!(checks.failing_checks, ["disk-space", "backup"]);
        assert!(checks.words.is_empty(), "a check term is no free word");
    }

    #[test]
    fn nonsense_terms_are_refused_with_what_to_write() {
        for bad in [
            "is:sleeping",
            "tag:role",
            "tag:=db",
            "tenant:ACME!",
            "is:online is:offline",
            "tenant:acme tenant:globex",
            "check:",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("is:asleep")
                .expect_err("refused")
                .to_string()
                .contains("is:online")
        );
    }
}
