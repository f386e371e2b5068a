//! The table layout and its version.
//!
//! The version lives in SQLite's `user_version` header field. Each entry of
//! [`MIGRATIONS`] moves a file up by one version, and ends by writing the
//! version it reaches, so a file written by any earlier release is brought
//! up to date in the same transaction as the first write that finds it. A
//! file from a newer release is refused rather than guessed at.
//!
//! Each step is also safe to run again over a half-applied one
//! (`IF NOT EXISTS`), for storage that cannot wrap a call in a transaction.

use crate::error::StoreError;
use crate::storage::{Storage, Value};

/// The schema version this component writes.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// `MIGRATIONS[n]` takes a file from version `n` to `n + 1`.
pub const MIGRATIONS: &[&[&str]] = &[
    // 0 -> 1: the operations table.
    &[
        "CREATE TABLE IF NOT EXISTS operations (
            id                 TEXT    NOT NULL PRIMARY KEY,
            kind               TEXT    NOT NULL,
            target_summary     TEXT,
            source_instance_id TEXT,
            source_script      TEXT,
            source_node        TEXT,
            status             TEXT    NOT NULL CHECK (status IN
                ('submitted', 'retrying', 'delivered', 'parked', 'failed', 'discarded')),
            retry_count        INTEGER NOT NULL CHECK (retry_count >= 0),
            last_error         TEXT,
            http_status        INTEGER CHECK (http_status BETWEEN 100 AND 599),
            created_at         INTEGER NOT NULL,
            updated_at         INTEGER NOT NULL,
            terminal_at        INTEGER,
            CHECK ((terminal_at IS NULL) = (status IN ('submitted', 'retrying')))
        ) WITHOUT ROWID",
        // Purge scans terminal rows by age; rows in flight stay out of it.
        "CREATE INDEX IF NOT EXISTS operations_by_terminal_at ON operations (terminal_at)
            WHERE terminal_at IS NOT NULL",
        "PRAGMA user_version = 1",
    ],
];

/// Reads the file's schema version.
pub fn version(storage: &mut impl Storage) -> Result<u32, StoreError> {
    let row = storage
        .query_row("PRAGMA user_version", Vec::new())
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    match row.as_ref().and_then(|row| row.first()) {
        Some(Value::Integer(v)) => u32::try_from(*v)
            .map_err(|_| StoreError::Storage(format!("user_version {v} is not a schema version"))),
        other => Err(StoreError::Storage(format!(
            "user_version read as {other:?}"
        ))),
    }
}

/// Brings the file to [`CURRENT_VERSION`], creating the table in an empty
/// file. Must run inside the caller's write transaction.
pub fn migrate(storage: &mut impl Storage) -> Result<(), StoreError> {
    let found = version(storage)?;
    if found > CURRENT_VERSION {
        return Err(StoreError::UnsupportedSchema(found));
    }
    for step in &MIGRATIONS[found as usize..] {
        for sql in *step {
            storage
                .execute(sql, Vec::new())
                .map_err(|e| StoreError::Storage(format!("schema migration failed: {e}")))?;
        }
    }
    Ok(())
}
