//! The SQLite connection behind the storage capability: opening it with
//! the configured durability, the per-call transaction, and the fence that
//! keeps the component's statements inside the store's own table.

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::hooks::{AuthContext, Authorization, Wal};
use rusqlite::{Connection, OpenFlags};

use crate::checkpoint::LOG_FILE_LIMIT_BYTES;
use crate::config::StoreConfig;
use crate::error::Error;

/// Prepared statements kept per connection. The component sends a handful
/// of fixed statement texts, so this holds them all with room to spare.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// One open database file.
pub(crate) struct Database {
    pub(crate) conn: Connection,
    /// True while the component is running. The authorizer only fences the
    /// component's statements, not the host's own transaction control.
    guest_active: Arc<AtomicBool>,
}

/// Whether a store call may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Database {
    /// Opens the file named by `config` for writing, and configures it.
    pub(crate) fn open(config: &StoreConfig) -> Result<Self, Error> {
        let open_error = open_error(config);
        if !config.create && !config.path.exists() {
            return Err(open_error("no such file".into()));
        }

        // No SQLITE_OPEN_URI: the path is a file name, never a URI whose
        // query string could change how the file is opened.
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if config.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&config.path, flags)
            .map_err(|e| open_error(e.to_string()))?;
        configure(&conn, config).map_err(&open_error)?;
        Self::fenced(conn, config)
    }

    /// Opens the file read-only, for the readers beside the writer (which
    /// opens it first and sets up the write-ahead log), or for a store opened
    /// read-only.
    pub(crate) fn open_reader(config: &StoreConfig) -> Result<Self, Error> {
        let open_error = open_error(config);
        if !config.path.exists() {
            return Err(open_error("no such file".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&config.path, flags)
            .map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(config.busy_timeout)
            .map_err(|e| open_error(e.to_string()))?;
        Self::fenced(conn, config)
    }

    fn fenced(mut conn: Connection, config: &StoreConfig) -> Result<Self, Error> {
        let open_error = open_error(config);
        let guest_active = Arc::new(AtomicBool::new(false));
        let fence = Arc::clone(&guest_active);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if fence.load(Ordering::Relaxed) {
                tracking_capability::authorize(&ctx.action)
            } else {
                Authorization::Allow
            }
        }))
        .map_err(|e| open_error(e.to_string()))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);

        Ok(Database { conn, guest_active })
    }

    /// Starts the transaction one store call runs in. A write takes the
    /// write lock up front, so that it never fails half-way on a lock
    /// another connection holds.
    //
    // The host's own statements never go through the statement cache: the
    // cache is keyed by SQL text, so a component sending "COMMIT" would be
    // handed the host's prepared COMMIT, which the authorizer saw (and
    // allowed) when the host prepared it. Only the component's statements
    // are cached, and each was authorised as the component's.
    pub(crate) fn begin(&self, access: Access) -> rusqlite::Result<()> {
        self.conn.execute_batch(match access {
            Access::Read => "BEGIN DEFERRED",
            Access::Write => "BEGIN IMMEDIATE",
        })
    }

    pub(crate) fn commit(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("COMMIT")
    }

    /// Marks the start of one operation inside a group commit, so that it
    /// can be undone alone.
    pub(crate) fn savepoint(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("SAVEPOINT operation")
    }

    /// Keeps the operation since [`Database::savepoint`].
    pub(crate) fn release(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("RELEASE operation")
    }

    /// Undoes the operation since [`Database::savepoint`] and only it.
    pub(crate) fn undo_operation(&self) -> rusqlite::Result<()> {
        self.conn
            .execute_batch("ROLLBACK TO operation; RELEASE operation")
    }

    /// One step of giving a purge's space back, outside any transaction:
    /// returns up to `max_pages` free pages to the file system. Returns the
    /// pages freed and the free pages left, so that the caller can take
    /// further steps, each short enough not to hold up other writes.
    ///
    /// The checkpoint thread copies each step's pages into the file beside
    /// the writer; after the last step, [`Database::empty_log`] copies the
    /// rest, which cuts the file to its new size.
    pub(crate) fn reclaim(&self, max_pages: u32) -> rusqlite::Result<(i64, i64)> {
        let free = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
        };
        let before = free(&self.conn)?;
        // A pragma's argument cannot be bound; this one is the host's own
        // number, never a caller's. SQLite frees one page per step of this
        // statement, so it must be stepped to the end (`execute_batch`
        // would step it once).
        let mut vacuum = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({max_pages})"))?;
        let mut steps = vacuum.raw_query();
        while steps.next()?.is_some() {}
        let after = free(&self.conn)?;
        Ok((before - after, after))
    }

    /// Copies the whole log into the file and empties it, outside any
    /// transaction: the last step of giving a purge's space back, which is
    /// when the file is cut to its new size, and the log's file with it.
    /// The caller keeps the checkpoint thread from copying meanwhile. A
    /// reader of another process that holds the log back leaves both as
    /// they are until a later checkpoint gets to the end of the log.
    pub(crate) fn empty_log(&self) -> rusqlite::Result<()> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            tracing::debug!("emptying the log was held back by a reader");
        }
        Ok(())
    }

    /// Undoes the open transaction, if any. SQLite may already have rolled
    /// back by itself (after some I/O errors), so "no transaction" is fine.
    pub(crate) fn rollback(&self) {
        if self.conn.is_autocommit() {
            return;
        }
        if let Err(error) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!(%error, "rollback failed");
        }
    }

    /// Replaces SQLite's automatic checkpoint on this connection with
    /// `hook`, which runs after each commit with the pages in the log, and
    /// has the log's file cut back each time the log starts again.
    pub(crate) fn set_commit_hook(
        &mut self,
        hook: impl FnMut(&mut Wal, c_int) -> rusqlite::Result<()> + Send + 'static,
    ) -> rusqlite::Result<()> {
        self.conn.wal_hook(Some(hook))?;
        self.conn
            .pragma_update(None, "journal_size_limit", LOG_FILE_LIMIT_BYTES)
    }

    /// Marks the component as running until the guard drops.
    pub(crate) fn guest_section(&self) -> GuestSection {
        self.guest_active.store(true, Ordering::Relaxed);
        GuestSection(Arc::clone(&self.guest_active))
    }
}

pub(crate) struct GuestSection(Arc<AtomicBool>);

impl Drop for GuestSection {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn open_error(config: &StoreConfig) -> impl Fn(String) -> Error + '_ {
    |reason| Error::Open {
        path: config.path.display().to_string(),
        reason,
    }
}

fn configure(conn: &Connection, config: &StoreConfig) -> Result<(), String> {
    let sqlite = |e: rusqlite::Error| e.to_string();
    conn.busy_timeout(config.busy_timeout).map_err(sqlite)?;

    // Incremental auto-vacuum can only be chosen before the first table is
    // created; on an existing file this is a no-op.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(sqlite)?;

    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "the file cannot use write-ahead logging (journal_mode stayed {mode})"
        ));
    }
    conn.pragma_update(None, "synchronous", config.durability.pragma_value())
        .map_err(sqlite)?;
    Ok(())
}
