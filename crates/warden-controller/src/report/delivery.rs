//! Client reports on a schedule (`[report-delivery]`): on day `day` of each month (UTC) the
//! controller writes every tenant's report of the month before, in each configured format,
//! to `<dir>/<tenant>/report-<tenant>-<YYYY-MM>-01.<ext>`, for the MSP to send on.
//!
//! # When (the spec [`due`] pins)
//!
//! - The **target** month at `now`: the month before `now`'s when `now`'s day of month is at
//!   least `day`, else the one before that (its delivery day has passed, this month's not yet).
//! - It is **due** when no month was delivered yet or the last delivered one is earlier than
//!   the target. A controller that was down on the delivery day delivers when it runs again;
//!   one down for longer delivers the latest month only (older ones are one
//!   `warden fleet report` away).
//! - The month is recorded (the store's state `report-delivery`) after every file is written:
//!   a crash in the middle writes them again at the next pass, whole (each file is written to
//!   a temporary name and renamed), never half.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;

use super::ReportFormat;
use crate::controller::{Controller, FleetError, internal_caller};

const STATE_KEY: &str = "report-delivery";

/// `[report-delivery]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDelivery {
    pub dir: PathBuf,
    pub formats: Vec<ReportFormat>,
    /// Day of the month, 1..=28 (every month has it).
    pub day: u32,
    pub tenants: Vec<TenantId>,
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn parse(text: &str) -> Option<Month> {
        NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .ok()
            .map(Month::of)
    }

    pub fn name(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// `[first day, next month's first day)`.
    pub fn period(self) -> Option<(UnixMillis, UnixMillis)> {
        let first = NaiveDate::from_ymd_opt(self.year, self.month, 1)?;
        let next = first.checked_add_months(chrono::Months::new(1))?;
        let ms = |d: NaiveDate| {
            UnixMillis(
                d.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis(),
            )
        };
        Some((ms(first), ms(next)))
    }
}

/// The month to deliver at `now`, if one is due (see the module doc).
pub fn due(now: UnixMillis, day: u32, last: Option<Month>) -> Option<Month> {
    let today = DateTime::<Utc>::from_timestamp_millis(now.as_millis())?.date_naive();
    let mut target = Month::of(today).previous();
    if today.day() < day {
        target = target.previous();
    }
    match last {
        Some(l) if l >= target => None,
        _ => Some(target),
    }
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

impl Controller {
    /// Write the reports that are due (nothing without `[report-delivery]`); the files written.
    pub fn deliver_reports(&self) -> Result<Vec<PathBuf>, FleetError> {
        let Some(d) = &self.report_delivery else {
            return Ok(Vec::new());
        };
        let last = self
            .store
            .load_state(STATE_KEY)?
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|v| v["month"].as_str().and_then(Month::parse));
        let Some(month) = due(self.now(), d.day, last) else {
            return Ok(Vec::new());
        };
        let (from, to) = month
            .period()
            .ok_or_else(|| FleetError::Internal(format!("no period for {}", month.name())))?;
        let caller = internal_caller();
        let io = |what: &Path, e: std::io::Error| {
            FleetError::Internal(format!("report delivery: {}: {e}", what.display()))
        };
        let mut written = Vec::new();
        for tenant in &d.tenants {
            let dir = d.dir.join(tenant.as_str());
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            // One read and computation per tenant, rendered in each format.
            let report = self.report(&caller, tenant, from, to)?;
            for &format in &d.formats {
                let file = super::render(&report, format);
                let path = dir.join(&file.file_name);
                write_atomically(&path, &file.body).map_err(|e| io(&path, e))?;
                written.push(path);
            }
        }
        self.store.save_state(
            STATE_KEY,
            &serde_json::json!({ "month": month.name() }).to_string(),
        )?;
        self.audit(
            "fleet.report-delivered",
            serde_json::json!({
                "month": month.name(),
                "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            }),
        )?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32) -> UnixMillis {
        let date = NaiveDate::from_ymd_opt(y, m, d).expect("date");
        UnixMillis(
            date.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis(),
        )
    }

    fn month(text: &str) -> Month {
        Month::parse(text).expect("month")
    }

    #[test]
    fn the_month_before_is_due_from_its_delivery_day_once() {
        // Day 1: on December 1st, November is due; delivered, nothing until January 1st.
        assert_eq!(due(at(2026, 12, 1), 1, None), Some(month("2026-11")));
        assert_eq!(due(at(2026, 12, 1), 1, Some(month("2026-11"))), None);
        assert_eq!(due(at(2026, 12, 31), 1, Some(month("2026-11"))), None);
        assert_eq!(
            due(at(2027, 1, 1), 1, Some(month("2026-11"))),
            Some(month("2026-12")),
            "across the year"
        );
        // Day 5: on December 4th November is not due yet (October is, if it never was).
        assert_eq!(due(at(2026, 12, 4), 5, Some(month("2026-10"))), None);
        assert_eq!(
            due(at(2026, 12, 5), 5, Some(month("2026-10"))),
            Some(month("2026-11"))
        );
        // Down for months: only the latest is delivered.
        assert_eq!(
            due(at(2027, 3, 9), 1, Some(month("2026-11"))),
            Some(month("2027-02"))
        );
    }

    #[test]
    fn a_month_is_its_calendar_days() {
        let (from, to) = month("2026-02").period().expect("period");
        assert_eq!(to.as_millis() - from.as_millis(), 28 * 86_400_000);
        assert_eq!(month("2026-01").previous(), month("2025-12"));
        assert!(Month::parse("2026-13").is_none());
    }
}
