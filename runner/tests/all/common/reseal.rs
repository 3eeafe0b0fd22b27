//! A re-seal, as someone who can write the data directory would do it: take the records, change
//! what they like, renumber and re-link the whole chain with the same hashing, and write an anchor
//! (`head.json`) that matches. A plain `warden audit verify` cannot tell.

use std::path::Path;

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The log's records, as JSON.
pub fn records(data_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("audit/audit.log"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

/// Write `records` as the whole log, each renumbered and linked to the one before it, `patch`
/// called on each once its `seq` and `prev` are set (to re-sign a checkpoint, say); then the
/// matching anchor.
pub fn reseal(
    data_dir: &Path,
    mut records: Vec<serde_json::Value>,
    mut patch: impl FnMut(&mut serde_json::Value),
) {
    let mut prev = GENESIS.to_string();
    let mut text = String::new();
    for (i, record) in records.iter_mut().enumerate() {
        record["seq"] = serde_json::json!(i + 1);
        record["prev"] = serde_json::json!(prev);
        patch(record);
        let line = serde_json::to_string(record).expect("line");
        prev = warden_core::sha256_hex(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    let audit = data_dir.join("audit");
    std::fs::write(audit.join("audit.log"), &text).expect("log");
    let head = serde_json::json!({ "seq": records.len(), "hash": prev, "len": text.len() });
    std::fs::write(audit.join("head.json"), head.to_string()).expect("anchor");
}
