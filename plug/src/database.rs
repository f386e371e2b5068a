//! The plug's SQLite file: opening it durably over WASI, which has neither
//! shared memory nor file locks, and running the component's statements
//! under the rules the host's capability applies (`host/src/storage.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

/// The database file, in the root of the component's preopened directory
/// (`wasmtime run --dir DATA::/` makes it `DATA/tracking.db`). Fixed: the
/// component never names a file, and no call can move the plug to another.
pub const DATABASE_FILE: &str = "/tracking.db";

/// SQLite's file layer for WASI, chosen by name rather than by default.
/// WASI has no `fcntl` locks, so this one locks by creating a directory
/// beside the file (`tracking.db.lock`), which is atomic: two standalone
/// runs on one file take turns. The native host locks with `fcntl` and does
/// not see it.
const VFS: &str = "unix-dotfile";

/// Longest statement text accepted, as in the host. The component's
/// statements are a few hundred bytes; the limit keeps a runaway guest from
/// making SQLite parse megabytes of SQL.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// Most rows one query may return, as in the host. The store reads one row
/// at a time; the limit keeps a query gone wrong from copying a whole table
/// into memory twice.
pub const MAX_QUERY_ROWS: usize = 1024;

/// How long a statement waits for another standalone run's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why opening the file or running a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// SQLite's extended result code, when SQLite produced the error.
    pub code: Option<i32>,
    /// What went wrong, in words.
    pub message: String,
}

/// The database file the statements run on.
///
/// Each statement opens the file, runs, commits and closes it again. A
/// capability is never told where an exported call ends, and `wasmtime run`
/// ends the process right after the call, without closing anything; a
/// connection kept open would keep its lock (a `.lock` directory that
/// outlives the process) and leave its last commits in the `-wal` file.
/// Closing after each statement releases the lock and checkpoints, so the
/// file is always left whole and unlocked for the next process, this
/// component's or the native host's.
pub struct Database {
    path: PathBuf,
}

impl Database {
    /// The database at `path`, created at the first statement when missing.
    /// The component always uses [`DATABASE_FILE`]; tests pass others.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Database { path: path.into() }
    }

    /// Runs a statement that returns no rows; returns how many rows it
    /// inserted, updated or deleted. It is committed before this returns.
    pub fn execute(&self, statement: &str, params: Vec<Value>) -> Result<u64, Failure> {
        check_statement(statement)?;
        let conn = open(&self.path)?;
        let mut prepared = conn.prepare(statement).map_err(sqlite_error)?;
        if prepared.column_count() > 0 {
            return Err(refused(
                "execute runs statements that return no rows; use query",
            ));
        }
        let changed = prepared
            .execute(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;
        Ok(changed as u64)
    }

    /// Runs a statement and returns all of its rows, at most
    /// [`MAX_QUERY_ROWS`].
    pub fn query(&self, statement: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Failure> {
        check_statement(statement)?;
        let conn = open(&self.path)?;
        let mut prepared = conn.prepare(statement).map_err(sqlite_error)?;
        let width = prepared.column_count();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params))
            .map_err(sqlite_error)?;

        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            if out.len() == MAX_QUERY_ROWS {
                return Err(refused(&format!(
                    "query returned more than {MAX_QUERY_ROWS} rows"
                )));
            }
            let columns = (0..width)
                .map(|i| row.get_ref(i).map(owned).map_err(sqlite_error))
                .collect::<Result<_, _>>()?;
            out.push(columns);
        }
        Ok(out)
    }
}

/// Opens and configures the file for one statement. Dropping the
/// connection closes it: the last close of a WAL file checkpoints it into
/// the main file and deletes the `-wal`. A failure to close is not
/// reported, because the statement has committed by then and the next open
/// recovers from whatever `-wal` is left.
fn open(path: &Path) -> Result<Connection, Failure> {
    // No SQLITE_OPEN_URI: the path is a file name, never a URI whose query
    // string could change how the file is opened.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags_and_vfs(path, flags, VFS).map_err(sqlite_error)?;
    configure(&conn)?;

    // Installed after `configure`: from here on every statement is the
    // component's, and none of them may change how the file is kept.
    conn.authorizer(Some(|ctx: AuthContext<'_>| authorize(&ctx.action)))
        .map_err(sqlite_error)?;
    Ok(conn)
}

/// Keeps the file in the host's format (WAL, incremental auto-vacuum) with
/// the host's default durability (`synchronous=FULL`: a statement that
/// returned has been synced to disk).
///
/// WAL normally shares its index between connections through a
/// memory-mapped `-shm` file, which WASI cannot map. In exclusive locking
/// mode SQLite keeps that index in the connection's own memory instead, so
/// WAL works here; it must be chosen before the first read, or a file the
/// host left in WAL mode cannot be opened at all. A rollback journal
/// (DELETE, TRUNCATE) would work too, but the file would then change its
/// journal mode back and forth with every switch between this plug and the
/// host, and the plug could not open the host's files without exclusive
/// mode anyway.
fn configure(conn: &Connection) -> Result<(), Failure> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;

    let locking: String = conn
        .pragma_update_and_check(None, "locking_mode", "EXCLUSIVE", |r| r.get(0))
        .map_err(sqlite_error)?;
    expect_setting("locking_mode", &locking, "exclusive")?;

    // There is no temporary directory in the component's filesystem.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite_error)?;

    // Only takes effect on a new file, before its first table, as in the host.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(sqlite_error)?;

    let journal: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite_error)?;
    expect_setting("journal_mode", &journal, "wal")?;

    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_error)
}

fn expect_setting(pragma: &str, found: &str, wanted: &str) -> Result<(), Failure> {
    if found.eq_ignore_ascii_case(wanted) {
        return Ok(());
    }
    Err(refused(&format!(
        "the database file cannot use {pragma}={wanted} (it stayed {found})"
    )))
}

/// What the component's statements may do, as in the host: read and write
/// tables, and read or set the schema version. Every statement gets a
/// connection of its own, so a transaction the component opened would be
/// rolled back by the close right after it: refusing it says so. Attaching
/// files or changing settings would reach past the one file the plug chose.
fn authorize(action: &AuthAction<'_>) -> Authorization {
    match action {
        AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Attach { .. }
        | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Pragma { pragma_name, .. }
            if !pragma_name.eq_ignore_ascii_case("user_version") =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

fn check_statement(statement: &str) -> Result<(), Failure> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(refused(&format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_BYTES}",
            statement.len()
        )));
    }
    Ok(())
}

fn refused(message: &str) -> Failure {
    Failure {
        code: None,
        message: message.to_owned(),
    }
}

fn sqlite_error(error: rusqlite::Error) -> Failure {
    Failure {
        code: error.sqlite_error().map(|e| e.extended_code),
        message: error.to_string(),
    }
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Integer(v),
        ValueRef::Real(v) => Value::Real(v),
        // SQLite does not check that text is UTF-8; a file edited by hand
        // may hold bytes that are not, and the component takes strings.
        ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
        ValueRef::Blob(v) => Value::Blob(v.to_vec()),
    }
}

#[cfg(test)]
mod tests;
