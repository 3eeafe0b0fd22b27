//! Client reports for one tenant and one period, from the incident events its agents sent the
//! controller (`incident-opened`, `incident-resolved`), or one agent's own history, with the
//! sections beside the services: PSA tickets, patch compliance and drift ([`posture`]), HIPAA
//! 164.312 / CMMC coverage ([`compliance`]). Pure: the caller reads the events, the tenant's
//! report settings and the sections' inputs; this crate computes ([`compute`], then
//! [`Report::with_tickets`], [`Report::with_patches`], [`Report::with_drift`],
//! [`Report::with_compliance`]) and renders ([`csv`], [`html`], [`pdf`]).
//! No clock, no I/O; [`settings`] reads the SLA settings as written, [`pdf`] writes with
//! `pdf-writer` (the base-14 fonts: nothing embedded).
//!
//! # What is computed (the spec the tests pin)
//!
//! - **Period** `[from, to)` in milliseconds since the Unix epoch; `from < to`.
//! - **Service**: one monitor on one agent (`agent`, `monitor`). Its **priority** (P1..P4) and
//!   its **CSF 2.0 category** come from the tenant's [`ServiceRule`]s (first rule whose monitor
//!   matches: exact name, or a `prefix*`); a monitor no rule names is P3 in `DE.CM`.
//! - **Incidents** from the events of that service, in time order (ties: opened before
//!   resolved). An `Opened` while one is open is the same incident (delivery is at least once:
//!   repeats change nothing); a `Resolved` with none open is ignored. Events before `from` only
//!   decide whether an incident is open when the period starts; events at or after `to` are
//!   ignored.
//! - **Downtime**: the time within `[from, to)` during which an incident was open (one carried
//!   over from before `from` counts from `from`; one still open at `to` counts to `to`).
//!   **Uptime %** = 100 × (period − downtime) / period.
//! - **Counted incidents**: those opened within the period. **Time to restore** of one =
//!   resolved − opened (when resolved before `to`). **MTTR** = the mean time to restore of the
//!   counted, resolved incidents; `None` when there is none.
//! - **SLA**: a counted incident **breaches** its priority's target when its time to restore
//!   exceeds it, or when it is still open at `to` and `to − opened` already exceeds it. A
//!   priority without a target has no breaches. **Met %** per priority = 100 × (counted −
//!   breached) / counted, `None` without incidents.
//! - **Grouping**: services by CSF function (GV, ID, PR, DE, RS, RC, in that order), then by
//!   agent and monitor.
//! - **Sections beside the services**, each under its CSF function and present when the caller
//!   gave its input: the compliance coverage of HIPAA 164.312 and CMMC ([`compliance`], GV);
//!   the tenant's agents and their latest patch scans (ID.AM), patch compliance and baseline
//!   drift ([`posture`], PR.PS); the PSA tickets of the period's incidents (RS.MI).

pub mod compliance;
pub mod csv;
pub mod html;
pub mod pdf;
pub mod posture;
pub mod settings;
pub mod time;

use std::collections::BTreeMap;

/// A priority of the tenant's SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    pub fn name(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    pub fn parse(text: &str) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

/// The NIST CSF 2.0 categories a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CsfCategory {
    /// GV: audit and policy.
    Gv,
    /// ID.AM: asset management (inventory).
    IdAm,
    /// PR.PS: platform security (patches, baselines).
    PrPs,
    /// DE.CM: continuous monitoring.
    DeCm,
    /// RS.MI: incident mitigation (remediation).
    RsMi,
    /// RC.RP: recovery plan execution.
    RcRp,
}

impl CsfCategory {
    pub const ALL: [CsfCategory; 6] = [
        CsfCategory::Gv,
        CsfCategory::IdAm,
        CsfCategory::PrPs,
        CsfCategory::DeCm,
        CsfCategory::RsMi,
        CsfCategory::RcRp,
    ];

    /// The category's identifier, `DE.CM`.
    pub fn id(self) -> &'static str {
        match self {
            CsfCategory::Gv => "GV",
            CsfCategory::IdAm => "ID.AM",
            CsfCategory::PrPs => "PR.PS",
            CsfCategory::DeCm => "DE.CM",
            CsfCategory::RsMi => "RS.MI",
            CsfCategory::RcRp => "RC.RP",
        }
    }

    /// Its function's name, `Detect`.
    pub fn function(self) -> &'static str {
        match self {
            CsfCategory::Gv => "Govern",
            CsfCategory::IdAm => "Identify",
            CsfCategory::PrPs => "Protect",
            CsfCategory::DeCm => "Detect",
            CsfCategory::RsMi => "Respond",
            CsfCategory::RcRp => "Recover",
        }
    }

    pub fn parse(text: &str) -> Option<CsfCategory> {
        CsfCategory::ALL
            .into_iter()
            .find(|c| c.id().eq_ignore_ascii_case(text))
    }
}

/// How the tenant's services are classed: a monitor name (exact, or `prefix*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    pub monitor: String,
    pub priority: Priority,
    pub category: CsfCategory,
}

impl ServiceRule {
    fn matches(&self, monitor: &str) -> bool {
        match self.monitor.strip_suffix('*') {
            Some(prefix) => monitor.starts_with(prefix),
            None => self.monitor == monitor,
        }
    }
}

/// A tenant's report settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    pub rules: Vec<ServiceRule>,
    /// Longest time to restore per priority, in milliseconds.
    pub targets: BTreeMap<Priority, u64>,
}

impl TenantSettings {
    fn class(&self, monitor: &str) -> (Priority, CsfCategory) {
        self.rules
            .iter()
            .find(|r| r.matches(monitor))
            .map(|r| (r.priority, r.category))
            .unwrap_or((Priority::P3, CsfCategory::DeCm))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Opened,
    Resolved,
}

/// One incident event of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at_ms: i64,
    /// The agent as the report names it (its host name).
    pub agent: String,
    pub monitor: String,
    pub kind: EventKind,
}

/// One incident of a service, as counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub opened_ms: i64,
    /// `None`: still open at the period's end.
    pub resolved_ms: Option<i64>,
    pub breached: bool,
}

/// A service's figures over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceReport {
    pub agent: String,
    pub monitor: String,
    pub priority: Priority,
    pub category: CsfCategory,
    pub downtime_ms: i64,
    pub uptime_pct: f64,
    /// Incidents opened within the period.
    pub incidents: Vec<Incident>,
    pub mttr_ms: Option<f64>,
    pub target_ms: Option<u64>,
}

impl ServiceReport {
    pub fn resolved(&self) -> usize {
        self.incidents
            .iter()
            .filter(|i| i.resolved_ms.is_some())
            .count()
    }

    pub fn breaches(&self) -> usize {
        self.incidents.iter().filter(|i| i.breached).count()
    }
}

/// SLA figures of one priority.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorityReport {
    pub priority: Priority,
    pub target_ms: Option<u64>,
    pub incidents: usize,
    pub breached: usize,
    pub met_pct: Option<f64>,
    pub mttr_ms: Option<f64>,
}

/// A PSA ticket of one of the period's incidents, as the caller's records hold it (the
/// agent's ticket outbox writes them on the incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub agent: String,
    pub monitor: String,
    /// The ticketing plugin (`connectwise`, `halo`, ...).
    pub system: String,
    pub id: String,
    /// `open` or `closed`.
    pub status: String,
    /// The PSA's resolve-by time, as it answered it.
    pub resolve_by: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub tenant: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// By CSF category, then agent, then monitor.
    pub services: Vec<ServiceReport>,
    /// Every priority, P1 first.
    pub priorities: Vec<PriorityReport>,
    /// By agent, monitor and ticket id ([`Report::with_tickets`]); empty when the caller has
    /// none.
    pub tickets: Vec<Ticket>,
    /// [`Report::with_patches`]; `None`: the caller has no patch data.
    pub patches: Option<posture::PatchCompliance>,
    /// [`Report::with_drift`].
    pub drift: Option<posture::Drift>,
    /// [`Report::with_compliance`].
    pub compliance: Option<compliance::Compliance>,
}

impl Report {
    /// The report with the PSA tickets of its incidents.
    pub fn with_tickets(mut self, mut tickets: Vec<Ticket>) -> Report {
        tickets.sort_by(|a, b| (&a.agent, &a.monitor, &a.id).cmp(&(&b.agent, &b.monitor, &b.id)));
        self.tickets = tickets;
        self
    }

    /// The report with the tenant's patch compliance.
    pub fn with_patches(mut self, patches: posture::PatchCompliance) -> Report {
        self.patches = Some(patches);
        self
    }

    /// The report with the period's baseline drift.
    pub fn with_drift(mut self, drift: posture::Drift) -> Report {
        self.drift = Some(drift);
        self
    }

    /// The report with its compliance coverage.
    pub fn with_compliance(mut self, compliance: compliance::Compliance) -> Report {
        self.compliance = Some(compliance);
        self
    }

    /// The report's opening sentence: what it holds.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            "uptime, incidents and time to restore per monitored service, against the SLA targets per priority",
        ];
        if !self.tickets.is_empty() {
            parts.push("the PSA tickets of the incidents");
        }
        if self.patches.is_some() {
            parts.push("patch compliance");
        }
        if self.drift.is_some() {
            parts.push("baseline drift");
        }
        if self.compliance.is_some() {
            parts.push("the HIPAA 164.312 and CMMC coverage of the checks");
        }
        let last = parts.pop().unwrap_or_default();
        let list = if parts.is_empty() {
            last.to_string()
        } else {
            format!("{}; and {last}", parts.join("; "))
        };
        let mut text = format!("{list}, grouped by NIST CSF 2.0 function.");
        // Capitalised for the start of a sentence; the list starts with ASCII.
        text[..1].make_ascii_uppercase();
        text
    }

    /// Whether the category has anything to show: services, or a section of its own.
    pub fn has_content(&self, category: CsfCategory) -> bool {
        let own = match category {
            CsfCategory::Gv => self.compliance.is_some(),
            CsfCategory::IdAm => self.patches.is_some(),
            CsfCategory::PrPs => self.patches.is_some() || self.drift.is_some(),
            CsfCategory::RsMi => !self.tickets.is_empty(),
            CsfCategory::DeCm | CsfCategory::RcRp => false,
        };
        own || self.services.iter().any(|s| s.category == category)
    }

    /// The services of one CSF category, in the report's order.
    pub fn services_in(&self, category: CsfCategory) -> Vec<&ServiceReport> {
        self.services
            .iter()
            .filter(|s| s.category == category)
            .collect()
    }

    /// The ticket ids of one service.
    pub fn tickets_of<'a>(
        &'a self,
        agent: &'a str,
        monitor: &'a str,
    ) -> impl Iterator<Item = &'a Ticket> {
        self.tickets
            .iter()
            .filter(move |t| t.agent == agent && t.monitor == monitor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    EmptyPeriod { from_ms: i64, to_ms: i64 },
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::EmptyPeriod { from_ms, to_ms } => {
                write!(f, "the period [{from_ms}, {to_ms}) is empty")
            }
        }
    }
}

impl std::error::Error for ReportError {}

fn mean(values: &[i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    // Sums of i64 milliseconds fit an f64 exactly for any real month.
    Some(values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64)
}

/// Compute the report of `tenant` over `[from_ms, to_ms)` from `events` (any order).
pub fn compute(
    tenant: &str,
    from_ms: i64,
    to_ms: i64,
    events: &[Event],
    settings: &TenantSettings,
) -> Result<Report, ReportError> {
    if from_ms >= to_ms {
        return Err(ReportError::EmptyPeriod { from_ms, to_ms });
    }
    let mut by_service: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.at_ms < to_ms) {
        by_service
            .entry((e.agent.as_str(), e.monitor.as_str()))
            .or_default()
            .push(e);
    }
    let period = to_ms - from_ms;
    let mut services = Vec::new();
    for ((agent, monitor), mut evs) in by_service {
        let (priority, category) = settings.class(monitor);
        let target_ms = settings.targets.get(&priority).copied();
        let breach = |opened: i64, end: i64| {
            target_ms.is_some_and(|t| u64::try_from(end - opened).unwrap_or(0) > t)
        };
        let folded = posture::fold(&mut evs, from_ms, to_ms);
        let carried = folded.carried_until.map_or(0, |end| end - from_ms);
        let downtime_ms = carried
            + folded
                .incidents
                .iter()
                .map(|(opened, resolved)| resolved.unwrap_or(to_ms) - opened)
                .sum::<i64>();
        let incidents: Vec<Incident> = folded
            .incidents
            .into_iter()
            .map(|(opened, resolved)| Incident {
                opened_ms: opened,
                resolved_ms: resolved,
                breached: breach(opened, resolved.unwrap_or(to_ms)),
            })
            .collect();
        let restores: Vec<i64> = incidents
            .iter()
            .filter_map(|i| i.resolved_ms.map(|r| r - i.opened_ms))
            .collect();
        services.push(ServiceReport {
            agent: agent.to_string(),
            monitor: monitor.to_string(),
            priority,
            category,
            downtime_ms,
            uptime_pct: 100.0 * (period - downtime_ms) as f64 / period as f64,
            incidents,
            mttr_ms: mean(&restores),
            target_ms,
        });
    }
    services.sort_by(|a, b| {
        (a.category, &a.agent, &a.monitor).cmp(&(b.category, &b.agent, &b.monitor))
    });
    let priorities = Priority::ALL
        .into_iter()
        .map(|priority| {
            let of: Vec<&ServiceReport> =
                services.iter().filter(|s| s.priority == priority).collect();
            let incidents: usize = of.iter().map(|s| s.incidents.len()).sum();
            let breached: usize = of.iter().map(|s| s.breaches()).sum();
            let restores: Vec<i64> = of
                .iter()
                .flat_map(|s| &s.incidents)
                .filter_map(|i| i.resolved_ms.map(|r| r - i.opened_ms))
                .collect();
            PriorityReport {
                priority,
                target_ms: settings.targets.get(&priority).copied(),
                incidents,
                breached,
                met_pct: (incidents > 0)
                    .then(|| 100.0 * (incidents - breached) as f64 / incidents as f64),
                mttr_ms: mean(&restores),
            }
        })
        .collect();
    Ok(Report {
        tenant: tenant.to_string(),
        from_ms,
        to_ms,
        services,
        priorities,
        tickets: Vec::new(),
        patches: None,
        drift: None,
        compliance: None,
    })
}

#[cfg(test)]
mod tests;
