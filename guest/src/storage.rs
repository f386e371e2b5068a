//! What the store needs from its storage: run one SQL statement with bound
//! parameters.
//!
//! Statement texts are `&'static str`, so a value can never be spliced into
//! SQL: everything a caller sends travels as a bound [`Value`]. Transactions
//! are not part of this trait; whoever runs a store operation wraps it in
//! one (the host does so for every exported call).

use std::fmt;

/// One SQLite value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        value.map_or(Value::Null, Value::Text)
    }
}

impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Value::Null, Value::Integer)
    }
}

/// A statement that failed inside the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageFailure {
    /// SQLite's extended result code, when SQLite produced the error.
    pub code: Option<i32>,
    /// What went wrong, in words.
    pub message: String,
}

impl fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} (SQLite code {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A SQL database the store runs its statements on.
pub trait Storage {
    /// Runs a statement that returns no rows; returns how many rows it
    /// inserted, updated or deleted. The parameters are handed over, so
    /// that their text need not be copied on the way.
    fn execute(&mut self, sql: &'static str, params: Vec<Value>) -> Result<u64, StorageFailure>;

    /// Runs a statement that returns at most one row, and returns that row
    /// or `None`; a second row is a failure.
    fn query_row(
        &mut self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, StorageFailure>;
}
