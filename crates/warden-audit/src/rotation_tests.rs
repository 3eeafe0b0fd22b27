//! Rotation, verification across files, and retention, on real files in a temporary directory.

use super::*;
use serde_json::json;
use std::time::Duration;

const DAY_MS: u64 = 86_400_000;

/// A log that seals its live file before every batch that follows records: each batch below is
/// one file.
fn rotating(dir: &Path) -> AuditLog {
    let log = AuditLog::new(dir);
    log.set_rotate_bytes(0);
    log
}

/// Append one batch of `n` records, written at `at_ms`.
fn batch_at(log: &AuditLog, n: u64, at_ms: u64) {
    log.append_now(
        (0..n)
            .map(|i| {
                Pending::new("e", &json!({ "i": i }))
                    .expect("record")
                    .at(at_ms)
            })
            .collect(),
    )
    .expect("append");
}

fn now() -> u64 {
    group::now_ms()
}

fn sealed(log: &AuditLog, last_seq: u64) -> PathBuf {
    files::sealed_path(log.path(), last_seq)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(String::from)
        .collect()
}

fn broken(r: Result<VerifyReport, AuditError>) -> (PathBuf, u64, String) {
    match r {
        Err(AuditError::Broken {
            path,
            line,
            message,
        }) => (path, line, message),
        other => panic!("not detected: {other:?}"),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

/// Four files of four chain positions each: `audit-3` (records 1-3), `audit-7` (rotated 4,
/// 5-7), `audit-11` (rotated 8, 9-11), and the live file (rotated 12, 13-15).
fn four_files(dir: &Path) -> AuditLog {
    let log = rotating(dir);
    for _ in 0..4 {
        batch_at(&log, 3, now());
    }
    log
}

#[test]
fn a_full_live_file_is_sealed_before_a_batch_and_the_chain_goes_on_in_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::new(dir.path());
    log.set_rotate_bytes(400);
    let pad = "x".repeat(100);
    for n in 0..12 {
        log.append("e", json!({ "n": n, "pad": pad }))
            .expect("append");
    }
    let sealed_files = files::list_sealed(log.path()).expect("list");
    assert!(sealed_files.len() >= 2, "{sealed_files:?}");
    for s in &sealed_files {
        let len = files::len_of(&s.path).expect("len");
        // Sealed once it reached the size, before the batch that would have made it longer.
        assert!((400..400 + 300).contains(&len), "{} is {len} bytes", s.name);
        let last: AuditRecord =
            serde_json::from_str(lines(&s.path).last().expect("a line")).expect("record");
        assert_eq!(
            s.name,
            files::sealed_name(last.seq),
            "named for its last record"
        );
    }
    // The live file opens with the record naming the last sealed file; seq and prev go on.
    let last_sealed = sealed_files.last().expect("sealed");
    let sealed_last_line = lines(&last_sealed.path).pop().expect("line");
    let first: AuditRecord =
        serde_json::from_str(&lines(log.path())[0]).expect("the live file's first record");
    assert_eq!(first.event, files::ROTATED);
    assert_eq!(first.seq, last_sealed.last_seq + 1);
    assert_eq!(first.prev, hash_line(&sealed_last_line));
    assert_eq!(
        first.data,
        json!({ "sealed": last_sealed.name, "last_seq": last_sealed.last_seq,
                "last_hash": hash_line(&sealed_last_line) })
    );
    let report = log.verify().expect("one chain");
    let rotations = sealed_files.len() as u64;
    assert_eq!(report.records, 12 + rotations);
    assert_eq!(report.files, rotations + 1);
    let head = log.head().expect("head");
    assert_eq!(head.seq, 12 + rotations);
    let anchor = read_head(&log.head_path()).expect("anchor").expect("some");
    assert_eq!(anchor.len, Some(files::len_of(log.path()).expect("len")));
    // A reopened log (another process) continues the same chain.
    let again = AuditLog::new(dir.path());
    assert_eq!(
        again.append("f", json!({})).expect("append").seq,
        head.seq + 1
    );
    assert_eq!(again.verify().expect("intact").records, 13 + rotations);
}

#[test]
fn a_crash_after_the_move_and_before_the_anchor_is_completed_by_the_next_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::new(dir.path());
    log.append("a", json!({})).expect("append");
    let b = log.append("b", json!({})).expect("append");
    // The rotation's first step, then the crash: the live file is sealed, the anchor still
    // gives its length.
    std::fs::create_dir_all(files::sealed_dir(log.path())).expect("dir");
    std::fs::rename(log.path(), sealed(&log, 2)).expect("move");
    let report = log.verify().expect("not a truncation");
    assert_eq!((report.records, report.files), (2, 1));
    assert!(
        report
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("rotation was interrupted")),
        "{report:?}"
    );
    let head = log.head().expect("head after the move");
    assert_eq!((head.seq, head.at_ms), (2, b.at_ms));

    // The next write (this process, whose cached tail names a file that moved) completes it.
    let c = log.append("c", json!({})).expect("append");
    assert_eq!(c.seq, 4, "record 3 is the rotation's");
    let first: AuditRecord = serde_json::from_str(&lines(log.path())[0]).expect("record");
    assert_eq!(first.event, files::ROTATED);
    assert_eq!(first.data["sealed"], files::sealed_name(2));
    assert_eq!(
        log.verify().expect("intact"),
        VerifyReport {
            records: 4,
            files: 2,
            ..VerifyReport::default()
        }
    );
}

#[test]
fn a_crash_after_the_anchor_and_before_the_first_batch_is_completed_by_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::new(dir.path());
    let a = log.append("a", json!({})).expect("append");
    let anchor = read_head(&log.head_path()).expect("anchor").expect("some");
    std::fs::create_dir_all(files::sealed_dir(log.path())).expect("dir");
    std::fs::rename(log.path(), sealed(&log, 1)).expect("move");
    std::fs::write(
        log.head_path(),
        serde_json::to_vec(&Head {
            len: Some(0),
            ..anchor
        })
        .expect("json"),
    )
    .expect("anchor the empty live file");
    drop(log);
    let report = AuditLog::new(dir.path()).verify().expect("intact");
    assert_eq!((report.records, report.files, report.warning), (1, 1, None));
    let log = AuditLog::new(dir.path());
    assert_eq!(
        log.head().expect("head").at_ms,
        a.at_ms,
        "from the sealed file"
    );
    assert_eq!(log.append("b", json!({})).expect("append").seq, 3);
    assert_eq!(log.verify().expect("intact").records, 3);
}

#[test]
fn an_emptied_live_file_is_still_a_truncation_and_nothing_is_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::new(dir.path());
    log.append("a", json!({})).expect("append");
    log.append("b", json!({})).expect("append");
    std::fs::write(log.path(), "").expect("empty it");
    let (_, _, m) = broken(log.verify());
    assert!(m.contains("truncated"), "{m}");
    let err = AuditLog::new(dir.path())
        .append("c", json!({}))
        .expect_err("refused");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_log_that_cannot_be_sealed_keeps_recording_in_its_live_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = rotating(dir.path());
    log.append("a", json!({})).expect("append");
    // `sealed` is a file: the directory cannot be made.
    let blocked = files::sealed_dir(log.path());
    std::fs::write(&blocked, "").expect("block");
    log.append("b", json!({})).expect("written anyway");
    assert_eq!(lines(log.path()).len(), 2, "in the live file");
    std::fs::remove_file(&blocked).expect("unblock");
    let report = log.verify().expect("intact");
    assert_eq!((report.records, report.files), (2, 1));
    log.append("c", json!({})).expect("append");
    assert_eq!(log.verify().expect("sealed now").files, 2);
}

#[test]
fn verify_walks_every_file_and_reports_tampering_by_file_and_line() {
    let untouched = tempfile::tempdir().expect("tempdir");
    let report = four_files(untouched.path()).verify().expect("intact");
    assert_eq!((report.records, report.files, report.pruned), (15, 4, None));

    /// The four files, tampered with by `edit`, verified by a fresh log.
    fn tampered(edit: impl FnOnce(&AuditLog)) -> (String, u64, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = four_files(dir.path());
        edit(&log);
        let (path, line, m) = broken(AuditLog::new(dir.path()).verify());
        (file_name(&path), line, m)
    }
    let rewrite = |path: PathBuf, edit: &dyn Fn(&mut Vec<String>)| {
        let mut l = lines(&path);
        edit(&mut l);
        std::fs::write(
            &path,
            l.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .expect("write");
    };

    let (file, line, _) = tampered(|log| {
        rewrite(sealed(log, 7), &|l| {
            l[1] = l[1].replace("\"i\":0", "\"i\":9")
        });
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(7).as_str(), 3));

    let (file, line, m) = tampered(|log| {
        rewrite(sealed(log, 7), &|l| {
            l[3] = l[3].replace("\"i\":2", "\"i\":9")
        });
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(11).as_str(), 1));
    assert!(
        m.contains(&files::sealed_name(7)),
        "names the file before: {m}"
    );

    let (file, line, m) = tampered(|log| {
        std::fs::remove_file(sealed(log, 7)).expect("remove");
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(11).as_str(), 1));
    assert!(m.contains("missing"), "a gap: {m}");

    let (file, line, m) = tampered(|log| {
        // The two middle files swap contents.
        let (a, b, t) = (sealed(log, 7), sealed(log, 11), sealed(log, 99));
        std::fs::rename(&a, &t).expect("rename");
        std::fs::rename(&b, &a).expect("rename");
        std::fs::rename(&t, &b).expect("rename");
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(7).as_str(), 1));
    assert!(m.contains("reordered"), "{m}");

    let (file, _, m) = tampered(|log| {
        std::fs::rename(sealed(log, 11), sealed(log, 12)).expect("rename");
    });
    assert_eq!(file, files::sealed_name(12));
    assert!(m.contains("named for record 12"), "{m}");

    let (file, line, m) = tampered(|log| {
        std::fs::remove_file(sealed(log, 3)).expect("remove the oldest");
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(7).as_str(), 1));
    assert!(m.contains("records 1-3 are gone"), "{m}");

    let (file, line, m) = tampered(|log| {
        // The oldest file gone, and the next one's opening record too: nothing says where the
        // chain came from.
        std::fs::remove_file(sealed(log, 3)).expect("remove the oldest");
        rewrite(sealed(log, 7), &|l| {
            l.remove(0);
        });
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(7).as_str(), 1));
    assert!(m.contains("without an `audit.rotated` record"), "{m}");

    let (file, line, m) = tampered(|log| {
        // A later file that does not say where it continues from.
        rewrite(sealed(log, 11), &|l| {
            l[0] = l[0].replace(files::ROTATED, "forged");
        });
        // Re-link the rest of the chain so only the opening record is wrong.
        reseal_from(log, 11, 0);
    });
    assert_eq!((file.as_str(), line), (files::sealed_name(11).as_str(), 1));
    assert!(m.contains("opens with `forged`"), "{m}");
}

/// Re-link every line after line `from` (0-based) of sealed file `last_seq`, and every later
/// file, and the anchor: what someone who can write the data dir can do.
fn reseal_from(log: &AuditLog, last_seq: u64, from: usize) {
    let mut paths: Vec<PathBuf> = files::list_sealed(log.path())
        .expect("list")
        .into_iter()
        .map(|s| s.path)
        .filter(|p| *p >= sealed(log, last_seq))
        .collect();
    paths.push(log.path().to_path_buf());
    let mut prev: Option<String> = None;
    let mut last = None;
    for (i, path) in paths.iter().enumerate() {
        let mut out = Vec::new();
        for (n, line) in lines(path).into_iter().enumerate() {
            let mut record: AuditRecord = serde_json::from_str(&line).expect("record");
            let text = match &prev {
                Some(p) if i > 0 || n > from => {
                    record.prev = p.clone();
                    if record.event == files::ROTATED {
                        record.data["last_hash"] = json!(p);
                    }
                    serde_json::to_string(&record).expect("json")
                }
                // Up to `from`, as it is.
                _ => line,
            };
            prev = Some(hash_line(&text));
            last = Some(record.seq);
            out.push(text);
        }
        std::fs::write(
            path,
            out.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .expect("write");
    }
    let len = files::len_of(log.path()).expect("len");
    std::fs::write(
        log.head_path(),
        serde_json::to_vec(&Head {
            seq: last.expect("records"),
            hash: prev.expect("hash"),
            len: Some(len),
        })
        .expect("json"),
    )
    .expect("anchor");
}

#[test]
fn saved_heads_and_checkpoints_are_checked_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = rotating(dir.path());
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    log.set_checkpoint_signer(CheckpointSigner::new(key, Duration::from_secs(60)));
    batch_at(&log, 3, now());
    log.checkpoint(true).expect("checkpoint");
    batch_at(&log, 3, now());
    log.checkpoint(true).expect("checkpoint");
    let in_sealed = (2, hash_line(&lines(&sealed(&log, 3))[1]));
    let head = log.head().expect("head");
    let report = log
        .verify_with(&VerifyOptions {
            expect: vec![in_sealed.clone(), (head.seq, head.hash.clone())],
            checkpoint_key: Some(public),
        })
        .expect("held across files");
    assert_eq!(report.expected, 2);
    let checkpoints = report.checkpoints.clone().expect("checked");
    assert_eq!((checkpoints.count, checkpoints.last_seq), (2, head.seq));
    assert!(report.files >= 3, "{report:?}");

    // A re-seal from inside a sealed file: the chain and anchor agree again, the saved head
    // and the checkpoints after it do not.
    let path = sealed(&log, 3);
    let mut l = lines(&path);
    l[1] = l[1].replace("\"i\":1", "\"i\":7");
    std::fs::write(
        &path,
        l.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("edit");
    reseal_from(&log, 3, 1);
    log.verify().expect("a re-seal passes plain verify");
    let (file, line, m) = broken(log.verify_with(&VerifyOptions {
        expect: vec![in_sealed],
        checkpoint_key: None,
    }));
    assert_eq!(
        (file_name(&file).as_str(), line),
        (files::sealed_name(3).as_str(), 2)
    );
    assert!(m.contains("not the one saved earlier"), "{m}");
    let (_, _, m) = broken(log.verify_with(&VerifyOptions {
        expect: vec![],
        checkpoint_key: Some(public),
    }));
    assert!(m.contains("checkpoint vouches for record"), "{m}");
}

#[test]
fn prune_removes_files_older_than_the_retention_after_recording_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = rotating(dir.path());
    let now = now();
    let retention = Duration::from_millis(2190 * DAY_MS);
    batch_at(&log, 3, now - 3000 * DAY_MS); // audit-3
    batch_at(&log, 3, now - 2500 * DAY_MS); // audit-7
    batch_at(&log, 3, now - 10 * DAY_MS); // audit-11: within the retention
    batch_at(&log, 3, now - 3000 * DAY_MS); // live; older, but after a younger file
    log.set_rotate_bytes(u64::MAX);
    let boundary = (7, hash_line(lines(&sealed(&log, 7)).last().expect("line")));

    let pruned = log.prune(retention, now).expect("prune");
    assert_eq!(pruned.files, [files::sealed_name(3), files::sealed_name(7)]);
    let record = pruned.record.expect("recorded");
    assert_eq!(record.event, files::PRUNED);
    assert_eq!(record.data["last_seq"], 7);
    assert_eq!(record.data["last_hash"], json!(boundary.1));
    assert_eq!(record.data["files"][1]["name"], files::sealed_name(7));
    assert!(!sealed(&log, 3).exists() && !sealed(&log, 7).exists());
    assert!(sealed(&log, 11).exists(), "younger than the retention");

    let report = log.verify().expect("accounted for");
    assert_eq!(
        report.pruned,
        Some(PrunedReport {
            through_seq: 7,
            by_seq: record.seq,
            at_ms: record.at_ms,
            retention_secs: 2190 * 86_400,
        })
    );
    assert_eq!((report.records, report.files), (record.seq - 7, 2));
    assert_eq!(log.tail(usize::MAX).expect("tail")[0].seq, 8);
    assert_eq!(
        log.prune(retention, now).expect("prune"),
        Pruned::default(),
        "nothing more is old enough, and nothing is recorded"
    );
    assert_eq!(log.head().expect("head").seq, record.seq);

    // A saved head where a removed file ended is checked against the record that removed it;
    // one inside a removed file cannot be, and is counted.
    let report = log
        .verify_with(&VerifyOptions {
            expect: vec![boundary.clone(), (5, boundary.1.clone())],
            checkpoint_key: None,
        })
        .expect("verify");
    assert_eq!((report.expected, report.expected_pruned), (1, 1));
    let (_, _, m) = broken(log.verify_with(&VerifyOptions {
        expect: vec![(7, GENESIS.into())],
        checkpoint_key: None,
    }));
    assert!(m.contains("not the one saved earlier"), "{m}");

    // Appends, rotations and a second prune go on from there.
    log.set_rotate_bytes(0);
    batch_at(&log, 2, now);
    let later = log
        .prune(retention, now + 2200 * DAY_MS)
        .expect("prune again");
    assert_eq!(later.files.len(), 2, "{later:?}");
    let report = log.verify().expect("accounted for");
    assert_eq!(report.pruned.map(|p| p.by_seq), later.record.map(|r| r.seq));

    // Removing the next file by hand is not retention.
    let oldest = files::list_sealed(log.path()).expect("list").remove(0);
    std::fs::remove_file(&oldest.path).expect("remove");
    let (_, line, m) = broken(log.verify());
    assert_eq!(line, 1);
    assert!(m.contains("no audit.pruned record accounts"), "{m}");
}

#[test]
fn prune_keeps_every_file_when_a_boundary_does_not_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = rotating(dir.path());
    let now = now();
    batch_at(&log, 2, now - 3000 * DAY_MS); // audit-2
    batch_at(&log, 2, now - 3000 * DAY_MS); // audit-5
    batch_at(&log, 2, now);
    // The last record of an old file, changed before retention would remove it.
    let path = sealed(&log, 2);
    let mut l = lines(&path);
    l[1] = l[1].replace("\"i\":1", "\"i\":9");
    std::fs::write(
        &path,
        l.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("edit");
    let before = files::list_sealed(log.path()).expect("list");
    let err = log
        .prune(Duration::from_millis(2190 * DAY_MS), now)
        .expect_err("refused");
    assert!(err.to_string().contains("nothing is pruned"), "{err}");
    assert_eq!(files::list_sealed(log.path()).expect("list"), before);
    assert_eq!(
        log.tail(usize::MAX).expect("tail").len(),
        8,
        "and nothing recorded"
    );
}

#[test]
fn tail_reads_back_into_the_sealed_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = four_files(dir.path());
    let seqs = |n| -> Vec<u64> {
        log.tail(n)
            .expect("tail")
            .into_iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(seqs(3), [13, 14, 15]);
    assert_eq!(seqs(6), [10, 11, 12, 13, 14, 15]);
    assert_eq!(seqs(usize::MAX), (1..=15).collect::<Vec<_>>());
    assert_eq!(seqs(0), Vec::<u64>::new());
}

#[test]
fn two_rotating_writers_keep_one_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (AuditLog::new(dir.path()), AuditLog::new(dir.path()));
    for log in [&a, &b] {
        log.set_rotate_bytes(4096);
    }
    std::thread::scope(|s| {
        for log in [&a, &b] {
            s.spawn(move || {
                for n in 0..200 {
                    if n % 50 == 0 {
                        log.append("durable", json!({ "n": n })).expect("append");
                    } else {
                        log.append_lazy(vec![Pending::new("lazy", &json!({ "n": n })).expect("r")])
                            .expect("queued");
                    }
                }
            });
        }
    });
    a.flush().expect("flush");
    b.flush().expect("flush");
    let report = a.verify().expect("one intact chain");
    let all = a.tail(usize::MAX).expect("tail");
    assert_eq!(
        all.iter().filter(|r| r.event != files::ROTATED).count(),
        400
    );
    assert_eq!(report.records, all.len() as u64);
    assert!(report.files > 2, "{report:?}");
}

/// After a rotation, a new live file can reach the length of the old one: a writer whose cached
/// tail is for the old file must not take it for its own (it would fork the chain).
#[test]
fn a_writer_notices_a_rotation_by_another_even_at_the_same_length() {
    /// The length of the live file after `a` appends a record padded with `a_pad`, and `b`
    /// (rotating) one padded with `b_pad`.
    fn scenario(dir: &Path, a_pad: usize, b_pad: usize) -> (AuditLog, u64) {
        let a = AuditLog::new(dir);
        a.append("a", json!({ "pad": "x".repeat(a_pad) }))
            .expect("append");
        let a_len = files::len_of(a.path()).expect("len");
        let b = rotating(dir);
        b.append("b", json!({ "pad": "y".repeat(b_pad) }))
            .expect("append");
        (a, a_len)
    }
    let probe = tempfile::tempdir().expect("tempdir");
    let (probe_log, a_len) = scenario(probe.path(), 1000, 0);
    let short = files::len_of(probe_log.path()).expect("len");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = scenario(dir.path(), 1000, (a_len - short) as usize);
    assert_eq!(
        files::len_of(a.path()).expect("len"),
        a_len,
        "the new live file is exactly as long as the one `a` left"
    );
    a.append("c", json!({})).expect("append");
    let report = a.verify().expect("one chain");
    assert_eq!((report.records, report.files), (4, 2));
}
