//! The component face of the crate: the `tracking-store` world's exports,
//! implemented by [`crate::Store`] over the host's storage capability and
//! the WASI wall clock.

use crate::error::StoreError;
use crate::rules::Row;
use crate::status::Status;
use crate::storage::{Storage, StorageFailure, Value};
use crate::store::{Clock, Store};

wit_bindgen::generate!({
    world: "tracking-store",
    path: "../wit",
});

use exports::scadalink::tracking::maintenance::Guest as Maintenance;
use exports::scadalink::tracking::store::Guest;
use scadalink::tracking::storage as host;
use scadalink::tracking::types::{self as wit};

struct Component;

export!(Component);

/// The host's storage capability.
struct HostStorage;

impl Storage for HostStorage {
    fn execute(&mut self, sql: &'static str, params: Vec<Value>) -> Result<u64, StorageFailure> {
        host::execute(sql, &to_host(params)).map_err(from_host_error)
    }

    fn query_row(
        &mut self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> Result<Option<Vec<Value>>, StorageFailure> {
        let row = host::query_row(sql, &to_host(params)).map_err(from_host_error)?;
        Ok(row.map(|row| row.into_iter().map(from_host).collect()))
    }
}

/// The WASI wall clock, which the host controls.
struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

fn store() -> Store<HostStorage, WallClock> {
    Store::new(HostStorage, WallClock)
}

impl Guest for Component {
    fn record_enqueue(
        id: String,
        kind: String,
        target_summary: Option<String>,
        source_instance_id: Option<String>,
        source_script: Option<String>,
        source_node: Option<String>,
    ) -> Result<bool, wit::Error> {
        store()
            .record_enqueue(
                &id,
                kind,
                target_summary,
                source_instance_id,
                source_script,
                source_node,
            )
            .map_err(to_wit_error)
    }

    fn record_attempt(
        id: String,
        status: wit::OperationStatus,
        retry_count: u32,
        last_error: Option<String>,
        http_status: Option<u16>,
    ) -> Result<bool, wit::Error> {
        store()
            .record_attempt(
                &id,
                from_wit_status(status),
                retry_count,
                last_error,
                http_status,
            )
            .map_err(to_wit_error)
    }

    fn record_terminal(
        id: String,
        status: wit::OperationStatus,
        last_error: Option<String>,
        http_status: Option<u16>,
    ) -> Result<bool, wit::Error> {
        store()
            .record_terminal(&id, from_wit_status(status), last_error, http_status)
            .map_err(to_wit_error)
    }

    fn get_status(id: String) -> Result<Option<wit::OperationSnapshot>, wit::Error> {
        store()
            .get_status(&id)
            .map(|row| row.map(to_snapshot))
            .map_err(to_wit_error)
    }

    fn purge_terminal(older_than: wit::Timestamp) -> Result<u64, wit::Error> {
        store().purge_terminal(older_than).map_err(to_wit_error)
    }
}

impl Maintenance for Component {
    fn purge_terminal_batch(older_than: wit::Timestamp, max_rows: u32) -> Result<u64, wit::Error> {
        store()
            .purge_terminal_batch(older_than, max_rows)
            .map_err(to_wit_error)
    }
}

fn to_snapshot(row: Row) -> wit::OperationSnapshot {
    wit::OperationSnapshot {
        id: row.id,
        kind: row.kind,
        target_summary: row.target_summary,
        source_instance_id: row.source_instance_id,
        source_script: row.source_script,
        source_node: row.source_node,
        status: to_wit_status(row.status),
        retry_count: row.retry_count,
        last_error: row.last_error,
        http_status: row.http_status,
        created_at: row.created_at,
        updated_at: row.updated_at,
        terminal_at: row.terminal_at,
    }
}

fn to_wit_error(error: StoreError) -> wit::Error {
    match error {
        StoreError::InvalidInput { field, rule } => wit::Error::InvalidInput(wit::InvalidInput {
            field: field.to_owned(),
            rule,
        }),
        StoreError::UnsupportedSchema(version) => wit::Error::UnsupportedSchema(version),
        StoreError::Storage(message) => wit::Error::Storage(message),
    }
}

fn from_wit_status(status: wit::OperationStatus) -> Status {
    match status {
        wit::OperationStatus::Submitted => Status::Submitted,
        wit::OperationStatus::Retrying => Status::Retrying,
        wit::OperationStatus::Delivered => Status::Delivered,
        wit::OperationStatus::Parked => Status::Parked,
        wit::OperationStatus::Failed => Status::Failed,
        wit::OperationStatus::Discarded => Status::Discarded,
    }
}

fn to_wit_status(status: Status) -> wit::OperationStatus {
    match status {
        Status::Submitted => wit::OperationStatus::Submitted,
        Status::Retrying => wit::OperationStatus::Retrying,
        Status::Delivered => wit::OperationStatus::Delivered,
        Status::Parked => wit::OperationStatus::Parked,
        Status::Failed => wit::OperationStatus::Failed,
        Status::Discarded => wit::OperationStatus::Discarded,
    }
}

fn to_host(params: Vec<Value>) -> Vec<host::Value> {
    params
        .into_iter()
        .map(|value| match value {
            Value::Null => host::Value::Null,
            Value::Integer(v) => host::Value::Integer(v),
            Value::Real(v) => host::Value::Real(v),
            Value::Text(v) => host::Value::Text(v),
            Value::Blob(v) => host::Value::Blob(v),
        })
        .collect()
}

fn from_host(value: host::Value) -> Value {
    match value {
        host::Value::Null => Value::Null,
        host::Value::Integer(v) => Value::Integer(v),
        host::Value::Real(v) => Value::Real(v),
        host::Value::Text(v) => Value::Text(v),
        host::Value::Blob(v) => Value::Blob(v),
    }
}

fn from_host_error(error: host::StorageError) -> StorageFailure {
    StorageFailure {
        code: error.code,
        message: error.message,
    }
}
