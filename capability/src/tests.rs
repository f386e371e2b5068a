use rusqlite::Connection;

use super::*;

/// A connection with the fence installed after its table is made, as the
/// host and the plug install it once their own set-up is done.
fn fenced() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
    conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
        authorize(&ctx.action)
    }))
    .unwrap();
    conn
}

#[test]
fn the_fence_lets_tables_and_the_schema_version_through() {
    let conn = fenced();
    for sql in [
        "INSERT INTO t VALUES ('a')",
        "UPDATE t SET v = 'b'",
        "SELECT v FROM t",
        "PRAGMA user_version",
        "PRAGMA user_version = 3",
        "CREATE TABLE u (w INTEGER)",
        "DELETE FROM t",
    ] {
        conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn the_fence_refuses_transactions_attach_and_other_pragmas() {
    let conn = fenced();
    for sql in [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "ATTACH 'other.db' AS other",
        "DETACH main",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA synchronous = OFF",
        "PRAGMA writable_schema = ON",
    ] {
        let error = conn
            .prepare(sql)
            .err()
            .unwrap_or_else(|| panic!("{sql} was let through"));
        assert_eq!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::AuthorizationForStatementDenied),
            "{sql}: {error}"
        );
    }
}

#[test]
fn an_oversized_statement_is_refused_before_it_is_parsed() {
    let long = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES));
    let failure = check_statement(&long).unwrap_err();
    assert_eq!(failure.code, None);
    assert!(
        failure.message.contains("the limit is 16384"),
        "{failure:?}"
    );
    check_statement("SELECT 1").unwrap();
}

#[test]
fn execute_refuses_a_statement_that_returns_rows_and_runs_nothing() {
    let conn = fenced();
    let mut select = conn.prepare("SELECT v FROM t").unwrap();
    let failure = execute(&mut select, []).unwrap_err();
    assert!(failure.message.contains("use query-row"), "{failure:?}");

    let mut insert = conn.prepare("INSERT INTO t VALUES (?1)").unwrap();
    assert_eq!(execute(&mut insert, ["a"]).unwrap(), 1);
}

#[test]
fn query_row_returns_the_one_row_or_none_and_refuses_a_second() {
    let conn = fenced();
    let mut insert = conn.prepare("INSERT INTO t VALUES (?1)").unwrap();
    let mut select = conn.prepare("SELECT v FROM t WHERE v = ?1").unwrap();
    let text = |v: ValueRef<'_>| v.as_str().unwrap().to_owned();

    assert_eq!(query_row(&mut select, ["a"], text).unwrap(), None);
    execute(&mut insert, ["a"]).unwrap();
    assert_eq!(
        query_row(&mut select, ["a"], text).unwrap(),
        Some(vec!["a".to_owned()])
    );

    execute(&mut insert, ["a"]).unwrap();
    let failure = query_row(&mut select, ["a"], text).unwrap_err();
    assert_eq!(failure.code, None);
    assert!(failure.message.contains("more than one row"), "{failure:?}");
}

#[test]
fn a_sqlite_error_keeps_its_extended_code() {
    let conn = fenced();
    conn.execute_batch("CREATE TABLE c (n INTEGER CHECK (n > 0))")
        .unwrap();
    let mut insert = conn.prepare("INSERT INTO c VALUES (0)").unwrap();
    let failure = execute(&mut insert, []).unwrap_err();
    assert_eq!(
        failure.code,
        Some(275),
        "SQLITE_CONSTRAINT_CHECK: {failure:?}"
    );
    assert!(
        failure.message.contains("CHECK constraint failed"),
        "{failure:?}"
    );
}

#[test]
fn text_that_is_not_utf8_is_kept_with_replacement_characters() {
    assert_eq!(text(b"ok"), "ok");
    assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
}
