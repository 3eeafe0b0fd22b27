//! The client report download (`GET /reports`, `GET /reports/file`): a viewer of the tenant
//! gets the file as an attachment; the controller checks the role and the tenant scope and
//! audits the read ([`warden_controller::Controller::report_file`]).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use warden_controller::controller::FleetError;
use warden_controller::report::ReportFormat;
use warden_controller::report::delivery::Month;
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;

use crate::pages;
use crate::routes::{Shared, blocking, failure, signed_in};

#[derive(Debug, Deserialize)]
pub struct FileParams {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    format: String,
}

/// The month before `today`'s, `2026-11` (the report a client gets at the start of a month).
fn last_month(today: NaiveDate) -> String {
    Month::of(today).previous().name()
}

/// `[first day, next month's first day)` of `2026-11`, UTC.
fn month_period(text: &str) -> Option<(UnixMillis, UnixMillis)> {
    Month::parse(text)?.period()
}

pub async fn form(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let month = last_month(Utc::now().date_naive());
    pages::reports::page(&session, caller.scope.tenant(), &month).into_response()
}

pub async fn file(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<FileParams>,
) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let invalid = |message: String| failure(&session, &FleetError::Invalid(message));
    let tenant = match TenantId::new(p.tenant.clone()) {
        Ok(t) => t,
        Err(e) => return invalid(format!("tenant {:?}: {e}", p.tenant)),
    };
    let Some((from, to)) = month_period(&p.month) else {
        return invalid(format!("month {:?}: a month is YYYY-MM", p.month));
    };
    let Some(format) = ReportFormat::parse(&p.format) else {
        return invalid(format!("format {:?}: one of pdf, html, csv", p.format));
    };
    let controller = c.controller.clone();
    match blocking(move || controller.report_file(&caller, &tenant, from, to, format)).await {
        Ok(f) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, f.content_type.to_string()),
                // The name is letters, digits, `-` and `.` (ReportFile's contract): no quoting.
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", f.file_name),
                ),
            ],
            f.body,
        )
            .into_response(),
        Err(e) => failure(&session, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_month_is_the_last_one_and_months_are_calendar_periods() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(last_month(d(2026, 12, 2)), "2026-11");
        assert_eq!(last_month(d(2027, 1, 31)), "2026-12");
        let (from, to) = month_period("2026-11").expect("november");
        assert_eq!(
            (from.0, to.0 - from.0),
            (1_793_491_200_000, 30 * 86_400_000)
        );
        for bad in ["2026-13", "2026", "", "2026-11-01", "nov"] {
            assert!(month_period(bad).is_none(), "{bad}");
        }
    }
}
