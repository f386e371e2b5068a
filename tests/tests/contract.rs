//! Each sentence of the store's contract, checked through the real compiled
//! component in the real host on a real SQLite file.

use std::time::Duration;

use tracking_host::OperationStatus::{self, *};
use tracking_tests::{T0, TestStore, new_id};

const TERMINAL: [OperationStatus; 4] = [Delivered, Parked, Failed, Discarded];

#[test]
fn enqueue_inserts_a_submitted_row_with_retry_count_zero() {
    let t = TestStore::new();
    let id = new_id();
    assert!(t.enqueue(&id));

    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(row.id, id);
    assert_eq!(row.kind, "ExternalSystem.CachedCall");
    assert_eq!(
        row.target_summary.as_deref(),
        Some("POST https://erp/api/orders")
    );
    assert_eq!(row.source_instance_id.as_deref(), Some("Pump-07"));
    assert_eq!(row.source_script.as_deref(), Some("OnBatchComplete"));
    assert_eq!(row.source_node.as_deref(), Some("edge-node-a"));
    assert_eq!((row.status, row.retry_count), (Submitted, 0));
    assert_eq!((row.last_error, row.http_status), (None, None));
    assert_eq!(
        (row.created_at, row.updated_at, row.terminal_at),
        (T0, T0, None)
    );
}

#[test]
fn ids_are_reported_in_canonical_lowercase_whatever_their_spelling() {
    let t = TestStore::new();
    let id = new_id();
    assert!(t.enqueue(&id.to_uppercase()));
    assert_eq!(t.store.get_status(&id).unwrap().unwrap().id, id);
    assert!(
        !t.enqueue(&id.replace('-', "")),
        "another spelling is the same operation"
    );
}

#[test]
fn duplicate_enqueue_leaves_every_field_untouched() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.clock.advance(Duration::from_secs(5));
    t.store
        .record_attempt(&id, Retrying, 2, Some("503 Service Unavailable"), Some(503))
        .unwrap();
    let before = t.store.get_status(&id).unwrap();

    t.clock.advance(Duration::from_secs(5));
    let inserted = t
        .store
        .record_enqueue(
            &id,
            "Database.CachedWrite",
            Some("other"),
            Some("x"),
            Some("y"),
            Some("z"),
        )
        .unwrap();
    assert!(!inserted);
    assert_eq!(t.store.get_status(&id).unwrap(), before);
}

#[test]
fn attempt_records_status_retry_count_error_http_and_time() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.clock.advance(Duration::from_millis(1_500));
    assert!(
        t.store
            .record_attempt(&id, Retrying, 1, Some("timeout"), Some(504))
            .unwrap()
    );

    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!((row.status, row.retry_count), (Retrying, 1));
    assert_eq!(
        (row.last_error.as_deref(), row.http_status),
        (Some("timeout"), Some(504))
    );
    assert_eq!(
        (row.created_at, row.updated_at, row.terminal_at),
        (T0, T0 + 1_500, None)
    );
}

#[test]
fn attempt_with_no_error_clears_the_previous_one() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_attempt(&id, Retrying, 1, Some("timeout"), Some(504))
        .unwrap();
    t.store
        .record_attempt(&id, Retrying, 2, None, None)
        .unwrap();
    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(
        (row.last_error, row.http_status),
        (None, None),
        "most recent, not sticky"
    );
}

#[test]
fn attempt_on_an_unknown_id_changes_nothing() {
    let t = TestStore::new();
    let id = new_id();
    assert!(
        !t.store
            .record_attempt(&id, Retrying, 1, None, None)
            .unwrap()
    );
    assert_eq!(t.store.get_status(&id).unwrap(), None);
}

#[test]
fn attempt_on_a_terminal_row_changes_nothing() {
    let t = TestStore::new();
    for status in TERMINAL {
        let id = new_id();
        t.enqueue(&id);
        t.store.record_terminal(&id, status, None, None).unwrap();
        let before = t.store.get_status(&id).unwrap();
        t.clock.advance(Duration::from_secs(1));
        assert!(
            !t.store
                .record_attempt(&id, Retrying, 7, Some("late"), Some(503))
                .unwrap()
        );
        assert_eq!(t.store.get_status(&id).unwrap(), before, "{status}");
    }
}

#[test]
fn stale_attempt_with_a_lower_retry_count_changes_nothing() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_attempt(&id, Retrying, 4, Some("429"), Some(429))
        .unwrap();
    let before = t.store.get_status(&id).unwrap();
    t.clock.advance(Duration::from_secs(1));
    assert!(
        !t.store
            .record_attempt(&id, Retrying, 3, Some("older"), Some(503))
            .unwrap()
    );
    assert_eq!(t.store.get_status(&id).unwrap(), before);
}

#[test]
fn retry_count_never_goes_back() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    for count in [1, 3, 2, 0, 3, 5, 4] {
        t.store
            .record_attempt(&id, Retrying, count, None, None)
            .unwrap();
    }
    assert_eq!(t.store.get_status(&id).unwrap().unwrap().retry_count, 5);
}

#[test]
fn terminal_write_sets_status_error_http_and_terminal_at_equal_to_updated_at() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.clock.advance(Duration::from_secs(3));
    assert!(
        t.store
            .record_terminal(&id, Parked, Some("retries exhausted"), Some(503))
            .unwrap()
    );

    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(row.status, Parked);
    assert_eq!(
        (row.last_error.as_deref(), row.http_status),
        (Some("retries exhausted"), Some(503))
    );
    assert_eq!(
        (row.updated_at, row.terminal_at),
        (T0 + 3_000, Some(T0 + 3_000))
    );
}

#[test]
fn first_terminal_write_wins_and_later_ones_change_nothing_attempts_included() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    assert!(
        t.store
            .record_terminal(&id, Failed, Some("422"), Some(422))
            .unwrap()
    );
    let first = t.store.get_status(&id).unwrap();

    for status in TERMINAL {
        t.clock.advance(Duration::from_secs(1));
        assert!(
            !t.store
                .record_terminal(&id, status, Some("again"), Some(200))
                .unwrap()
        );
    }
    assert!(
        !t.store
            .record_attempt(&id, Retrying, 9, Some("late"), None)
            .unwrap()
    );
    assert_eq!(t.store.get_status(&id).unwrap(), first);
}

#[test]
fn terminal_write_on_an_unknown_id_changes_nothing() {
    let t = TestStore::new();
    let id = new_id();
    assert!(
        !t.store
            .record_terminal(&id, Delivered, None, Some(200))
            .unwrap()
    );
    assert_eq!(t.store.get_status(&id).unwrap(), None);
}

#[test]
fn get_status_of_an_id_never_recorded_is_none() {
    let t = TestStore::new();
    assert_eq!(t.store.get_status(&new_id()).unwrap(), None);
}

#[test]
fn timestamps_never_go_back_when_the_wall_clock_does() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.clock.set(T0 - 60_000);
    t.store
        .record_attempt(&id, Retrying, 1, None, None)
        .unwrap();
    t.clock.set(T0 - 120_000);
    t.store.record_terminal(&id, Delivered, None, None).unwrap();

    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(
        (row.created_at, row.updated_at, row.terminal_at),
        (T0, T0, Some(T0))
    );
}

#[test]
fn purge_at_exactly_terminal_at_keeps_the_row_and_one_millisecond_later_deletes_it() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_terminal(&id, Delivered, None, Some(200))
        .unwrap();
    let terminal_at = t
        .store
        .get_status(&id)
        .unwrap()
        .unwrap()
        .terminal_at
        .unwrap();

    assert_eq!(t.store.purge_terminal(terminal_at).unwrap(), 0);
    assert!(t.store.get_status(&id).unwrap().is_some());
    assert_eq!(t.store.purge_terminal(terminal_at + 1).unwrap(), 1);
    assert_eq!(t.store.get_status(&id).unwrap(), None);
}

#[test]
fn purge_never_removes_a_non_terminal_row_however_old() {
    let t = TestStore::new();
    let submitted = new_id();
    let retrying = new_id();
    t.enqueue(&submitted);
    t.enqueue(&retrying);
    t.store
        .record_attempt(&retrying, Retrying, 3, Some("503"), Some(503))
        .unwrap();

    t.clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(t.store.purge_terminal(i64::MAX).unwrap(), 0);
    assert_eq!(
        t.store.get_status(&submitted).unwrap().unwrap().status,
        Submitted
    );
    assert_eq!(
        t.store.get_status(&retrying).unwrap().unwrap().status,
        Retrying
    );
}

#[test]
fn all_four_terminal_statuses_are_purged() {
    let t = TestStore::new();
    let ids: Vec<_> = TERMINAL
        .iter()
        .map(|status| {
            let id = new_id();
            t.enqueue(&id);
            t.store.record_terminal(&id, *status, None, None).unwrap();
            id
        })
        .collect();
    assert_eq!(t.store.purge_terminal(T0 + 1).unwrap(), 4);
    for id in ids {
        assert_eq!(t.store.get_status(&id).unwrap(), None);
    }
    assert_eq!(t.row_count(), 0);
}

#[test]
fn purge_returns_how_many_rows_it_deleted() {
    let t = TestStore::new();
    for n in 0..10 {
        let id = new_id();
        t.enqueue(&id);
        t.clock.set(T0 + n * 1_000);
        t.store.record_terminal(&id, Delivered, None, None).unwrap();
    }
    assert_eq!(t.store.purge_terminal(T0 + 4_500).unwrap(), 5);
    assert_eq!(t.store.purge_terminal(T0 + 4_500).unwrap(), 0);
    assert_eq!(t.row_count(), 5);
}

#[test]
fn a_purged_id_can_be_enqueued_afresh() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_attempt(&id, Retrying, 3, Some("503"), Some(503))
        .unwrap();
    t.store.record_terminal(&id, Discarded, None, None).unwrap();
    t.store.purge_terminal(T0 + 1).unwrap();

    t.clock.advance(Duration::from_secs(60));
    assert!(t.enqueue(&id));
    let row = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(
        (row.status, row.retry_count, row.terminal_at),
        (Submitted, 0, None)
    );
    assert_eq!(row.created_at, T0 + 60_000);
}

#[test]
fn data_survives_closing_and_reopening_the_file() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_attempt(&id, Retrying, 2, Some("timeout"), None)
        .unwrap();
    let before = t.store.get_status(&id).unwrap();

    let t = t.reopen();
    assert_eq!(t.store.get_status(&id).unwrap(), before);
    assert!(
        t.store
            .record_terminal(&id, Delivered, None, Some(200))
            .unwrap()
    );
}

#[test]
fn the_file_uses_wal_and_carries_the_schema_version() {
    let t = TestStore::new();
    t.enqueue(&new_id());
    let conn = rusqlite::Connection::open(t.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(version, 1);
}

#[test]
fn the_store_is_usable_from_several_threads() {
    let t = TestStore::new();
    let ids: Vec<String> = (0..40).map(|_| new_id()).collect();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(10) {
            let store = &t.store;
            scope.spawn(move || {
                for id in chunk {
                    store
                        .record_enqueue(id, "Database.CachedWrite", None, None, None, None)
                        .unwrap();
                    store.record_attempt(id, Retrying, 1, None, None).unwrap();
                    store.record_terminal(id, Delivered, None, None).unwrap();
                }
            });
        }
    });
    assert_eq!(t.row_count(), 40);
    for id in &ids {
        assert_eq!(t.store.get_status(id).unwrap().unwrap().status, Delivered);
    }
}

#[test]
fn a_store_opened_read_only_reads_and_refuses_writes_without_touching_the_file() {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    let path = t.path();

    let empty = t.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for (file, expect_row) in [(&path, true), (&empty, false)] {
        let config = tracking_host::StoreConfig::new(file)
            .read_only(true)
            .purge(None);
        let reader = tracking_host::TrackingStore::open(tracking_tests::plugin(), config).unwrap();
        assert_eq!(reader.get_status(&id).unwrap().is_some(), expect_row);
        let error = reader
            .record_enqueue(&new_id(), "k", None, None, None, None)
            .unwrap_err();
        assert!(matches!(error, tracking_host::Error::ReadOnly), "{error:?}");
        assert!(matches!(
            reader.purge_terminal(i64::MAX),
            Err(tracking_host::Error::ReadOnly)
        ));
    }
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}
