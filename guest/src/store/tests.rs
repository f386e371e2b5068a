//! The store operations over a real in-memory SQLite, natively.

use super::*;
use crate::limits::{CUT_MARKER, MAX_FIELD_BYTES, MAX_LAST_ERROR_BYTES};
use std::cell::Cell;
use std::rc::Rc;

struct Sqlite(rusqlite::Connection);

impl Storage for Sqlite {
    fn execute(&mut self, sql: &'static str, params: Vec<Value>) -> Result<u64, StorageFailure> {
        let mut statement = self.0.prepare_cached(sql).map_err(failure)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params.into_iter().map(to_sql)))
            .map_err(failure)?;
        Ok(changed as u64)
    }

    fn query_row(
        &mut self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, StorageFailure> {
        let mut statement = self.0.prepare_cached(sql).map_err(failure)?;
        let width = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.into_iter().map(to_sql)))
            .map_err(failure)?;
        let Some(row) = rows.next().map_err(failure)? else {
            return Ok(None);
        };
        let columns = (0..width)
            .map(|i| match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Integer(v),
                rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                rusqlite::types::ValueRef::Text(v) => {
                    Value::Text(String::from_utf8(v.to_vec()).unwrap())
                }
                rusqlite::types::ValueRef::Blob(v) => Value::Blob(v.to_vec()),
            })
            .collect();
        assert!(
            rows.next().map_err(failure)?.is_none(),
            "{sql} returned a second row"
        );
        Ok(Some(columns))
    }
}

fn to_sql(value: Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(v) => rusqlite::types::Value::Integer(v),
        Value::Real(v) => rusqlite::types::Value::Real(v),
        Value::Text(v) => rusqlite::types::Value::Text(v),
        Value::Blob(v) => rusqlite::types::Value::Blob(v),
    }
}

fn failure(error: rusqlite::Error) -> StorageFailure {
    StorageFailure {
        code: error.sqlite_error().map(|e| e.extended_code),
        message: error.to_string(),
    }
}

#[derive(Clone, Default)]
struct TestClock(Rc<Cell<i64>>);

impl TestClock {
    fn set(&self, now: i64) {
        self.0.set(now);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

const ID: &str = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";
const OTHER: &str = "5d1c7e2b-3a4f-4b6c-8d9e-0a1b2c3d4e5f";

fn store() -> (Store<Sqlite, TestClock>, TestClock) {
    let clock = TestClock::default();
    clock.set(1_000);
    let store = Store::new(
        Sqlite(rusqlite::Connection::open_in_memory().unwrap()),
        clock.clone(),
    );
    (store, clock)
}

fn enqueue(store: &mut Store<Sqlite, TestClock>, id: &str) -> bool {
    store
        .record_enqueue(
            id,
            "ExternalSystem.CachedCall".into(),
            Some("POST /orders".into()),
            Some("line-3".into()),
            Some("Dispatch".into()),
            Some("node-a".into()),
        )
        .unwrap()
}

#[test]
fn enqueue_inserts_a_submitted_row_with_every_field() {
    let (mut store, _) = store();
    assert!(enqueue(&mut store, ID));
    let row = store.get_status(ID).unwrap().unwrap();
    assert_eq!(row.id, ID);
    assert_eq!(row.kind, "ExternalSystem.CachedCall");
    assert_eq!(row.target_summary.as_deref(), Some("POST /orders"));
    assert_eq!(row.source_instance_id.as_deref(), Some("line-3"));
    assert_eq!(row.source_script.as_deref(), Some("Dispatch"));
    assert_eq!(row.source_node.as_deref(), Some("node-a"));
    assert_eq!((row.status, row.retry_count), (Status::Submitted, 0));
    assert_eq!(
        (row.created_at, row.updated_at, row.terminal_at),
        (1_000, 1_000, None)
    );
}

#[test]
fn duplicate_enqueue_leaves_the_row_untouched() {
    let (mut store, clock) = store();
    enqueue(&mut store, ID);
    store
        .record_attempt(ID, Status::Retrying, 2, Some("timeout".into()), None)
        .unwrap();
    let before = store.get_status(ID).unwrap();

    clock.set(9_000);
    let again = store
        .record_enqueue(
            &ID.to_uppercase(),
            "Database.CachedWrite".into(),
            None,
            None,
            None,
            None,
        )
        .unwrap();
    assert!(!again);
    assert_eq!(store.get_status(ID).unwrap(), before);
}

#[test]
fn attempts_on_unknown_ids_change_nothing() {
    let (mut store, _) = store();
    assert!(
        !store
            .record_attempt(ID, Status::Retrying, 1, None, None)
            .unwrap()
    );
    assert!(
        !store
            .record_terminal(ID, Status::Delivered, None, None)
            .unwrap()
    );
    assert_eq!(store.get_status(ID).unwrap(), None);
}

#[test]
fn stale_attempts_change_nothing() {
    let (mut store, _) = store();
    enqueue(&mut store, ID);
    assert!(
        store
            .record_attempt(ID, Status::Retrying, 3, Some("503".into()), Some(503))
            .unwrap()
    );
    let before = store.get_status(ID).unwrap();
    assert!(
        !store
            .record_attempt(ID, Status::Retrying, 2, Some("late".into()), Some(429))
            .unwrap()
    );
    assert_eq!(store.get_status(ID).unwrap(), before);
}

#[test]
fn first_terminal_write_wins_and_freezes_the_row() {
    let (mut store, clock) = store();
    enqueue(&mut store, ID);
    clock.set(2_000);
    assert!(
        store
            .record_terminal(ID, Status::Parked, Some("retries exhausted".into()), None)
            .unwrap()
    );
    let frozen = store.get_status(ID).unwrap().unwrap();
    assert_eq!(
        (frozen.terminal_at, frozen.updated_at),
        (Some(2_000), 2_000)
    );

    clock.set(3_000);
    assert!(
        !store
            .record_terminal(ID, Status::Delivered, None, Some(200))
            .unwrap()
    );
    assert!(
        !store
            .record_attempt(ID, Status::Retrying, 99, None, None)
            .unwrap()
    );
    assert_eq!(store.get_status(ID).unwrap().unwrap(), frozen);
}

#[test]
fn bad_input_changes_nothing_and_names_the_field() {
    let (mut store, _) = store();
    enqueue(&mut store, ID);
    let before = store.get_status(ID).unwrap();

    let field = |result: Result<bool, StoreError>| match result.unwrap_err() {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    assert_eq!(
        field(store.record_attempt(ID, Status::Delivered, 1, None, None)),
        "status"
    );
    assert_eq!(
        field(store.record_attempt(ID, Status::Retrying, 1, None, Some(600))),
        "http-status"
    );
    assert_eq!(
        field(store.record_terminal(ID, Status::Retrying, None, None)),
        "status"
    );
    assert_eq!(
        field(store.record_terminal(ID, Status::Failed, None, Some(99))),
        "http-status"
    );
    assert_eq!(
        field(store.record_attempt("nope", Status::Retrying, 1, None, None)),
        "id"
    );
    let long = Some("x".repeat(MAX_FIELD_BYTES + 1));
    assert_eq!(
        field(store.record_enqueue(OTHER, "k".into(), None, None, long, None)),
        "source-script"
    );

    assert_eq!(store.get_status(ID).unwrap(), before);
    assert_eq!(store.get_status(OTHER).unwrap(), None);
}

#[test]
fn an_over_long_last_error_is_stored_cut_and_marked() {
    let (mut store, _) = store();
    enqueue(&mut store, ID);
    let text = "é".repeat(MAX_LAST_ERROR_BYTES);
    assert!(
        store
            .record_attempt(ID, Status::Retrying, 1, Some(text), None)
            .unwrap()
    );
    let stored = store.get_status(ID).unwrap().unwrap().last_error.unwrap();
    assert!(stored.len() <= MAX_LAST_ERROR_BYTES);
    assert!(stored.ends_with(CUT_MARKER));
}

#[test]
fn purge_deletes_only_terminal_rows_strictly_older_than_the_bound() {
    let (mut store, clock) = store();
    enqueue(&mut store, ID);
    enqueue(&mut store, OTHER);
    clock.set(5_000);
    store
        .record_terminal(ID, Status::Delivered, None, Some(200))
        .unwrap();

    assert_eq!(store.purge_terminal(5_000).unwrap(), 0);
    assert_eq!(store.purge_terminal(5_001).unwrap(), 1);
    assert_eq!(store.get_status(ID).unwrap(), None);
    assert_eq!(
        store.purge_terminal(i64::MAX).unwrap(),
        0,
        "rows in flight stay"
    );
    assert!(store.get_status(OTHER).unwrap().is_some());
}

#[test]
fn reading_a_never_written_file_does_not_create_the_table() {
    let (mut store, _) = store();
    assert_eq!(store.get_status(ID).unwrap(), None);
    assert_eq!(schema::version(store.storage_mut()).unwrap(), 0);
}

#[test]
fn a_file_from_a_newer_schema_is_refused_unchanged() {
    let (mut store, _) = store();
    store
        .storage_mut()
        .0
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    assert_eq!(store.get_status(ID), Err(StoreError::UnsupportedSchema(99)));
    let error = store
        .record_enqueue(ID, "k".into(), None, None, None, None)
        .unwrap_err();
    assert_eq!(error, StoreError::UnsupportedSchema(99));
    assert_eq!(schema::version(store.storage_mut()).unwrap(), 99);
}

#[test]
fn migration_is_idempotent_across_operations() {
    let (mut store, _) = store();
    enqueue(&mut store, ID);
    enqueue(&mut store, OTHER);
    assert_eq!(
        schema::version(store.storage_mut()).unwrap(),
        schema::CURRENT_VERSION
    );
}

#[test]
fn a_row_corrupted_behind_the_store_is_reported_not_guessed() {
    let (mut store, _) = store();
    enqueue(&mut store, ID);
    // Only a hand edit with the checks turned off can do this.
    let conn = &store.storage_mut().0;
    conn.execute_batch("PRAGMA ignore_check_constraints = ON")
        .unwrap();
    conn.execute("UPDATE operations SET retry_count = -1", [])
        .unwrap();
    assert!(matches!(store.get_status(ID), Err(StoreError::Storage(_))));
}

#[test]
fn batched_purge_deletes_oldest_first_and_at_most_the_batch() {
    let (mut store, clock) = store();
    let ids: Vec<String> = (0..5)
        .map(|n| format!("00000000-0000-4000-8000-00000000000{n}"))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        enqueue(&mut store, id);
        clock.set(10_000 + n as i64);
        store
            .record_terminal(id, Status::Failed, None, None)
            .unwrap();
    }
    let in_flight = OTHER;
    enqueue(&mut store, in_flight);

    assert_eq!(store.purge_terminal_batch(10_004, 2).unwrap(), 2);
    assert_eq!(store.get_status(&ids[0]).unwrap(), None);
    assert_eq!(store.get_status(&ids[1]).unwrap(), None);
    assert!(store.get_status(&ids[2]).unwrap().is_some());
    assert_eq!(store.purge_terminal_batch(10_004, 2).unwrap(), 2);
    assert_eq!(
        store.purge_terminal_batch(10_004, 2).unwrap(),
        0,
        "the boundary row stays"
    );
    assert!(store.get_status(&ids[4]).unwrap().is_some());
    assert!(store.get_status(in_flight).unwrap().is_some());
}

/// Another writer's statements, run on the store's connection.
type OtherWriter = Box<dyn FnOnce(&rusqlite::Connection)>;

/// Storage on which another writer gets in between a call's read and its
/// write, as it can where each statement commits alone (the standalone
/// plug, with two runs on one file).
struct Interleaved {
    inner: Sqlite,
    /// Runs just before the next UPDATE, once.
    before_update: Option<OtherWriter>,
}

impl Storage for Interleaved {
    fn execute(&mut self, sql: &'static str, params: Vec<Value>) -> Result<u64, StorageFailure> {
        if sql.starts_with("UPDATE")
            && let Some(other_writer) = self.before_update.take()
        {
            other_writer(&self.inner.0);
        }
        self.inner.execute(sql, params)
    }

    fn query_row(
        &mut self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, StorageFailure> {
        self.inner.query_row(sql, params)
    }
}

/// A store whose next UPDATE is preceded by another writer's `sql`, on a
/// row of [`ID`] enqueued at 1,000 with the clock then set to 2,000.
fn interleaved(sql: &'static str) -> Store<Interleaved, TestClock> {
    let (mut store, clock) = store();
    enqueue(&mut store, ID);
    clock.set(2_000);
    let Store { storage, clock } = store;
    let before_update: OtherWriter =
        Box::new(move |conn| assert_eq!(conn.execute(sql, [ID]).unwrap(), 1));
    Store::new(
        Interleaved {
            inner: storage,
            before_update: Some(before_update),
        },
        clock,
    )
}

#[test]
fn a_terminal_write_wins_over_an_attempt_that_lands_between_its_read_and_write() {
    let mut store = interleaved(
        "UPDATE operations SET status = 'retrying', retry_count = 5, updated_at = 3000
         WHERE id = ?1",
    );
    assert!(
        store
            .record_terminal(ID, Status::Delivered, None, Some(200))
            .unwrap()
    );
    let row = store.get_status(ID).unwrap().unwrap();
    assert_eq!((row.status, row.retry_count), (Status::Delivered, 5));
    assert_eq!(
        (row.updated_at, row.terminal_at),
        (3_000, Some(3_000)),
        "time does not go back to the clock's 2,000"
    );
}

#[test]
fn an_attempt_never_moves_time_back_past_a_write_that_lands_in_between() {
    let mut store = interleaved(
        "UPDATE operations SET status = 'retrying', retry_count = 1, updated_at = 5000
         WHERE id = ?1",
    );
    assert!(
        store
            .record_attempt(ID, Status::Retrying, 2, None, None)
            .unwrap()
    );
    let row = store.get_status(ID).unwrap().unwrap();
    assert_eq!((row.retry_count, row.updated_at), (2, 5_000));
}

#[test]
fn an_attempt_older_than_one_that_lands_in_between_changes_nothing() {
    let mut store = interleaved(
        "UPDATE operations SET status = 'retrying', retry_count = 9, updated_at = 1500
         WHERE id = ?1",
    );
    assert!(
        !store
            .record_attempt(ID, Status::Retrying, 2, Some("late".into()), None)
            .unwrap()
    );
    let row = store.get_status(ID).unwrap().unwrap();
    assert_eq!((row.retry_count, row.last_error), (9, None));
}

#[test]
fn a_terminal_write_that_another_terminal_write_beat_in_between_changes_nothing() {
    let mut store = interleaved(
        "UPDATE operations SET status = 'parked', updated_at = 1500, terminal_at = 1500
         WHERE id = ?1",
    );
    assert!(
        !store
            .record_terminal(ID, Status::Delivered, None, None)
            .unwrap()
    );
    let row = store.get_status(ID).unwrap().unwrap();
    assert_eq!((row.status, row.terminal_at), (Status::Parked, Some(1_500)));
}
