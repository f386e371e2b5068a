use rusqlite::types::Value;

use super::*;

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::at(dir.path().join("tracking.db"));
    (dir, db)
}

fn files_in(dir: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn one_value(db: &Database, sql: &str) -> Value {
    let row = db.query_row(sql, vec![]).expect("query");
    row.and_then(|r| r.into_iter().next()).expect("one value")
}

#[test]
fn file_is_kept_in_wal_with_full_sync_like_the_hosts() {
    let (dir, db) = open();
    db.execute("CREATE TABLE t (x)", vec![]).expect("create");
    drop(db);

    let conn = rusqlite::Connection::open(dir.path().join("tracking.db")).expect("reopen");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let vacuum: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        vacuum, 2,
        "incremental auto-vacuum, as the host creates files"
    );
}

#[test]
fn values_round_trip_through_bound_parameters() {
    let (_dir, db) = open();
    db.execute("CREATE TABLE t (a, b, c, d, e)", vec![])
        .unwrap();
    let values = vec![
        Value::Null,
        Value::Integer(-7),
        Value::Real(1.5),
        Value::Text("ü…".into()),
        Value::Blob(vec![0, 255]),
    ];
    let inserted = db
        .execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)", values.clone())
        .unwrap();
    assert_eq!(inserted, 1);
    assert_eq!(
        db.query_row("SELECT * FROM t", vec![]).unwrap(),
        Some(values)
    );
}

#[test]
fn execute_refuses_statements_that_return_rows() {
    let (_dir, db) = open();
    let failure = db.execute("SELECT 1", vec![]).unwrap_err();
    assert_eq!(failure.code, None);
    assert!(failure.message.contains("use query-row"), "{failure:?}");
}

#[test]
fn schema_version_can_be_read_and_set() {
    let (_dir, db) = open();
    assert_eq!(one_value(&db, "PRAGMA user_version"), Value::Integer(0));
    db.execute("PRAGMA user_version = 1", vec![]).unwrap();
    assert_eq!(one_value(&db, "PRAGMA user_version"), Value::Integer(1));
}

#[test]
fn transaction_control_attach_and_other_pragmas_are_refused() {
    let (_dir, db) = open();
    for sql in [
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s",
        "ATTACH 'other.db' AS other",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA locking_mode = NORMAL",
        "PRAGMA synchronous = OFF",
    ] {
        let failure = db.execute(sql, vec![]).unwrap_err();
        assert!(
            failure.message.contains("not authorized"),
            "{sql}: {failure:?}"
        );
    }
}

#[test]
fn oversized_statement_is_refused_before_sqlite_parses_it() {
    let (_dir, db) = open();
    let sql = format!("SELECT 1 -- {}", "x".repeat(MAX_STATEMENT_BYTES));
    let failure = db.query_row(&sql, vec![]).unwrap_err();
    assert!(failure.message.contains("limit"), "{failure:?}");
}

#[test]
fn a_query_of_more_than_one_row_is_refused() {
    let (_dir, db) = open();
    let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
               SELECT i FROM n";
    let one = db.query_row(sql, vec![Value::Integer(1)]);
    assert_eq!(one.unwrap(), Some(vec![Value::Integer(1)]));
    let two = db.query_row(sql, vec![Value::Integer(2)]);
    assert!(two.unwrap_err().message.contains("more than one row"));
}

#[test]
fn sqlite_errors_carry_the_extended_code() {
    let (_dir, db) = open();
    db.execute("CREATE TABLE t (x PRIMARY KEY)", vec![])
        .unwrap();
    db.execute("INSERT INTO t VALUES (1)", vec![]).unwrap();
    let failure = db.execute("INSERT INTO t VALUES (1)", vec![]).unwrap_err();
    // SQLITE_CONSTRAINT_PRIMARYKEY
    assert_eq!(failure.code, Some(1555), "{failure:?}");
}

#[test]
fn each_statement_leaves_the_file_checkpointed_and_unlocked() {
    let (dir, db) = open();
    db.execute("CREATE TABLE t (x)", vec![]).unwrap();
    db.execute("INSERT INTO t VALUES (1)", vec![]).unwrap();

    // No `-wal` to replay and no `.lock` directory: a process that ends
    // right after the call leaves nothing behind but the file.
    assert_eq!(files_in(&dir), ["tracking.db"]);
    let conn = rusqlite::Connection::open(dir.path().join("tracking.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn commits_a_crashed_host_left_in_the_wal_are_read() {
    let (dir, _db) = open();
    let host = rusqlite::Connection::open(dir.path().join("tracking.db")).unwrap();
    let mode: String = host
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    host.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    host.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (7);")
        .unwrap();
    assert!(files_in(&dir).contains(&"tracking.db-wal".to_owned()));

    // A copy of the file and its `-wal`, as a host that crashed leaves them
    // (the open connection would otherwise checkpoint them as it closes).
    let crashed = tempfile::tempdir().unwrap();
    for name in ["tracking.db", "tracking.db-wal"] {
        std::fs::copy(dir.path().join(name), crashed.path().join(name)).unwrap();
    }
    let plug = Database::at(crashed.path().join("tracking.db"));
    let row = plug.query_row("SELECT x FROM t", vec![]).unwrap();
    assert_eq!(row, Some(vec![Value::Integer(7)]));
    assert_eq!(files_in(&crashed), ["tracking.db"], "checkpointed on close");
}
