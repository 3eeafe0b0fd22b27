//! The report's compliance section (CSF GV): which HIPAA Security Rule technical safeguards
//! (45 CFR 164.312) and CMMC 2.0 practices the tenant's checks give evidence for, and what that
//! evidence said over the period. A check claims controls in its manifest's `[compliance]`
//! section (docs/COMPLIANCE.md); the caller says which checks are installed on which agents and
//! hands over their outcomes (the agent: each check run in its audit log; the controller: the
//! incidents its agents' compliance monitors reported).
//!
//! # What is computed (the spec the tests pin)
//!
//! - **Controls listed**: every entry of [`HIPAA_164_312`] and [`CMMC_PRACTICES`], in that
//!   order, whether or not a check covers it; then any other reference a check claims (a
//!   revised framework, a practice outside the list), sorted. A control no installed check
//!   claims is **not covered**: listed, never left out.
//! - Per control, one row per check claiming it: the **agents** it is installed on; of its
//!   outcomes in `[from, to)`, the **passed**, **failed** (warning or critical) and
//!   **unknown** counts; its **latest** outcome at or before `to` (time, agent, outcome;
//!   earlier than `from` too: the state the period started in); and the agents whose latest
//!   outcome is a failure (**failing now**).
//! - What an outcome is depends on the caller's [`EvidenceKind`], which the report prints.

use std::collections::{BTreeMap, BTreeSet};

/// A framework of the compliance section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Framework {
    Hipaa,
    Cmmc,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Hipaa => "HIPAA",
            Framework::Cmmc => "CMMC",
        }
    }
}

/// The HIPAA Security Rule's technical safeguards: every standard and implementation
/// specification of 45 CFR 164.312.
pub const HIPAA_164_312: &[(&str, &str)] = &[
    ("164.312(a)(1)", "Access control"),
    ("164.312(a)(2)(i)", "Unique user identification"),
    ("164.312(a)(2)(ii)", "Emergency access procedure"),
    ("164.312(a)(2)(iii)", "Automatic logoff"),
    ("164.312(a)(2)(iv)", "Encryption and decryption"),
    ("164.312(b)", "Audit controls"),
    ("164.312(c)(1)", "Integrity"),
    ("164.312(c)(2)", "Mechanism to authenticate ePHI"),
    ("164.312(d)", "Person or entity authentication"),
    ("164.312(e)(1)", "Transmission security"),
    ("164.312(e)(2)(i)", "Integrity controls"),
    ("164.312(e)(2)(ii)", "Encryption"),
];

/// CMMC 2.0 practices listed whether covered or not: all 17 of Level 1 (FAR 52.204-21), and
/// the Level 2 practices Warden's first-party checks claim (docs/COMPLIANCE.md). The other
/// Level 2 practices are mostly procedural; one a check claims is listed too.
pub const CMMC_PRACTICES: &[(&str, &str)] = &[
    ("AC.L1-3.1.1", "Authorized access control"),
    ("AC.L1-3.1.2", "Transaction and function control"),
    ("AC.L1-3.1.20", "External connections"),
    ("AC.L1-3.1.22", "Control public information"),
    ("IA.L1-3.5.1", "Identification"),
    ("IA.L1-3.5.2", "Authentication"),
    ("MP.L1-3.8.3", "Media disposal"),
    ("PE.L1-3.10.1", "Limit physical access"),
    ("PE.L1-3.10.3", "Escort visitors"),
    ("PE.L1-3.10.4", "Physical access logs"),
    ("PE.L1-3.10.5", "Manage physical access"),
    ("SC.L1-3.13.1", "Boundary protection"),
    ("SC.L1-3.13.5", "Public-access system separation"),
    ("SI.L1-3.14.1", "Flaw remediation"),
    ("SI.L1-3.14.2", "Malicious code protection"),
    ("SI.L1-3.14.4", "Update malicious code protection"),
    ("SI.L1-3.14.5", "System and file scanning"),
    ("AC.L2-3.1.10", "Session lock"),
    ("AC.L2-3.1.11", "Session termination"),
    ("AU.L2-3.3.1", "System auditing"),
    ("SC.L2-3.13.16", "Data at rest"),
];

/// A check's claims and where it is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckClaim {
    /// The plugin's name.
    pub check: String,
    pub hipaa: BTreeSet<String>,
    pub cmmc: BTreeSet<String>,
    /// The agents it is installed on.
    pub agents: BTreeSet<String>,
}

/// What one outcome is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// `ok`.
    Pass,
    /// `warning` or `critical`.
    Fail,
    /// `unknown`, or a run that gave no status.
    Unknown,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }

    /// A check status as plugins write it (`ok`, `warning`, `critical`, `unknown`).
    pub fn of_status(status: &str) -> Outcome {
        match status {
            "ok" => Outcome::Pass,
            "warning" | "critical" => Outcome::Fail,
            _ => Outcome::Unknown,
        }
    }
}

/// One outcome of one check on one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub at_ms: i64,
    pub agent: String,
    pub check: String,
    pub outcome: Outcome,
}

/// Where the outcomes come from: printed with the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// Each run of a check (the agent's audit log, `plugin.run` records with their status).
    Runs,
    /// The incidents of monitors running a check: a fail is one opened, a pass one resolved
    /// (the controller hears of a check when its result changes, not of every run).
    Incidents,
}

impl EvidenceKind {
    pub fn describe(self) -> &'static str {
        match self {
            EvidenceKind::Runs => {
                "Outcomes are the check runs recorded in the agent's audit log (plugin.run, with \
                 the check's status): pass = ok, fail = warning or critical."
            }
            EvidenceKind::Incidents => {
                "Outcomes are the incidents the agents' monitors reported for these checks: \
                 fail = an incident opened (the check started failing), pass = one resolved \
                 (it passed again); a check that never failed has no outcome here."
            }
        }
    }
}

/// One check's evidence for one control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckEvidence {
    pub check: String,
    pub agents: usize,
    pub passed: usize,
    pub failed: usize,
    pub unknown: usize,
    pub latest: Option<CheckOutcome>,
    /// Agents whose latest outcome (at or before `to`) is a failure.
    pub failing_now: usize,
}

/// One control and the checks giving evidence for it (none: not covered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCoverage {
    pub framework: Framework,
    pub id: String,
    /// Empty for a claimed reference outside the lists.
    pub title: String,
    pub checks: Vec<CheckEvidence>,
}

impl ControlCoverage {
    pub fn covered(&self) -> bool {
        !self.checks.is_empty()
    }
}

/// The section (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compliance {
    pub evidence: EvidenceKind,
    pub controls: Vec<ControlCoverage>,
}

impl Compliance {
    pub fn of(&self, framework: Framework) -> impl Iterator<Item = &ControlCoverage> {
        self.controls
            .iter()
            .filter(move |c| c.framework == framework)
    }

    /// (covered, listed) of `framework`.
    pub fn covered(&self, framework: Framework) -> (usize, usize) {
        let all: Vec<_> = self.of(framework).collect();
        (all.iter().filter(|c| c.covered()).count(), all.len())
    }
}

fn evidence(
    claim: &CheckClaim,
    outcomes: &[&CheckOutcome],
    from_ms: i64,
    to_ms: i64,
) -> CheckEvidence {
    let mine: Vec<&&CheckOutcome> = outcomes
        .iter()
        .filter(|o| o.check == claim.check && o.at_ms < to_ms)
        .collect();
    let in_period = |kind: Outcome| {
        mine.iter()
            .filter(|o| o.at_ms >= from_ms && o.outcome == kind)
            .count()
    };
    let mut latest_per_agent: BTreeMap<&str, &CheckOutcome> = BTreeMap::new();
    for o in &mine {
        let entry = latest_per_agent.entry(o.agent.as_str()).or_insert(o);
        if o.at_ms >= entry.at_ms {
            *entry = o;
        }
    }
    CheckEvidence {
        check: claim.check.clone(),
        agents: claim.agents.len(),
        passed: in_period(Outcome::Pass),
        failed: in_period(Outcome::Fail),
        unknown: in_period(Outcome::Unknown),
        latest: latest_per_agent
            .values()
            .max_by_key(|o| (o.at_ms, std::cmp::Reverse(o.agent.as_str())))
            .map(|o| (*o).clone()),
        failing_now: latest_per_agent
            .values()
            .filter(|o| o.outcome == Outcome::Fail)
            .count(),
    }
}

/// The compliance section of `[from_ms, to_ms)` from the installed checks' `claims` (checks
/// installed nowhere are left out: they give no evidence) and their `outcomes` (any order).
pub fn coverage(
    claims: &[CheckClaim],
    outcomes: &[CheckOutcome],
    from_ms: i64,
    to_ms: i64,
    kind: EvidenceKind,
) -> Compliance {
    let installed: Vec<&CheckClaim> = claims.iter().filter(|c| !c.agents.is_empty()).collect();
    let outcomes: Vec<&CheckOutcome> = outcomes.iter().collect();
    let mut controls = Vec::new();
    for (framework, list) in [
        (Framework::Hipaa, HIPAA_164_312),
        (Framework::Cmmc, CMMC_PRACTICES),
    ] {
        let refs_of = |c: &CheckClaim| match framework {
            Framework::Hipaa => c.hipaa.clone(),
            Framework::Cmmc => c.cmmc.clone(),
        };
        let claimed: BTreeSet<String> = installed.iter().flat_map(|c| refs_of(c)).collect();
        let extra: Vec<(String, String)> = claimed
            .iter()
            .filter(|r| !list.iter().any(|(id, _)| id == r))
            .map(|r| (r.clone(), String::new()))
            .collect();
        let listed = list
            .iter()
            .map(|(id, title)| (id.to_string(), title.to_string()));
        for (id, title) in listed.chain(extra) {
            let mut checks: Vec<CheckEvidence> = installed
                .iter()
                .filter(|c| refs_of(c).contains(&id))
                .map(|c| evidence(c, &outcomes, from_ms, to_ms))
                .collect();
            checks.sort_by(|a, b| a.check.cmp(&b.check));
            controls.push(ControlCoverage {
                framework,
                id,
                title,
                checks,
            });
        }
    }
    Compliance {
        evidence: kind,
        controls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(check: &str, hipaa: &[&str], cmmc: &[&str], agents: &[&str]) -> CheckClaim {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CheckClaim {
            check: check.into(),
            hipaa: set(hipaa),
            cmmc: set(cmmc),
            agents: set(agents),
        }
    }

    fn out(at: i64, agent: &str, check: &str, outcome: Outcome) -> CheckOutcome {
        CheckOutcome {
            at_ms: at,
            agent: agent.into(),
            check: check.into(),
            outcome,
        }
    }

    fn control<'a>(c: &'a Compliance, id: &str) -> &'a ControlCoverage {
        c.controls
            .iter()
            .find(|x| x.id == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    }

    #[test]
    fn every_safeguard_is_listed_and_one_without_a_check_is_not_covered() {
        let claims = [
            claim(
                "disk-encryption",
                &["164.312(a)(2)(iv)"],
                &["SC.L2-3.13.16"],
                &["db-1"],
            ),
            // Installed nowhere: no evidence, no coverage.
            claim("audit-daemon", &["164.312(b)"], &["AU.L2-3.3.1"], &[]),
        ];
        let c = coverage(&claims, &[], 0, 100, EvidenceKind::Runs);
        assert_eq!(
            c.covered(Framework::Hipaa),
            (1, HIPAA_164_312.len()),
            "all twelve listed"
        );
        assert_eq!(c.covered(Framework::Cmmc), (1, CMMC_PRACTICES.len()));
        assert!(control(&c, "164.312(a)(2)(iv)").covered());
        assert!(
            !control(&c, "164.312(b)").covered(),
            "its check is not installed"
        );
        assert_eq!(control(&c, "164.312(b)").title, "Audit controls");
        let order: Vec<&str> = c.controls.iter().map(|x| x.id.as_str()).take(2).collect();
        assert_eq!(
            order,
            ["164.312(a)(1)", "164.312(a)(2)(i)"],
            "the rule's order"
        );
    }

    #[test]
    fn a_claimed_reference_outside_the_lists_is_added_after_them() {
        let claims = [claim(
            "mfa",
            &["164.308(a)(5)"],
            &["IA.L2-3.5.3"],
            &["db-1"],
        )];
        let c = coverage(&claims, &[], 0, 100, EvidenceKind::Runs);
        let hipaa: Vec<&str> = c.of(Framework::Hipaa).map(|x| x.id.as_str()).collect();
        assert_eq!(hipaa.last(), Some(&"164.308(a)(5)"));
        assert_eq!(hipaa.len(), HIPAA_164_312.len() + 1);
        assert!(control(&c, "IA.L2-3.5.3").covered());
        assert_eq!(c.covered(Framework::Cmmc), (1, CMMC_PRACTICES.len() + 1));
    }

    #[test]
    fn outcomes_are_counted_in_the_period_and_the_latest_is_before_its_end() {
        let check = "host-firewall";
        let claims = [claim(
            check,
            &["164.312(e)(1)"],
            &["SC.L1-3.13.1"],
            &["a", "b"],
        )];
        let outcomes = [
            // Before the period: not counted, but it is b's latest state.
            out(5, "b", check, Outcome::Fail),
            out(10, "a", check, Outcome::Pass),
            out(20, "a", check, Outcome::Fail),
            out(30, "a", check, Outcome::Pass),
            out(40, "a", check, Outcome::Unknown),
            out(50, "a", check, Outcome::Fail),
            // At the end: outside.
            out(100, "a", check, Outcome::Pass),
            // Another check's.
            out(60, "a", "screen-lock", Outcome::Pass),
        ];
        let c = coverage(&claims, &outcomes, 10, 100, EvidenceKind::Runs);
        for id in ["164.312(e)(1)", "SC.L1-3.13.1"] {
            let e = &control(&c, id).checks[0];
            assert_eq!(e.check, check);
            assert_eq!(
                (e.agents, e.passed, e.failed, e.unknown),
                (2, 2, 2, 1),
                "{id}"
            );
            let latest = e.latest.as_ref().expect("a latest");
            assert_eq!((latest.at_ms, latest.agent.as_str()), (50, "a"));
            assert_eq!(latest.outcome, Outcome::Fail);
            assert_eq!(e.failing_now, 2, "a's latest and b's carried-in failure");
        }
        assert_eq!(Outcome::of_status("critical"), Outcome::Fail);
        assert_eq!(Outcome::of_status("warning"), Outcome::Fail);
        assert_eq!(Outcome::of_status("ok"), Outcome::Pass);
        assert_eq!(Outcome::of_status("bogus"), Outcome::Unknown);
    }
}
