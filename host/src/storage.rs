//! The storage capability: the host side of `scadalink:tracking/storage`.
//!
//! The component sends statement texts and bound parameters; this runs them
//! on the connection the host opened, through a cache of prepared
//! statements, under the rules of `tracking_capability` (the limits on what
//! the component sends, and the fence the connection's authorizer applies),
//! which the standalone plug shares.

use rusqlite::CachedStatement;
use rusqlite::types::{Value as SqlValue, ValueRef};
use tracking_capability::{Failure, check_statement};

use crate::bindings::storage::{self, StorageError, Value};
use crate::database::Database;

pub use tracking_capability::MAX_STATEMENT_BYTES;

impl storage::Host for Database {
    fn execute(&mut self, statement: String, params: Vec<Value>) -> Result<u64, StorageError> {
        let mut prepared = prepare(self, &statement)?;
        Ok(tracking_capability::execute(&mut prepared, bound(params))?)
    }

    fn query_row(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, StorageError> {
        let mut prepared = prepare(self, &statement)?;
        Ok(tracking_capability::query_row(
            &mut prepared,
            bound(params),
            from_sql,
        )?)
    }
}

/// The component's statement, checked and taken from the statement cache.
fn prepare<'db>(db: &'db Database, statement: &str) -> Result<CachedStatement<'db>, Failure> {
    check_statement(statement)?;
    Ok(db.conn.prepare_cached(statement)?)
}

fn bound(params: Vec<Value>) -> impl rusqlite::Params {
    rusqlite::params_from_iter(params.into_iter().map(to_sql))
}

impl From<Failure> for StorageError {
    fn from(failure: Failure) -> Self {
        StorageError {
            code: failure.code,
            message: failure.message,
        }
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
        ValueRef::Text(v) => Value::Text(tracking_capability::text(v)),
        ValueRef::Blob(v) => Value::Blob(v.to_vec()),
    }
}
