//! The component face of the plug: exports `scadalink:tracking/storage`
//! over the [`Database`] at [`DATABASE_FILE`].

use crate::database::{DATABASE_FILE, Database, Failure};

wit_bindgen::generate!({
    inline: r"
        package scadalink:tracking-plug@0.1.0;

        /// The storage capability the host would supply, supplied instead
        /// by SQLite inside this component.
        world sqlite-storage {
            export scadalink:tracking/storage@0.1.0;
        }
    ",
    path: "../wit",
});

use exports::scadalink::tracking::storage::{Guest, Row, StorageError, Value};

struct Plug;

export!(Plug);

/// Runs `f` on the one database file, turning a failure into the
/// interface's error.
fn with_database<T>(f: impl FnOnce(&Database) -> Result<T, Failure>) -> Result<T, StorageError> {
    f(&Database::at(DATABASE_FILE)).map_err(|failure| StorageError {
        code: failure.code,
        message: failure.message,
    })
}

impl Guest for Plug {
    fn execute(statement: String, params: Vec<Value>) -> Result<u64, StorageError> {
        with_database(|db| db.execute(&statement, to_sql(params)))
    }

    fn query_row(statement: String, params: Vec<Value>) -> Result<Option<Row>, StorageError> {
        let row = with_database(|db| db.query_row(&statement, to_sql(params)))?;
        Ok(row.map(|row| row.into_iter().map(from_sql).collect()))
    }
}

fn to_sql(params: Vec<Value>) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as Sql;
    params
        .into_iter()
        .map(|value| match value {
            Value::Null => Sql::Null,
            Value::Integer(v) => Sql::Integer(v),
            Value::Real(v) => Sql::Real(v),
            Value::Text(v) => Sql::Text(v),
            Value::Blob(v) => Sql::Blob(v),
        })
        .collect()
}

fn from_sql(value: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as Sql;
    match value {
        Sql::Null => Value::Null,
        Sql::Integer(v) => Value::Integer(v),
        Sql::Real(v) => Value::Real(v),
        Sql::Text(v) => Value::Text(v),
        Sql::Blob(v) => Value::Blob(v),
    }
}
