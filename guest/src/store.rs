//! The five store operations over a [`Storage`] and a [`Clock`].
//!
//! Each operation validates all of its arguments before it touches storage,
//! so bad input changes nothing; then it brings the schema up to date and
//! applies the matching rule of [`crate::rules`]. The caller runs each
//! operation inside one transaction.

use crate::error::StoreError;
use crate::rules::{self, Attempt, Change, Enqueue, Row, Terminal};
use crate::schema;
use crate::status::Status;
use crate::storage::{Storage, StorageFailure, Value};
use crate::validate;

/// The wall clock, in milliseconds since the Unix epoch. It may jump either
/// way; the rules keep each row's timestamps from going back.
pub trait Clock {
    /// The current time.
    fn now_ms(&self) -> i64;
}

/// The tracking store over one storage.
pub struct Store<S, C> {
    storage: S,
    clock: C,
}

const SELECT_ROW: &str = "SELECT id, kind, target_summary, source_instance_id, source_script,
        source_node, status, retry_count, last_error, http_status, created_at, updated_at,
        terminal_at
    FROM operations WHERE id = ?1";

const INSERT_IF_ABSENT: &str = "INSERT INTO operations (id, kind, target_summary,
        source_instance_id, source_script, source_node, status, retry_count, last_error,
        http_status, created_at, updated_at, terminal_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (id) DO NOTHING";

// Both writes restate the rules the caller already applied, against the row
// as it is when written rather than as it was read: a terminal row cannot
// change, a retry count cannot fall and time cannot go back, even through a
// bug above, or when storage without transactions (the standalone plug)
// lets another call write between this call's read and its write.
const UPDATE_ATTEMPT: &str = "UPDATE operations
    SET status = ?2, retry_count = ?3, last_error = ?4, http_status = ?5,
        updated_at = MAX(updated_at, ?6)
    WHERE id = ?1 AND terminal_at IS NULL AND retry_count <= ?3";

// A terminal write keeps the retry count the row has when it is written,
// so that an attempt landing in between cannot make the first terminal
// write lose; terminal-at is the new updated-at (SQLite computes every SET
// expression from the row as it was).
const UPDATE_TERMINAL: &str = "UPDATE operations
    SET status = ?2, last_error = ?3, http_status = ?4,
        updated_at = MAX(updated_at, ?5), terminal_at = MAX(updated_at, ?5)
    WHERE id = ?1 AND terminal_at IS NULL";

const DELETE_TERMINAL_OLDER_THAN: &str =
    "DELETE FROM operations WHERE terminal_at IS NOT NULL AND terminal_at < ?1";

// Oldest first through the partial index on terminal_at, so that each batch
// reads only the rows it deletes.
const DELETE_TERMINAL_OLDER_THAN_LIMITED: &str = "DELETE FROM operations WHERE id IN (
        SELECT id FROM operations
        WHERE terminal_at IS NOT NULL AND terminal_at < ?1
        ORDER BY terminal_at LIMIT ?2)";

impl<S: Storage, C: Clock> Store<S, C> {
    /// A store over `storage`, stamping rows with `clock`.
    pub fn new(storage: S, clock: C) -> Self {
        Store { storage, clock }
    }

    /// The storage, for tests that look under the store.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Inserts a `submitted` row unless the id exists; returns whether it
    /// inserted. A duplicate leaves the existing row exactly as it is.
    pub fn record_enqueue(
        &mut self,
        id: &str,
        kind: String,
        target_summary: Option<String>,
        source_instance_id: Option<String>,
        source_script: Option<String>,
        source_node: Option<String>,
    ) -> Result<bool, StoreError> {
        let op = Enqueue {
            id: validate::operation_id(id)?,
            kind: validate::kind(kind)?,
            target_summary: validate::optional_field("target-summary", target_summary)?,
            source_instance_id: validate::optional_field("source-instance-id", source_instance_id)?,
            source_script: validate::optional_field("source-script", source_script)?,
            source_node: validate::optional_field("source-node", source_node)?,
        };
        schema::migrate(&mut self.storage)?;

        let row = rules::enqueued(op, self.clock.now_ms());
        let inserted = self.execute(INSERT_IF_ABSENT, row_params(row))?;
        Ok(inserted == 1)
    }

    /// Records an in-flight attempt; returns whether the row changed.
    pub fn record_attempt(
        &mut self,
        id: &str,
        status: Status,
        retry_count: u32,
        last_error: Option<String>,
        http_status: Option<u16>,
    ) -> Result<bool, StoreError> {
        let id = validate::operation_id(id)?;
        let attempt = Attempt {
            status: validate::attempt_status(status)?,
            retry_count,
            last_error: validate::last_error(last_error),
            http_status: validate::http_status(http_status)?,
        };
        schema::migrate(&mut self.storage)?;

        let Some(row) = self.load(&id)? else {
            return Ok(false);
        };
        match rules::after_attempt(&row, attempt, self.clock.now_ms()) {
            Some(change) => self.update(id, change),
            None => Ok(false),
        }
    }

    /// Flips an in-flight row to a terminal status; returns whether the row
    /// changed. The first terminal write wins.
    pub fn record_terminal(
        &mut self,
        id: &str,
        status: Status,
        last_error: Option<String>,
        http_status: Option<u16>,
    ) -> Result<bool, StoreError> {
        let id = validate::operation_id(id)?;
        let terminal = Terminal {
            status: validate::terminal_status(status)?,
            last_error: validate::last_error(last_error),
            http_status: validate::http_status(http_status)?,
        };
        schema::migrate(&mut self.storage)?;

        let Some(row) = self.load(&id)? else {
            return Ok(false);
        };
        match rules::after_terminal(&row, terminal, self.clock.now_ms()) {
            Some(change) => self.update(id, change),
            None => Ok(false),
        }
    }

    /// The row's snapshot, or `None` when there is none.
    ///
    /// A file that has never been written has no table yet; reading it finds
    /// nothing rather than creating the table, so that reads never write.
    pub fn get_status(&mut self, id: &str) -> Result<Option<Row>, StoreError> {
        let id = validate::operation_id(id)?;
        match schema::version(&mut self.storage)? {
            0 => return Ok(None),
            schema::CURRENT_VERSION => {}
            _ => schema::migrate(&mut self.storage)?,
        }
        self.load(&id)
    }

    /// Deletes terminal rows whose terminal-at is strictly older than
    /// `older_than`; returns how many it deleted.
    pub fn purge_terminal(&mut self, older_than: i64) -> Result<u64, StoreError> {
        schema::migrate(&mut self.storage)?;
        self.execute(DELETE_TERMINAL_OLDER_THAN, vec![Value::Integer(older_than)])
    }

    /// Like [`Store::purge_terminal`], but deletes at most `max_rows` rows,
    /// oldest first. Fewer than `max_rows` deleted means none is left.
    pub fn purge_terminal_batch(
        &mut self,
        older_than: i64,
        max_rows: u32,
    ) -> Result<u64, StoreError> {
        schema::migrate(&mut self.storage)?;
        let params = vec![Value::Integer(older_than), Value::Integer(max_rows.into())];
        self.execute(DELETE_TERMINAL_OLDER_THAN_LIMITED, params)
    }

    fn load(&mut self, id: &str) -> Result<Option<Row>, StoreError> {
        let row = self
            .storage
            .query_row(SELECT_ROW, vec![Value::Text(id.to_owned())])
            .map_err(storage_error)?;
        row.map(decode_row).transpose()
    }

    fn update(&mut self, id: String, change: Change) -> Result<bool, StoreError> {
        let id = Value::Text(id);
        let status = Value::Text(change.status.as_str().to_owned());
        let last_error = change.last_error.into();
        let http_status = change.http_status.map(i64::from).into();
        let updated_at = Value::Integer(change.updated_at);
        let (sql, params) = match change.terminal_at {
            // `after_terminal` sets terminal-at to updated-at.
            Some(_) => (
                UPDATE_TERMINAL,
                vec![id, status, last_error, http_status, updated_at],
            ),
            None => (
                UPDATE_ATTEMPT,
                vec![
                    id,
                    status,
                    Value::Integer(change.retry_count.into()),
                    last_error,
                    http_status,
                    updated_at,
                ],
            ),
        };
        Ok(self.execute(sql, params)? == 1)
    }

    fn execute(&mut self, sql: &'static str, params: Vec<Value>) -> Result<u64, StoreError> {
        self.storage.execute(sql, params).map_err(storage_error)
    }
}

fn storage_error(failure: StorageFailure) -> StoreError {
    StoreError::Storage(failure.to_string())
}

fn row_params(row: Row) -> Vec<Value> {
    vec![
        Value::Text(row.id),
        Value::Text(row.kind),
        row.target_summary.into(),
        row.source_instance_id.into(),
        row.source_script.into(),
        row.source_node.into(),
        Value::Text(row.status.as_str().to_owned()),
        Value::Integer(row.retry_count.into()),
        row.last_error.into(),
        row.http_status.map(i64::from).into(),
        Value::Integer(row.created_at),
        Value::Integer(row.updated_at),
        row.terminal_at.into(),
    ]
}

/// Reads a row selected by [`SELECT_ROW`]. A value of the wrong type means
/// the file was changed behind the store's back; that is reported, never
/// papered over.
fn decode_row(columns: Vec<Value>) -> Result<Row, StoreError> {
    let mut columns = Columns(columns.into_iter());
    let row = Row {
        id: columns.text("id")?,
        kind: columns.text("kind")?,
        target_summary: columns.optional_text("target_summary")?,
        source_instance_id: columns.optional_text("source_instance_id")?,
        source_script: columns.optional_text("source_script")?,
        source_node: columns.optional_text("source_node")?,
        status: {
            let name = columns.text("status")?;
            Status::from_name(&name)
                .ok_or_else(|| corrupt("status", &format!("unknown status {name:?}")))?
        },
        retry_count: columns.integer_in("retry_count")?,
        last_error: columns.optional_text("last_error")?,
        http_status: columns
            .optional_integer("http_status")?
            .map(narrow("http_status"))
            .transpose()?,
        created_at: columns.integer("created_at")?,
        updated_at: columns.integer("updated_at")?,
        terminal_at: columns.optional_integer("terminal_at")?,
    };
    Ok(row)
}

struct Columns(std::vec::IntoIter<Value>);

impl Columns {
    fn next(&mut self, name: &str) -> Result<Value, StoreError> {
        self.0.next().ok_or_else(|| corrupt(name, "column missing"))
    }

    fn optional_text(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        match self.next(name)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text)),
            other => Err(corrupt(name, &format!("expected text, found {other:?}"))),
        }
    }

    fn text(&mut self, name: &str) -> Result<String, StoreError> {
        self.optional_text(name)?
            .ok_or_else(|| corrupt(name, "unexpected NULL"))
    }

    fn optional_integer(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.next(name)? {
            Value::Null => Ok(None),
            Value::Integer(value) => Ok(Some(value)),
            other => Err(corrupt(
                name,
                &format!("expected an integer, found {other:?}"),
            )),
        }
    }

    fn integer(&mut self, name: &str) -> Result<i64, StoreError> {
        self.optional_integer(name)?
            .ok_or_else(|| corrupt(name, "unexpected NULL"))
    }

    fn integer_in<T: TryFrom<i64>>(&mut self, name: &'static str) -> Result<T, StoreError> {
        narrow(name)(self.integer(name)?)
    }
}

fn narrow<T: TryFrom<i64>>(name: &'static str) -> impl Fn(i64) -> Result<T, StoreError> {
    move |value| T::try_from(value).map_err(|_| corrupt(name, &format!("{value} is out of range")))
}

fn corrupt(column: &str, problem: &str) -> StoreError {
    StoreError::Storage(format!("stored row has a bad {column}: {problem}"))
}

#[cfg(test)]
mod tests;
