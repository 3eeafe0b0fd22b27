//! Options shared by the commands that sign bundles (`plugin pack`, `runbook pack`).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use warden_bundle::{Bundle, keys};

#[derive(Debug, Args)]
pub struct SigningArgs {
    /// Secret key file (from `warden key generate`).
    #[arg(long)]
    pub key: PathBuf,
    /// Output file. Default: named after what is packed, in the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Days until the signed statement expires.
    #[arg(long, default_value_t = 365)]
    pub valid_days: u64,
}

impl SigningArgs {
    /// Sign `bundle` and write it to `--out`, else `default_out`; returns the path and key id.
    pub fn sign_and_write(
        &self,
        bundle: &mut Bundle,
        default_out: String,
    ) -> Result<(PathBuf, String)> {
        let key = keys::load_secret(&self.key)?;
        bundle.sign(&key);
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_out));
        std::fs::write(&out, bundle.to_bytes()?)?;
        Ok((out, keys::key_id(&key.verifying_key())))
    }
}
