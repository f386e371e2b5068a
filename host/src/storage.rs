//! The storage capability: the host side of `scadalink:tracking/storage`.
//!
//! The component sends statement texts and bound parameters; this runs them
//! on the connection the host opened, through a cache of prepared
//! statements. What the component sends is untrusted in size, so each size
//! it controls has a limit here.

use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::bindings::storage::{self, StorageError, Value};
use crate::database::Database;

/// Longest statement text accepted. The component's statements are a few
/// hundred bytes; the limit keeps a runaway guest from making SQLite parse
/// and cache megabytes of SQL.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// Most rows one query may return. The store reads one row at a time; the
/// limit keeps a query gone wrong from copying a whole table into host and
/// guest memory.
pub const MAX_QUERY_ROWS: usize = 1024;

impl storage::Host for Database {
    fn execute(&mut self, statement: String, params: Vec<Value>) -> Result<u64, StorageError> {
        check_statement(&statement)?;
        let mut prepared = self.conn.prepare_cached(&statement).map_err(sqlite_error)?;
        if prepared.column_count() > 0 {
            return Err(refused(
                "execute runs statements that return no rows; use query",
            ));
        }
        let changed = prepared
            .execute(rusqlite::params_from_iter(params.into_iter().map(to_sql)))
            .map_err(sqlite_error)?;
        Ok(changed as u64)
    }

    fn query(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Vec<Vec<Value>>, StorageError> {
        check_statement(&statement)?;
        let mut prepared = self.conn.prepare_cached(&statement).map_err(sqlite_error)?;
        let width = prepared.column_count();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params.into_iter().map(to_sql)))
            .map_err(sqlite_error)?;

        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            if out.len() == MAX_QUERY_ROWS {
                return Err(refused(&format!(
                    "query returned more than {MAX_QUERY_ROWS} rows"
                )));
            }
            let columns = (0..width)
                .map(|i| row.get_ref(i).map(from_sql).map_err(sqlite_error))
                .collect::<Result<_, _>>()?;
            out.push(columns);
        }
        Ok(out)
    }
}

fn check_statement(statement: &str) -> Result<(), StorageError> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(refused(&format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_BYTES}",
            statement.len()
        )));
    }
    Ok(())
}

fn refused(message: &str) -> StorageError {
    StorageError {
        code: None,
        message: message.to_owned(),
    }
}

fn sqlite_error(error: rusqlite::Error) -> StorageError {
    StorageError {
        code: error.sqlite_error().map(|e| e.extended_code),
        message: error.to_string(),
    }
}

fn to_sql(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Integer(v) => SqlValue::Integer(v),
        Value::Real(v) => SqlValue::Real(v),
        Value::Text(v) => SqlValue::Text(v),
        Value::Blob(v) => SqlValue::Blob(v),
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
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
