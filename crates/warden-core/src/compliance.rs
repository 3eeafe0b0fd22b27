//! `[compliance]` in a plugin manifest: the regulatory controls a check gives evidence for, so a
//! report can show which safeguards a site's checks cover. Two frameworks, the ones the seed's
//! regulated clients answer to: the HIPAA Security Rule's technical safeguards (45 CFR 164.312,
//! e.g. `164.312(a)(2)(iv)`) and CMMC 2.0 practices (e.g. `SC.L2-3.13.16`). A reference is
//! checked for its shape, not against a list: the frameworks are revised, and a typo is what
//! the shape check catches.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The controls a plugin gives evidence for, per framework.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceTags {
    /// HIPAA Security Rule sections, `164.312(a)(2)(iv)`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub hipaa: BTreeSet<String>,
    /// CMMC 2.0 practice identifiers, `SC.L2-3.13.16`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cmmc: BTreeSet<String>,
}

/// The CMMC 2.0 domains (the NIST SP 800-171 families).
const CMMC_DOMAINS: [&str; 14] = [
    "AC", "AT", "AU", "CA", "CM", "IA", "IR", "MA", "MP", "PE", "PS", "RA", "SC", "SI",
];

impl ComplianceTags {
    /// True when the plugin claims no control.
    pub fn is_empty(&self) -> bool {
        self.hipaa.is_empty() && self.cmmc.is_empty()
    }

    /// Every reference, each checked for its framework's shape; the error names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.hipaa {
            validate_hipaa(r).map_err(|e| format!("compliance.hipaa: `{r}`: {e}"))?;
        }
        for r in &self.cmmc {
            validate_cmmc(r).map_err(|e| format!("compliance.cmmc: `{r}`: {e}"))?;
        }
        Ok(())
    }

    /// One line for people: `HIPAA 164.312(b); CMMC AU.L2-3.3.1`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.hipaa.is_empty() {
            parts.push(format!("HIPAA {}", join(&self.hipaa)));
        }
        if !self.cmmc.is_empty() {
            parts.push(format!("CMMC {}", join(&self.cmmc)));
        }
        parts.join("; ")
    }
}

fn join(refs: &BTreeSet<String>) -> String {
    refs.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `164.<section>` followed by parenthesised paragraph markers: `164.312(a)(2)(iv)`.
fn validate_hipaa(r: &str) -> Result<(), String> {
    let shape = "expected a 45 CFR part 164 section such as 164.312(a)(2)(iv)";
    let rest = r.strip_prefix("164.").ok_or(shape)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(shape.into());
    }
    let mut paragraphs = &rest[digits..];
    while !paragraphs.is_empty() {
        let inner = paragraphs.strip_prefix('(').ok_or(shape)?;
        let close = inner.find(')').ok_or(shape)?;
        let marker = &inner[..close];
        if marker.is_empty() || !marker.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(shape.into());
        }
        paragraphs = &inner[close + 1..];
    }
    Ok(())
}

/// `<domain>.L<level>-<requirement>`: `SC.L2-3.13.16`, `AC.L1-3.1.1`, `AC.L3-3.1.2e`.
fn validate_cmmc(r: &str) -> Result<(), String> {
    let shape = "expected a CMMC practice such as SC.L2-3.13.16";
    let (domain, rest) = r.split_once(".L").ok_or(shape)?;
    if !CMMC_DOMAINS.contains(&domain) {
        return Err(format!("unknown domain `{domain}`; {shape}"));
    }
    let (level, requirement) = rest.split_once('-').ok_or(shape)?;
    if !matches!(level, "1" | "2" | "3") {
        return Err(format!("level must be 1, 2 or 3; {shape}"));
    }
    let well_formed = requirement
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(shape.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(hipaa: &[&str], cmmc: &[&str]) -> ComplianceTags {
        ComplianceTags {
            hipaa: hipaa.iter().map(|s| s.to_string()).collect(),
            cmmc: cmmc.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn real_references_are_accepted() {
        let t = tags(
            &["164.312(a)(2)(iv)", "164.312(b)", "164.308(a)(1)(ii)(D)"],
            &[
                "SC.L2-3.13.16",
                "AC.L1-3.1.1",
                "AC.L3-3.1.2e",
                "AU.L2-3.3.1",
            ],
        );
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(
            tags(&["164.312(b)"], &["AU.L2-3.3.1"]).summary(),
            "HIPAA 164.312(b); CMMC AU.L2-3.3.1"
        );
    }

    #[test]
    fn malformed_references_are_refused_naming_them() {
        for bad in [
            "312(b)",
            "164.",
            "164.312(",
            "164.312()",
            "164.312(b",
            "164.312 (b)",
        ] {
            let e = tags(&[bad], &[]).validate().expect_err(bad);
            assert!(e.contains(bad) && e.contains("hipaa"), "{e}");
        }
        for bad in [
            "SC-3.13.16",
            "XX.L2-3.13.16",
            "SC.L4-3.13.16",
            "SC.L2-",
            "SC.L2-3..1",
            "SC.L2",
        ] {
            let e = tags(&[], &[bad]).validate().expect_err(bad);
            assert!(e.contains(bad) && e.contains("cmmc"), "{e}");
        }
    }
}
