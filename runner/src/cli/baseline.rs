//! `warden baseline take|show|diff|accept`: the baseline configuration of this machine on the
//! history database (see `warden_automation::baseline`): record one from the latest inventory,
//! list its versions with their hashes, show what drifted since, and accept (some of) the drift
//! as the next version. Recording a version is audited with who and why.
//!
//! Exit codes: `diff` 0 without drift, 1 with drift; 2 for anything that keeps a command from
//! answering (no baseline, no inventory, nothing to accept), so a script never reads an error
//! as drift.

use super::output::{inert, print_json, print_table, table};
use super::{Context, ExitWith, times};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::process::ExitCode;
use warden_automation::baseline::drift::{self, Drift};
use warden_automation::baseline::record::{self, Version};
use warden_automation::baseline::{Category, Selector, Snapshot};
use warden_history::{History, InventoryRow};

/// The exit code of a command that could not answer.
const CANNOT: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Record the latest inventory's stable fields as the next baseline version.
    Take {
        #[command(flatten)]
        from: InventoryArg,
        #[command(flatten)]
        who: Who,
    },
    /// The baseline versions with their hashes, or the items of one version.
    // `--version N` is the baseline's; warden's own version is `warden --version`.
    #[command(disable_version_flag = true)]
    Show {
        /// Show this version's items (default: list the versions).
        #[arg(long, value_name = "N")]
        version: Option<i64>,
    },
    /// What was added, removed or changed since the baseline; exits 1 when anything was.
    #[command(disable_version_flag = true)]
    Diff {
        #[command(flatten)]
        from: InventoryArg,
        /// Compare with this version (default: the latest).
        #[arg(long, value_name = "N")]
        version: Option<i64>,
    },
    /// Accept the drift (all of it, or only some) as the next baseline version.
    Accept {
        #[command(flatten)]
        from: InventoryArg,
        /// Accept only this category (`package`) or item (`package:nmap`); repeatable.
        #[arg(long = "only", value_name = "CATEGORY[:ITEM]")]
        only: Vec<Selector>,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(Debug, Args)]
pub struct InventoryArg {
    /// The discovery plugin whose latest recorded inventory is used.
    #[arg(long, default_value = "inventory", value_name = "NAME")]
    plugin: String,
}

#[derive(Debug, Args)]
pub struct Who {
    /// Why: kept with the version and in the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// Who (default: the login name).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

impl Who {
    fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("SUDO_USER").ok())
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn cannot(error: anyhow::Error) -> anyhow::Error {
    match error.downcast_ref::<ExitWith>() {
        Some(_) => error,
        None => anyhow::Error::new(ExitWith {
            code: CANNOT,
            error,
        }),
    }
}

pub fn run(cx: &Context, cmd: BaselineCommand) -> Result<ExitCode> {
    inner(cx, cmd).map_err(cannot)
}

fn inner(cx: &Context, cmd: BaselineCommand) -> Result<ExitCode> {
    let history = match &cmd {
        // Reading creates no history; recording creates one only to fail for want of inventory.
        BaselineCommand::Show { .. } | BaselineCommand::Diff { .. } => {
            History::open_existing(&cx.data_dir)?
                .with_context(|| format!("no baseline: no history in {}", cx.data_dir.display()))?
        }
        _ => History::open(&cx.data_dir)?,
    };
    match cmd {
        BaselineCommand::Take { from, who } => {
            let (inv, current) = record::inventory(&history, &from.plugin)?;
            let reason = who
                .reason
                .clone()
                .unwrap_or_else(|| "baseline taken".into());
            save(cx, &history, &current, &inv, &who.by(), &reason, None)
        }
        BaselineCommand::Show { version } => show(cx, &history, version),
        BaselineCommand::Diff { from, version } => {
            let base = latest(&history, version)?;
            let (inv, current) = record::inventory(&history, &from.plugin)?;
            let found = drift::drift(&base.snapshot, &current);
            print_drift(cx, &base, &inv, &found)?;
            Ok(ExitCode::from(u8::from(!found.is_empty())))
        }
        BaselineCommand::Accept { from, only, who } => {
            let reason = who
                .reason
                .clone()
                .context("accepting a change needs --reason (kept with the version and audited)")?;
            let base = latest(&history, None)?;
            let (inv, current) = record::inventory(&history, &from.plugin)?;
            let found = drift::drift(&base.snapshot, &current);
            let taken: Vec<_> = found
                .changes
                .iter()
                .filter(|c| drift::selected(&only, c))
                .cloned()
                .collect();
            if taken.is_empty() {
                anyhow::bail!(
                    "nothing to accept: {} from baseline {}",
                    if found.is_empty() {
                        "no drift"
                    } else {
                        "no drift matches --only"
                    },
                    base.row.version
                );
            }
            let next = drift::accept(&base.snapshot, &found, &only);
            let accepted = Drift { changes: taken };
            save(
                cx,
                &history,
                &next,
                &inv,
                &who.by(),
                &reason,
                Some(&accepted),
            )
        }
    }
}

fn latest(history: &History, version: Option<i64>) -> Result<Version> {
    record::load(history, version)?.with_context(|| match version {
        Some(v) => format!("no baseline version {v} (`warden baseline show` lists them)"),
        None => "no baseline yet: `warden baseline take` records one".into(),
    })
}

/// `<plugin> <version> collected <time>`.
fn source(inv: &InventoryRow) -> String {
    format!(
        "{} {} collected {}",
        inv.plugin,
        inv.version,
        times::at_ms(inv.collected_ms)
    )
}

/// Record `snapshot` as the next version, unless the latest already is it; audit it.
fn save(
    cx: &Context,
    history: &History,
    snapshot: &Snapshot,
    inv: &InventoryRow,
    by: &str,
    reason: &str,
    accepted: Option<&Drift>,
) -> Result<ExitCode> {
    if let Some(last) = record::load(history, None)?
        && last.row.sha256 == snapshot.sha256()
    {
        if cx.json {
            print_json(&json!({ "recorded": false, "baseline": last.row }))?;
        } else {
            println!(
                "unchanged: baseline {} already is this inventory (sha256 {})",
                last.row.version, last.row.sha256
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The audit log is opened before anything is recorded: a version nobody can trace is not a
    // baseline (CM-2), and a failed append below fails the command with the version named.
    let runner = cx.runner()?;
    let version = record::save(history, snapshot, by, reason, &source(inv))?;
    let changes = accepted.map(|d| &d.changes);
    runner
        .audit()
        .append(
            "baseline.recorded",
            json!({
                "version": version.row.version,
                "sha256": version.row.sha256,
                "taken_by": by,
                "reason": reason,
                "source": version.row.source,
                "items": snapshot.count(),
                "accepted": changes,
            }),
        )
        .with_context(|| {
            format!(
                "baseline {} is recorded, but the audit log cannot be written",
                version.row.version
            )
        })?;
    if cx.json {
        print_json(&json!({ "recorded": true, "baseline": version.row, "accepted": changes }))?;
    } else {
        println!(
            "baseline {} recorded: {} items, sha256 {}",
            version.row.version,
            snapshot.count(),
            version.row.sha256
        );
        if let Some(d) = accepted {
            println!(
                "  accepted {} change(s): {}",
                d.changes.len(),
                d.counts_text()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(cx: &Context, history: &History, version: Option<i64>) -> Result<ExitCode> {
    if let Some(v) = version {
        let base = latest(history, Some(v))?;
        if cx.json {
            print_json(&json!({ "baseline": base.row, "items": base.snapshot }))?;
            return Ok(ExitCode::SUCCESS);
        }
        describe(&base);
        let mut rows = table(["CATEGORY", "ITEM", "VALUE"]);
        for category in Category::ALL {
            for (item, value) in base.snapshot.items(category) {
                rows.add_row([
                    category.to_string(),
                    inert(item).into_owned(),
                    inert(value).into_owned(),
                ]);
            }
        }
        print_table(&rows);
        return Ok(ExitCode::SUCCESS);
    }
    let versions = history.baselines()?;
    if cx.json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        anyhow::bail!("no baseline yet: `warden baseline take` records one");
    }
    let mut rows = table(["VERSION", "TAKEN", "BY", "SHA256", "REASON"]);
    for v in &versions {
        rows.add_row([
            v.version.to_string(),
            times::at_ms(v.taken_ms),
            inert(&v.taken_by).into_owned(),
            v.sha256.clone(),
            inert(&v.reason).into_owned(),
        ]);
    }
    super::output::align_right(&mut rows, &[0]);
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// A version's header lines.
fn describe(base: &Version) {
    let r = &base.row;
    println!(
        "baseline {} taken {} by {}: {}",
        r.version,
        times::at_ms(r.taken_ms),
        inert(&r.taken_by),
        inert(&r.reason)
    );
    println!("  sha256 {}", r.sha256);
    println!("  from   {}", inert(&r.source));
}

fn print_drift(cx: &Context, base: &Version, inv: &InventoryRow, found: &Drift) -> Result<()> {
    if cx.json {
        let counts: serde_json::Map<String, serde_json::Value> = found
            .counts()
            .into_iter()
            .map(|(c, n)| (c.to_string(), json!(n)))
            .collect();
        return print_json(&json!({
            "baseline": base.row,
            "inventory": { "plugin": inv.plugin, "version": inv.version, "collected_ms": inv.collected_ms },
            "drift": !found.is_empty(),
            "counts": counts,
            "changes": found.changes,
        }));
    }
    println!(
        "baseline {} (sha256 {}, {} by {}) vs {}",
        base.row.version,
        &base.row.sha256[..base.row.sha256.len().min(12)],
        times::at_ms(base.row.taken_ms),
        inert(&base.row.taken_by),
        inert(&source(inv))
    );
    if found.is_empty() {
        println!("no drift");
        return Ok(());
    }
    let mut rows = table(["CATEGORY", "CHANGE", "ITEM", "BASELINE", "CURRENT"]);
    for c in &found.changes {
        rows.add_row([
            c.category.to_string(),
            c.change.as_str().to_string(),
            inert(&c.item).into_owned(),
            inert(c.baseline.as_deref().unwrap_or("-")).into_owned(),
            inert(c.current.as_deref().unwrap_or("-")).into_owned(),
        ]);
    }
    print_table(&rows);
    println!("{} change(s): {}", found.changes.len(), found.counts_text());
    Ok(())
}
