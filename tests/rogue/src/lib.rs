//! A component of the `tracking-store` world that misbehaves on request, so
//! that tests can check that the host contains it.
//!
//! `record-enqueue(id, kind, ..)` first writes `id` into a table of its own,
//! then does what `kind` names:
//!
//! - `ok`: returns `ok(true)`;
//! - `trap`: panics, after the write;
//! - `fail`: returns a storage error, after the write;
//! - `commit`, `savepoint`, `attach`, `pragma`: tries to end the host's
//!   transaction, open a savepoint, attach another file, or change a
//!   connection setting, and returns what the host answered as
//!   `error::storage`;
//! - `allocate`: allocates until the memory cap stops it.
//!
//! `get-status(id)` returns a snapshot whose `retry-count` is how many rows
//! its table holds. `purge-terminal` deletes nothing. The other functions
//! return a storage error.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "tracking-store",
    path: "../../wit",
});

use exports::scadalink::tracking::store::Guest;
use scadalink::tracking::storage::{self, Value};
use scadalink::tracking::types::{Error, OperationSnapshot, OperationStatus, Timestamp};

struct Rogue;

export!(Rogue);

fn sql(statement: &str, params: &[Value]) -> Result<u64, Error> {
    storage::execute(statement, params).map_err(|e| Error::Storage(e.message))
}

fn refuse() -> Error {
    Error::Storage("the rogue component only misbehaves through record-enqueue".into())
}

impl Guest for Rogue {
    fn record_enqueue(
        id: String,
        kind: String,
        _: Option<String>,
        _: Option<String>,
        _: Option<String>,
        _: Option<String>,
    ) -> Result<bool, Error> {
        sql("CREATE TABLE IF NOT EXISTS rogue (note TEXT)", &[])?;
        sql("INSERT INTO rogue (note) VALUES (?1)", &[Value::Text(id)])?;
        let attempt = match kind.as_str() {
            "ok" => return Ok(true),
            "trap" => panic!("rogue component trapping on purpose"),
            "fail" => return Err(Error::Storage("rogue failure after a write".into())),
            "commit" => sql("COMMIT", &[]),
            "savepoint" => sql("SAVEPOINT rogue", &[]),
            "attach" => sql("ATTACH DATABASE 'elsewhere.db' AS elsewhere", &[]),
            "pragma" => sql("PRAGMA journal_mode = DELETE", &[]),
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                }
            }
            other => panic!("unknown misbehaviour {other:?}"),
        };
        match attempt {
            Ok(_) => Ok(true),
            Err(error) => Err(error),
        }
    }

    fn record_attempt(
        _: String,
        _: OperationStatus,
        _: u32,
        _: Option<String>,
        _: Option<u16>,
    ) -> Result<bool, Error> {
        Err(refuse())
    }

    fn record_terminal(
        _: String,
        _: OperationStatus,
        _: Option<String>,
        _: Option<u16>,
    ) -> Result<bool, Error> {
        Err(refuse())
    }

    fn get_status(id: String) -> Result<Option<OperationSnapshot>, Error> {
        let row = storage::query_row("SELECT count(*) FROM rogue", &[])
            .map_err(|e| Error::Storage(e.message))?;
        let count = match row.as_ref().and_then(|row| row.first()) {
            Some(Value::Integer(n)) => *n as u32,
            _ => return Err(Error::Storage("count(*) returned no integer".into())),
        };
        Ok(Some(OperationSnapshot {
            id,
            kind: "rogue".into(),
            target_summary: None,
            source_instance_id: None,
            source_script: None,
            source_node: None,
            status: OperationStatus::Submitted,
            retry_count: count,
            last_error: None,
            http_status: None,
            created_at: 0,
            updated_at: 0,
            terminal_at: None,
        }))
    }

    /// Deletes nothing: the host purges (of nothing) when it opens a store.
    fn purge_terminal(_: Timestamp) -> Result<u64, Error> {
        Ok(0)
    }
}

impl exports::scadalink::tracking::maintenance::Guest for Rogue {
    fn purge_terminal_batch(_: Timestamp, _: u32) -> Result<u64, Error> {
        Err(refuse())
    }
}
