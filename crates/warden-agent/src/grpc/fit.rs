//! Answers that always fit. A run, a list of runs or the inventory is cut down, before it is
//! sent, to the message size a client can receive, and says what was cut; otherwise one large
//! output in the history (a check returning 400,000 metrics) made `GetRun` of its run fail for
//! good, the answer exceeding the encoder's limit.

use super::pb;
use prost::Message as _;

/// The most a client is assumed to accept: 4 MiB is the default receive limit of tonic, grpc-go
/// and Python's grpcio (and of `warden ctl`). An answer is cut to this or to the agent's
/// `max-message-bytes`, whichever is lower.
pub const CLIENT_RECEIVE_BYTES: usize = 4 << 20;

/// Text fields kept whole when an answer is cut: a note replacing them is about as long.
const KEPT_TEXT_BYTES: usize = 1024;

/// The size answers are cut to, given the agent's `max-message-bytes`.
pub fn budget(max_message_bytes: usize) -> usize {
    max_message_bytes.min(CLIENT_RECEIVE_BYTES)
}

/// What replaces a cut JSON text.
fn note(bytes: usize) -> String {
    serde_json::json!({ "truncated": true, "bytes": bytes }).to_string()
}

/// `text` cut to its first [`KEPT_TEXT_BYTES`] bytes.
fn cut_text(text: &mut String) {
    if text.len() > KEPT_TEXT_BYTES {
        let mut end = KEPT_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("... (cut)");
    }
}

/// Cut `run` until it encodes in `limit` bytes: the largest step outputs first, then the
/// parameters and long errors, then steps from the last.
pub fn fit_run(run: &mut pb::Run, limit: usize) {
    if run.encoded_len() <= limit {
        return;
    }
    run.truncated = true;
    let mut largest: Vec<usize> = (0..run.steps.len()).collect();
    largest.sort_by_key(|&i| std::cmp::Reverse(run.steps[i].output_json.len()));
    for i in largest {
        if run.encoded_len() <= limit {
            return;
        }
        let step = &mut run.steps[i];
        if step.output_json.len() > KEPT_TEXT_BYTES {
            step.output_json = note(step.output_json.len());
            step.output_truncated = true;
        }
    }
    if run.params_json.len() > KEPT_TEXT_BYTES {
        run.params_json = note(run.params_json.len());
    }
    for step in &mut run.steps {
        cut_text(&mut step.error);
    }
    while run.encoded_len() > limit && run.steps.pop().is_some() {}
}

/// Cut a list of runs until it encodes in `limit` bytes: the largest parameters first, then the
/// oldest runs.
pub fn fit_runs(list: &mut pb::ListRunsResponse, limit: usize) {
    if list.encoded_len() <= limit {
        return;
    }
    let mut largest: Vec<usize> = (0..list.runs.len()).collect();
    largest.sort_by_key(|&i| std::cmp::Reverse(list.runs[i].params_json.len()));
    for i in largest {
        if list.encoded_len() <= limit {
            return;
        }
        let run = &mut list.runs[i];
        if run.params_json.len() > KEPT_TEXT_BYTES {
            run.params_json = note(run.params_json.len());
            run.truncated = true;
        }
    }
    while list.encoded_len() > limit && list.runs.pop().is_some() {
        list.truncated = true;
    }
}

/// Cut the inventory until it encodes in `limit` bytes: the largest fact sets first.
pub fn fit_inventory(snapshot: &mut pb::InventorySnapshot, limit: usize) {
    let mut largest: Vec<usize> = (0..snapshot.entries.len()).collect();
    largest.sort_by_key(|&i| std::cmp::Reverse(snapshot.entries[i].facts_json.len()));
    for i in largest {
        if snapshot.encoded_len() <= limit {
            return;
        }
        let entry = &mut snapshot.entries[i];
        if entry.facts_json.len() > KEPT_TEXT_BYTES {
            entry.facts_json = note(entry.facts_json.len());
            entry.facts_truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(output: usize) -> pb::Step {
        pb::Step {
            step: "s".into(),
            output_json: format!("\"{}\"", "x".repeat(output)),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_is_cut_largest_output_first_until_it_fits() {
        let mut run = pb::Run {
            run_id: "r".into(),
            steps: vec![step(10), step(300_000), step(2000), step(100_000)],
            ..Default::default()
        };
        fit_run(&mut run, 200_000);
        assert!(run.encoded_len() <= 200_000);
        assert!(run.truncated);
        let cut: Vec<bool> = run.steps.iter().map(|s| s.output_truncated).collect();
        assert_eq!(cut, [false, true, false, false], "only what had to go");

        let mut small = run.clone();
        small.truncated = false;
        fit_run(&mut small, 200_000);
        assert!(!small.truncated, "an answer that fits is left alone");

        let mut tiny = pb::Run {
            steps: (0..100).map(|_| step(10)).collect(),
            ..Default::default()
        };
        fit_run(&mut tiny, 1024);
        assert!(tiny.encoded_len() <= 1024 && tiny.truncated && tiny.steps.len() < 100);
    }
}
