//! The client reports page: a tenant, a month and a format, downloaded as one file from
//! `/reports/file` (the same report as `warden fleet report`).

use maud::{Markup, html};

use crate::session::Session;

/// The form, prefilled with the caller's tenant (a tenant-scoped caller has one) and `month`.
pub fn page(session: &Session, tenant: Option<&str>, month: &str) -> Markup {
    super::layout(
        "Client reports",
        Some(session),
        html! {
            h1 { "Client reports" }
            p {
                "Uptime, incidents and time to restore per monitored service, against the \
                 tenant's SLA targets, grouped by NIST CSF 2.0 function."
            }
            form.report method="get" action="/reports/file" {
                label { "Tenant " input type="text" name="tenant" required
                    pattern="[a-z0-9][a-z0-9-]*" value=(tenant.unwrap_or_default()); }
                label { " Month " input type="month" name="month" required value=(month); }
                label { " Format "
                    select name="format" {
                        option value="pdf" { "PDF" }
                        option value="html" { "HTML" }
                        option value="csv" { "CSV" }
                    }
                }
                " "
                button type="submit" { "Download" }
            }
        },
    )
}
