//! The store's guarantees on a real SQLite file: one result per run and agent, `running` only
//! ever replaced by a final result, results of agents the run did not target dropped.

use std::collections::BTreeMap;

use super::*;

const NOW: UnixMillis = UnixMillis(1_764_590_000_000);

fn agent() -> AgentId {
    AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent")
}

fn acme() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

fn run_record(id: &RunId) -> RunRecord {
    RunRecord {
        id: id.clone(),
        runbook: "restart".into(),
        target: "tenant=acme".into(),
        params: BTreeMap::new(),
        dry_run: false,
        requested_by: "noc".into(),
        created_at: NOW,
        expires_at: NOW.plus_millis(60_000),
        tenants: vec![acme()],
        bundle: None,
        closed_at: None,
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(&dir.path().join("fleet.db")).expect("open");
    (dir, store)
}

#[test]
fn a_redelivered_result_is_stored_once_and_running_only_gives_way_to_final() {
    let (_dir, store) = open();
    let (a, b) = (agent(), agent());
    let run = RunId::from_parts(NOW, [1; 10]);
    store
        .create_run(
            &run_record(&run),
            &[(a.clone(), acme()), (b.clone(), acme())],
        )
        .expect("run");
    let running = RunResult::new(run.clone(), acme(), a.clone(), RunStatus::Running);
    let done = RunResult::new(run.clone(), acme(), a.clone(), RunStatus::Succeeded);
    let replayed = RunResult::new(
        run.clone(),
        acme(),
        a.clone(),
        RunStatus::Refused {
            reason: RefusalReason::Replayed,
        },
    );
    assert_eq!(store.record_result(&running, NOW).expect("r"), Stored::New);
    assert_eq!(
        store.record_result(&running, NOW).expect("r"),
        Stored::Duplicate
    );
    assert_eq!(store.record_result(&done, NOW).expect("r"), Stored::Final);
    assert_eq!(
        store.record_result(&done, NOW).expect("r"),
        Stored::Duplicate
    );
    assert_eq!(
        store.record_result(&running, NOW).expect("r"),
        Stored::Duplicate
    );
    assert_eq!(
        store.record_result(&replayed, NOW).expect("r"),
        Stored::Duplicate
    );
    let results = store.results(&run).expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, RunStatus::Succeeded);
    // B has not answered: the run is still unanswered for B only.
    assert_eq!(store.unanswered_for(&b).expect("b").len(), 1);
    assert!(store.unanswered_for(&a).expect("a").is_empty());
    // An agent the run did not target, or another tenant's claim of a targeted agent.
    let stranger = RunResult::new(run.clone(), acme(), agent(), RunStatus::Succeeded);
    assert_eq!(
        store.record_result(&stranger, NOW).expect("r"),
        Stored::NotTargeted
    );
    let globex = TenantId::new("globex").expect("tenant");
    let wrong_tenant = RunResult::new(run.clone(), globex, b.clone(), RunStatus::Succeeded);
    assert_eq!(
        store.record_result(&wrong_tenant, NOW).expect("r"),
        Stored::NotTargeted
    );
    assert!(matches!(
        store.create_run(&run_record(&run), &[]),
        Err(StoreError::RunExists(_))
    ));
}

#[test]
fn heartbeats_keep_inventory_and_say_what_was_known_before() {
    let (_dir, store) = open();
    let a = agent();
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "db".to_string());
    store
        .enroll_agent(&a, &acme(), "db-1", &tags, NOW)
        .expect("enroll");
    let mut hb = Heartbeat::new(acme(), a.clone(), NOW, 1, 15_000);
    hb.hostname = "db-1.acme.lan".into();
    hb.os = "linux".into();
    hb.tags = tags.clone();
    let seen = store.record_heartbeat(&hb, NOW).expect("hb");
    assert_eq!(seen.previous, None);
    let seen = store
        .record_heartbeat(&hb, NOW.plus_millis(15_000))
        .expect("hb");
    assert_eq!(seen.previous, Some(NOW));
    assert_eq!(seen.previous_interval_ms, 15_000);
    let record = store.agent(&a).expect("agent").expect("known");
    assert_eq!(record.hostname, "db-1.acme.lan");
    assert_eq!(record.name, "db-1");
    assert_eq!(record.last_seen, Some(NOW.plus_millis(15_000)));
    assert_eq!(record.enrolled_at, Some(NOW));
    store.mark_revoked(&a, NOW).expect("revoke");
    assert!(store.record_heartbeat(&hb, NOW).expect("hb").revoked);
    assert_eq!(store.agents(Some(&acme())).expect("list").len(), 1);
    assert!(
        store
            .agents(Some(&TenantId::new("globex").expect("t")))
            .expect("list")
            .is_empty()
    );
}

#[test]
fn a_batch_of_results_is_stored_in_order_with_the_same_rules_as_one_by_one() {
    let (_dir, store) = open();
    let (a, b) = (agent(), agent());
    let run = RunId::from_parts(NOW, [2; 10]);
    store
        .create_run(
            &run_record(&run),
            &[(a.clone(), acme()), (b.clone(), acme())],
        )
        .expect("run");
    let result =
        |agent: &AgentId, status| RunResult::new(run.clone(), acme(), agent.clone(), status);
    // A's `running` and final in one batch, then its redelivery; B's final; a stranger's.
    let batch = [
        result(&a, RunStatus::Running),
        result(&a, RunStatus::Succeeded),
        result(&a, RunStatus::Succeeded),
        result(&b, RunStatus::Failed),
        result(&agent(), RunStatus::Succeeded),
    ];
    assert_eq!(
        store.record_results(&batch, NOW).expect("batch"),
        [
            Stored::New,
            Stored::Final,
            Stored::Duplicate,
            Stored::New,
            Stored::NotTargeted
        ]
    );
    let results = store.results(&run).expect("results");
    let status: Vec<_> = results.iter().map(|r| (&r.agent, &r.status)).collect();
    assert_eq!(status.len(), 2);
    assert!(status.contains(&(&a, &RunStatus::Succeeded)));
    assert!(status.contains(&(&b, &RunStatus::Failed)));
}

#[test]
fn a_batch_of_heartbeats_says_what_was_known_before_each() {
    let (_dir, store) = open();
    let a = agent();
    let hb = |seq: u64| Heartbeat::new(acme(), a.clone(), NOW, seq, 15_000);
    let seen = store
        .record_heartbeats(&[hb(1), hb(2)], NOW)
        .expect("batch");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].previous, None, "the first is the agent's first");
    assert_eq!(seen[1].previous, Some(NOW), "the second sees the first");
    assert_eq!(seen[1].previous_interval_ms, 15_000);
}

#[test]
fn spent_tokens_are_rows_kept_until_their_tokens_expire_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fleet.db");
    let now = 1_000_000;
    {
        let store = SqliteStore::open(&path).expect("open");
        store.spend_token("old", now - 1, now - 10).expect("spent");
        store.spend_token("t1", now + 60, now).expect("spent");
        store.spend_token("t2", now + 3600, now).expect("spent");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let mut spent = store.spent_tokens(now).expect("spent tokens");
    spent.sort();
    assert_eq!(
        spent,
        [("t1".to_string(), now + 60), ("t2".to_string(), now + 3600)],
        "the expired one was forgotten at the next spend, the others kept"
    );
    assert_eq!(store.spent_tokens(now + 61).expect("later").len(), 1);
}

fn agent_columns(path: &std::path::Path) -> Vec<String> {
    let db = Connection::open(path).expect("db");
    let mut stmt = db
        .prepare("SELECT name FROM pragma_table_info('agents')")
        .expect("table info");
    stmt.query_map([], |r| r.get(0))
        .expect("columns")
        .collect::<Result<_, _>>()
        .expect("columns")
}

#[test]
fn a_store_of_the_old_schema_gains_the_patch_columns_and_keeps_its_agents() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fleet.db");
    let a = agent();
    {
        // `SCHEMA` is the tables of the first release (later columns are added at open, from
        // `AGENT_ADDED_COLUMNS`): a store file of before issue 18.
        let db = Connection::open(&path).expect("old store");
        db.execute_batch(SCHEMA).expect("old schema");
        db.execute(
            "INSERT INTO agents (id, tenant, hostname, os, tags, open_incidents, last_seen_ms,
                 interval_ms, enrolled_at_ms)
             VALUES (?1, 'acme', 'db-1', 'linux', '{\"role\":\"db\"}', 2, ?2, 15000, ?2)",
            params![a.as_str(), NOW.as_millis()],
        )
        .expect("an agent of the old store");
    }
    let before = agent_columns(&path);
    assert!(
        !before.iter().any(|c| c.starts_with("patches_")),
        "{before:?}"
    );

    let store = SqliteStore::open(&path).expect("opens the old store");
    let columns = agent_columns(&path);
    assert_eq!(
        columns[..before.len()],
        before[..],
        "the old columns as they were"
    );
    assert_eq!(
        columns[before.len()..],
        [
            "patches_pending",
            "patches_security",
            "reboot_required",
            "patches_scanned_ms",
            "windows",
            "failing"
        ]
    );
    let old = store.agent(&a).expect("read").expect("the agent is kept");
    assert_eq!(
        (old.hostname.as_str(), old.open_incidents, old.last_seen),
        ("db-1", 2, Some(NOW))
    );
    assert_eq!(old.tags.get("role").map(String::as_str), Some("db"));
    assert_eq!(old.patches, None, "never scanned, not zero");
    assert_eq!(old.windows, None, "never reported, not none");
    assert!(old.failing.is_empty(), "a NULL column reads as none named");

    // Its next heartbeat's patch summary is stored, and survives a reopen (which adds nothing).
    let scan = PatchSummary {
        pending: 12,
        security: 3,
        reboot_required: true,
        scanned_at: NOW.plus_millis(-5_000),
    };
    let mut hb = Heartbeat::new(acme(), a.clone(), NOW, 1, 15_000);
    hb.hostname = "db-1".into();
    hb.patches = Some(scan);
    store.record_heartbeat(&hb, NOW).expect("heartbeat");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(agent_columns(&path), columns, "a second open adds nothing");
    assert_eq!(
        store.agent(&a).expect("read").expect("agent").patches,
        Some(scan)
    );
    // A heartbeat without a summary (an older agent again) clears it.
    hb.patches = None;
    store.record_heartbeat(&hb, NOW).expect("heartbeat");
    assert_eq!(store.agent(&a).expect("read").expect("agent").patches, None);

    // Its reported maintenance windows are kept as reported, and replaced by the next report.
    let nightly = warden_fleet_wire::WindowInfo {
        name: "nightly".into(),
        cron: "0 2 * * *".into(),
        timezone: "Europe/Berlin".into(),
        duration_secs: 7200,
    };
    for windows in [Some(vec![nightly]), Some(Vec::new()), None] {
        hb.windows = windows.clone();
        store.record_heartbeat(&hb, NOW).expect("heartbeat");
        assert_eq!(
            store.agent(&a).expect("read").expect("agent").windows,
            windows
        );
    }
}

#[test]
fn the_patch_filters_select_by_the_latest_scan_and_never_scanned_is_neither() {
    use crate::store::query::{AgentQuery, SortKey};
    let (_dir, store) = open();
    let scan = |pending, security, reboot_required| PatchSummary {
        pending,
        security,
        reboot_required,
        scanned_at: NOW,
    };
    let agents: Vec<(AgentId, Option<PatchSummary>)> = vec![
        (agent(), None),
        (agent(), Some(scan(0, 0, false))),
        (agent(), Some(scan(4, 1, false))),
        (agent(), Some(scan(0, 0, true))),
        (agent(), Some(scan(9, 9, true))),
    ];
    for (i, (a, patches)) in agents.iter().enumerate() {
        let mut hb = Heartbeat::new(acme(), a.clone(), NOW, 1, 15_000);
        hb.hostname = format!("host-{i}");
        hb.patches = *patches;
        store.record_heartbeat(&hb, NOW).expect("heartbeat");
    }
    let hosts = |q: AgentQuery| -> Vec<String> {
        let page = store
            .agent_page(
                &AgentQuery {
                    limit: 50,
                    sort: SortKey::Host,
                    ..q
                },
                NOW,
            )
            .expect("page");
        assert_eq!(page.total, page.agents.len());
        page.agents.into_iter().map(|a| a.hostname).collect()
    };
    assert_eq!(
        hosts(AgentQuery {
            reboot_required: true,
            ..AgentQuery::default()
        }),
        ["host-3", "host-4"]
    );
    assert_eq!(
        hosts(AgentQuery {
            patches_pending: true,
            ..AgentQuery::default()
        }),
        ["host-2", "host-4"]
    );
    assert_eq!(
        hosts(AgentQuery {
            patches_pending: true,
            reboot_required: true,
            ..AgentQuery::default()
        }),
        ["host-4"]
    );
    // Sorted by patches, most first; never scanned last.
    let page = store
        .agent_page(
            &AgentQuery {
                sort: SortKey::Patches,
                descending: true,
                limit: 50,
                ..AgentQuery::default()
            },
            NOW,
        )
        .expect("page");
    let order: Vec<&str> = page.agents.iter().map(|a| a.hostname.as_str()).collect();
    assert_eq!(order[..2], ["host-4", "host-2"]);
    assert_eq!(order[4], "host-0");
}

#[test]
fn a_store_from_before_removals_gains_the_column_and_keeps_its_desired_rows() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("fleet.db");
    let a = agent();
    {
        // The desired table as it was created before removals existed.
        let db = Connection::open(&path).expect("open");
        db.execute_batch(
            "CREATE TABLE desired (
                agent TEXT NOT NULL, tenant TEXT NOT NULL, name TEXT NOT NULL,
                version TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                published_ms INTEGER NOT NULL, published_by TEXT NOT NULL,
                PRIMARY KEY (agent, name));",
        )
        .expect("old schema");
        db.execute(
            "INSERT INTO desired VALUES (?1, 'acme', 'disk-usage', '0.2.0', ?2, 10, 1, 'noc')",
            rusqlite::params![a.as_str(), "a".repeat(64)],
        )
        .expect("old row");
    }
    let store = SqliteStore::open(&path).expect("migrated");
    let rows = store.desired_for(&a).expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].version.as_str(), rows[0].removed),
        ("0.2.0", false)
    );
    // A removal now replaces the row, and a second open changes nothing.
    let mut removal = rows[0].clone();
    removal.removed = true;
    removal.sha256 = "b".repeat(64);
    store.set_desired(&[removal]).expect("removal");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopened");
    let rows = store.desired_for(&a).expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].removed);
}

#[test]
fn a_state_key_is_saved_replaced_and_deleted() {
    let (_dir, store) = open();
    assert_eq!(store.load_state("cancel.x").expect("load"), None);
    store.save_state("cancel.x", "{\"at\":1}").expect("save");
    store.save_state("cancel.x", "{\"at\":2}").expect("replace");
    assert_eq!(
        store.load_state("cancel.x").expect("load").as_deref(),
        Some("{\"at\":2}")
    );
    store.delete_state("cancel.x").expect("delete");
    store
        .delete_state("cancel.x")
        .expect("a second delete is nothing");
    assert_eq!(store.load_state("cancel.x").expect("load"), None);
}

#[test]
fn a_blob_is_unused_once_no_desired_row_and_no_rollback_names_it_and_its_grace_passed() {
    let (_dir, store) = open();
    let (a, t) = (agent(), acme());
    let globex = TenantId::new("globex").expect("tenant");
    let (old, new, prev) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    for sha in [&old, &new, &prev] {
        store.record_blob(&t, sha, 100, NOW).expect("blob");
    }
    // The same bundle stored for another tenant is another blob.
    store.record_blob(&globex, &new, 100, NOW).expect("blob");
    let desired = |sha: &str, removed: bool| DesiredRecord {
        agent: a.clone(),
        tenant: t.clone(),
        name: "disk-usage".into(),
        version: "0.3.0".into(),
        sha256: sha.into(),
        size: 100,
        published_at: NOW,
        published_by: "noc".into(),
        removed,
        maintenance: false,
    };
    store.set_desired(&[desired(&new, false)]).expect("desired");
    // A rollout that can still be rolled back names `prev` as the agent's previous bundle.
    store
        .db()
        .execute_batch(&format!(
            "INSERT INTO rollouts VALUES ('ro-1', 'disk-usage', '0.3.0', '{new}', 100, x'00',
               'tenant=acme', '[\"acme\"]', '{{}}', '{{}}', 'halted', 1, 'noc', 1);
             INSERT INTO rollout_agents VALUES ('ro-1', '{a}', 'acme', 0, 1, '0.2.0', '{prev}', 100);",
            a = a.as_str()
        ))
        .expect("rollout rows");
    let unused = |before: UnixMillis| -> Vec<(String, String)> {
        store
            .unused_blobs(before)
            .expect("unused")
            .into_iter()
            .map(|b| (b.tenant.to_string(), b.sha256))
            .collect()
    };
    // Within the grace nothing is unused; after it, `old` (named by nothing) and globex's copy
    // of `new` (no globex agent desires it) are.
    assert!(unused(NOW).is_empty());
    let later = NOW.plus_millis(1);
    assert_eq!(
        unused(later),
        [
            ("acme".to_string(), old.clone()),
            ("globex".to_string(), new.clone())
        ]
    );
    // Rolled back: its previous bundle is needed no more.
    store
        .db()
        .execute("UPDATE rollouts SET phase = 'rolled-back'", [])
        .expect("phase");
    assert_eq!(unused(later).len(), 3);
    // A removal names no blob: `new` is unused once the agent's row is its removal.
    store.set_desired(&[desired(&new, true)]).expect("removal");
    assert_eq!(unused(later).len(), 4);

    // Forgetting one stored again since (a publish racing the collection) keeps it.
    let blob = store.unused_blobs(later).expect("unused").remove(0);
    store
        .record_blob(&blob.tenant, &blob.sha256, 100, later)
        .expect("stored again");
    assert!(!store.forget_blob(&blob).expect("forget"), "stored again");
    let again = (blob.tenant.to_string(), blob.sha256.clone());
    assert!(
        !unused(later).contains(&again),
        "younger than the grace again"
    );
    let blob = store.unused_blobs(later).expect("unused").remove(0);
    assert!(store.forget_blob(&blob).expect("forget"));
    // One found in the stream is recorded once, as stored when found.
    store
        .record_blob_if_unknown(&t, &"d".repeat(64), later)
        .expect("found");
    store
        .record_blob_if_unknown(&t, &"d".repeat(64), NOW)
        .expect("found again");
    assert!(unused(later).iter().all(|(_, s)| *s != "d".repeat(64)));
    assert!(
        unused(later.plus_millis(1))
            .iter()
            .any(|(_, s)| *s == "d".repeat(64))
    );
}
