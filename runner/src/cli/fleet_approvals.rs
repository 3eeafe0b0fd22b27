//! `warden fleet approvals | approve | deny`, and what `warden fleet run` prints when its run
//! waits for a second operator (four eyes, issue 16; the controller decides, this only shows).

use std::process::ExitCode;

use anyhow::Result;
use warden_proto::fleet as pb;

use super::Context;
use super::fleet::{Client, short, status_error, table, when};
use super::output::{inert, print_json};

/// `warden fleet run`'s exit code when the run was not sent but waits for approval.
pub(super) const PENDING_EXIT: u8 = 4;

fn params(view: &pb::ApprovalView) -> String {
    let mut p: Vec<(&String, &String)> = view.params.iter().collect();
    p.sort();
    let text: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if text.is_empty() {
        "-".into()
    } else {
        inert(&text.join(",")).into_owned()
    }
}

/// A run that became a request: what it is bound to and who may approve it.
pub(super) fn print_pending(cx: &Context, view: &pb::ApprovalView) -> Result<ExitCode> {
    if cx.json {
        print_json(&serde_json::json!({ "approval": view }))?;
        return Ok(ExitCode::from(PENDING_EXIT));
    }
    println!(
        "needs approval: request {} ({})",
        view.id,
        inert(&view.reasons.join("; "))
    );
    println!(
        "  runbook {}{}  target {}  params {}  agents {}  tenants {}",
        inert(&view.artifact),
        if view.dry_run { " (dry run)" } else { "" },
        inert(&view.target),
        params(view),
        view.agents.len(),
        view.tenants.join(",")
    );
    println!(
        "  digest {}  expires {}",
        short(&view.digest),
        when(view.expires_at)
    );
    println!(
        "  nothing was sent; another operator approves with: warden fleet approve {}",
        view.id
    );
    Ok(ExitCode::from(PENDING_EXIT))
}

pub(super) async fn list(cx: &Context, client: &mut Client, all: bool) -> Result<ExitCode> {
    let approvals = client
        .list_approvals(pb::ListApprovalsRequest { all })
        .await
        .map_err(status_error)?
        .into_inner()
        .approvals;
    if cx.json {
        print_json(&serde_json::json!({ "approvals": approvals }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if approvals.is_empty() {
        println!(
            "no approval requests {}",
            if all { "" } else { "waiting" }.trim_end()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.kind.clone(),
                inert(&a.artifact).into_owned(),
                inert(&a.target).into_owned(),
                params(a),
                a.agents.len().to_string(),
                a.tenants.join(","),
                inert(&a.requested_by).into_owned(),
                when(a.expires_at),
                a.state.clone(),
                inert(&a.reasons.join("; ")).into_owned(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "KIND", "ARTIFACT", "TARGET", "PARAMS", "AGENTS", "TENANTS", "BY", "EXPIRES",
            "STATE", "WHY",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn approve(cx: &Context, client: &mut Client, id: String) -> Result<ExitCode> {
    let view = client
        .approve(pb::DecideApprovalRequest {
            id,
            reason: String::new(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if cx.json {
        print_json(&serde_json::json!({ "approval": view }))?;
    } else if view.run_id.is_empty() {
        println!(
            "approved {} by {}: the {} may start with it, once",
            view.id,
            inert(&view.decided_by),
            view.kind
        );
    } else {
        println!(
            "approved {} by {}: run {} to {} agents (requested by {}); follow it with: warden fleet show {}",
            view.id,
            inert(&view.decided_by),
            view.run_id,
            view.agents.len(),
            inert(&view.requested_by),
            view.run_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn deny(
    cx: &Context,
    client: &mut Client,
    id: String,
    reason: String,
) -> Result<ExitCode> {
    let view = client
        .deny(pb::DecideApprovalRequest { id, reason })
        .await
        .map_err(status_error)?
        .into_inner();
    if cx.json {
        print_json(&serde_json::json!({ "approval": view }))?;
    } else {
        println!(
            "denied {} by {}: {}",
            view.id,
            inert(&view.decided_by),
            inert(&view.note)
        );
    }
    Ok(ExitCode::SUCCESS)
}
