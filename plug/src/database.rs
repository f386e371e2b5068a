//! The plug's SQLite file: opening it durably over WASI, which has neither
//! shared memory nor file locks, and running the component's statements
//! under the rules the host's capability applies too (`tracking_capability`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::hooks::AuthContext;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tracking_capability::check_statement;

pub use tracking_capability::{Failure, MAX_STATEMENT_BYTES};

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

/// How long a statement waits for another standalone run's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
        let mut prepared = conn.prepare(statement)?;
        tracking_capability::execute(&mut prepared, rusqlite::params_from_iter(params))
    }

    /// Runs a statement that returns at most one row, and returns that row
    /// or `None`; a second row is refused.
    pub fn query_row(
        &self,
        statement: &str,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, Failure> {
        check_statement(statement)?;
        let conn = open(&self.path)?;
        let mut prepared = conn.prepare(statement)?;
        tracking_capability::query_row(&mut prepared, rusqlite::params_from_iter(params), owned)
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
    let mut conn = Connection::open_with_flags_and_vfs(path, flags, VFS)?;
    configure(&conn)?;

    // Installed after `configure`: from here on every statement is the
    // component's, and none of them may change how the file is kept.
    conn.authorizer(Some(|ctx: AuthContext<'_>| {
        tracking_capability::authorize(&ctx.action)
    }))?;
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
    conn.busy_timeout(BUSY_TIMEOUT)?;

    let locking: String =
        conn.pragma_update_and_check(None, "locking_mode", "EXCLUSIVE", |r| r.get(0))?;
    expect_setting("locking_mode", &locking, "exclusive")?;

    // There is no temporary directory in the component's filesystem.
    conn.pragma_update(None, "temp_store", "MEMORY")?;

    // Only takes effect on a new file, before its first table, as in the host.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;

    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    expect_setting("journal_mode", &journal, "wal")?;

    Ok(conn.pragma_update(None, "synchronous", "FULL")?)
}

fn expect_setting(pragma: &str, found: &str, wanted: &str) -> Result<(), Failure> {
    if found.eq_ignore_ascii_case(wanted) {
        return Ok(());
    }
    Err(Failure::refused(format!(
        "the database file cannot use {pragma}={wanted} (it stayed {found})"
    )))
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Integer(v),
        ValueRef::Real(v) => Value::Real(v),
        ValueRef::Text(v) => Value::Text(tracking_capability::text(v)),
        ValueRef::Blob(v) => Value::Blob(v.to_vec()),
    }
}

#[cfg(test)]
mod tests;
