//! `warden fleet export` and `warden fleet import`: air-gapped sites (`ExportKit`,
//! `ImportResults`; docs/FLEET.md "Air-gapped sites"). Export writes the kit where `--out`
//! says (atomically); import reads a results file an agent wrote with `warden kit collect`.
//! One line for people, `{"export": {...}}` / `{"import": {...}}` with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use warden_fleet_wire::airgap::{MAX_KIT_BYTES, MAX_RESULTS_BYTES};
use warden_proto::fleet as pb;

use super::super::Context;
use super::super::output::{inert, print_json};
use super::{Client, short, status_error, when};

/// A kit at its cap, with the response's other fields.
const MAX_KIT_RESPONSE_BYTES: usize = MAX_KIT_BYTES as usize + (64 << 10);

pub(super) async fn export(
    cx: &Context,
    client: &mut Client,
    tenant: String,
    agents: Vec<String>,
    out: PathBuf,
) -> Result<ExitCode> {
    let mut client = client
        .clone()
        .max_decoding_message_size(MAX_KIT_RESPONSE_BYTES);
    let kit = client
        .export_kit(pb::ExportKitRequest { tenant, agents })
        .await
        .map_err(status_error)?
        .into_inner();
    warden_core::fsutil::write_atomic(&out, &kit.kit)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if cx.json {
        print_json(&serde_json::json!({ "export": {
            "file": out.display().to_string(), "bytes": kit.kit.len(), "sha256": kit.sha256,
            "tenant": kit.tenant, "agents": kit.agents, "bundles": kit.bundles,
            "bundle_bytes": kit.bundle_bytes,
        }}))?;
    } else {
        println!(
            "kit {} for {} agent(s) of {}: {} bundle(s), {} bytes (sha256 {})",
            out.display(),
            kit.agents.len(),
            inert(&kit.tenant),
            kit.bundles,
            kit.kit.len(),
            short(&kit.sha256)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn import(cx: &Context, client: &mut Client, file: PathBuf) -> Result<ExitCode> {
    let bytes = match warden_core::fsutil::read_capped(&file, MAX_RESULTS_BYTES) {
        Ok(bytes) => bytes,
        Err(warden_core::fsutil::CappedReadError::TooLarge) => bail!(
            "{} is over the {MAX_RESULTS_BYTES} bytes of a results file",
            file.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let i = client
        .import_results(pb::ImportResultsRequest { results: bytes })
        .await
        .map_err(status_error)?
        .into_inner();
    if cx.json {
        print_json(&serde_json::json!({ "import": i }))?;
    } else {
        println!(
            "agent {} of {}: {} new result(s), {} already here; {} new event(s), {} already here",
            short(&i.agent),
            inert(&i.tenant),
            i.results_new,
            i.results_duplicate,
            i.events_new,
            i.events_duplicate
        );
        println!(
            "audit head #{} {} at {}; acknowledged through entry {} in the next kit",
            i.audit_seq,
            short(&i.audit_hash),
            when(i.audit_at_ms),
            i.through
        );
    }
    Ok(ExitCode::SUCCESS)
}
