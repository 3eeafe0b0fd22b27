//! Conversions between the WIT types a plugin returns and the domain types of the run report.

use crate::bindings::{check, discovery, remediation, ticketing};
use warden_core::report::{
    Action, ActionKind, ActionOutcome, CheckResult, CheckStatus, FactGroup, Metric, OutcomeStatus,
};

impl From<discovery::FactGroup> for FactGroup {
    fn from(g: discovery::FactGroup) -> Self {
        use discovery::FactValue as V;
        let facts = g
            .facts
            .into_iter()
            .map(|f| {
                let value = match f.value {
                    V::Text(s) => serde_json::Value::String(s),
                    V::Integer(i) => serde_json::Value::from(i),
                    V::Float(x) => serde_json::Number::from_f64(x)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null),
                    V::Boolean(b) => serde_json::Value::Bool(b),
                    V::TextList(l) => serde_json::Value::from(l),
                };
                (f.key, value)
            })
            .collect();
        FactGroup {
            kind: g.kind,
            facts,
        }
    }
}

impl From<check::CheckResult> for CheckResult {
    fn from(r: check::CheckResult) -> Self {
        let status = match r.status {
            check::Status::Ok => CheckStatus::Ok,
            check::Status::Warning => CheckStatus::Warning,
            check::Status::Critical => CheckStatus::Critical,
            check::Status::Unknown => CheckStatus::Unknown,
        };
        CheckResult {
            status,
            summary: r.summary,
            metrics: r
                .metrics
                .into_iter()
                .map(|m| Metric {
                    name: m.name,
                    value: m.value,
                    unit: m.unit,
                })
                .collect(),
        }
    }
}

impl From<remediation::Action> for Action {
    fn from(a: remediation::Action) -> Self {
        use remediation::ActionKind as K;
        let kind = match a.kind {
            K::Create => ActionKind::Create,
            K::Modify => ActionKind::Modify,
            K::Delete => ActionKind::Delete,
            K::Exec => ActionKind::Exec,
            K::ServiceStart => ActionKind::ServiceStart,
            K::ServiceStop => ActionKind::ServiceStop,
            K::ServiceRestart => ActionKind::ServiceRestart,
            K::Other => ActionKind::Other,
        };
        Action {
            id: a.id,
            kind,
            target: a.target,
            description: a.description,
        }
    }
}

impl From<&Action> for remediation::Action {
    fn from(a: &Action) -> Self {
        use remediation::ActionKind as K;
        let kind = match a.kind {
            ActionKind::Create => K::Create,
            ActionKind::Modify => K::Modify,
            ActionKind::Delete => K::Delete,
            ActionKind::Exec => K::Exec,
            ActionKind::ServiceStart => K::ServiceStart,
            ActionKind::ServiceStop => K::ServiceStop,
            ActionKind::ServiceRestart => K::ServiceRestart,
            ActionKind::Other => K::Other,
        };
        remediation::Action {
            id: a.id.clone(),
            kind,
            target: a.target.clone(),
            description: a.description.clone(),
        }
    }
}

impl From<remediation::ActionOutcome> for ActionOutcome {
    fn from(o: remediation::ActionOutcome) -> Self {
        let status = match o.status {
            remediation::OutcomeStatus::Applied => OutcomeStatus::Applied,
            remediation::OutcomeStatus::Skipped => OutcomeStatus::Skipped,
            remediation::OutcomeStatus::Failed => OutcomeStatus::Failed,
        };
        ActionOutcome {
            id: o.id,
            status,
            detail: o.detail,
        }
    }
}

impl From<&warden_core::ticket::IncidentRef> for ticketing::IncidentRef {
    fn from(i: &warden_core::ticket::IncidentRef) -> Self {
        ticketing::IncidentRef {
            monitor: i.monitor.clone(),
            incident: i.incident.clone(),
            external_ref: i.external_ref.clone(),
            tenant: i.tenant.clone(),
            host: i.host.clone(),
        }
    }
}

impl From<&warden_core::ticket::NewTicket> for ticketing::NewTicket {
    fn from(t: &warden_core::ticket::NewTicket) -> Self {
        ticketing::NewTicket {
            incident: (&t.incident).into(),
            summary: t.summary.clone(),
            description: t.description.clone(),
        }
    }
}

impl From<&warden_core::ticket::TicketNote> for ticketing::TicketNote {
    fn from(n: &warden_core::ticket::TicketNote) -> Self {
        ticketing::TicketNote {
            incident: (&n.incident).into(),
            ticket_id: n.ticket_id.clone(),
            text: n.text.clone(),
        }
    }
}

impl From<ticketing::Ticket> for warden_core::ticket::Ticket {
    fn from(t: ticketing::Ticket) -> Self {
        warden_core::ticket::Ticket {
            id: t.id,
            respond_by: t.respond_by,
            resolve_by: t.resolve_by,
        }
    }
}
