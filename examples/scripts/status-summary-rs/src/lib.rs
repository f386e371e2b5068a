//! An example site script of the `status-script` world, in Rust.
//!
//! `run(ids)` reads the status of each operation id it is given and prints
//! one line per id on stdout:
//!
//! ```text
//! 0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b delivered retries=1 http=200
//! 5d1c3b2a-0000-4000-8000-000000000000 unknown
//! ```
//!
//! Its result is the count of ids by status, e.g. `2 ids: 1 delivered,
//! 1 unknown`. It fails when given no ids, or when an id is malformed (the
//! store's `invalid-input`, naming the rule).
//!
//! Build it with `make scripts` (or `cargo build --release --target
//! wasm32-wasip2 -p status-summary-rs`) and run it with
//! `tracking script run target/wasm32-wasip2/release/status_summary_rs.wasm -- ID...`.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "status-script",
    path: "../../../wit",
});

use std::collections::BTreeMap;

use scadalink::tracking::status::get_status;
use scadalink::tracking::types::{Error, OperationSnapshot, OperationStatus};

struct StatusSummary;

export!(StatusSummary);

impl Guest for StatusSummary {
    fn run(args: Vec<String>) -> Result<String, String> {
        if args.is_empty() {
            return Err("usage: status-summary ID... (give at least one operation id)".into());
        }

        // Counted by name; a BTreeMap keeps the summary's order stable.
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for id in &args {
            let snapshot = get_status(id).map_err(|e| describe(id, e))?;
            println!("{}", line(id, snapshot.as_ref()));
            let name = snapshot.map_or("unknown", |s| status_name(s.status));
            *counts.entry(name).or_default() += 1;
        }

        let parts: Vec<String> = counts.iter().map(|(n, c)| format!("{c} {n}")).collect();
        Ok(format!("{} ids: {}", args.len(), parts.join(", ")))
    }
}

/// One id's line: its canonical id, status and the details worth a look.
fn line(id: &str, snapshot: Option<&OperationSnapshot>) -> String {
    let Some(s) = snapshot else {
        return format!("{id} unknown");
    };
    let mut out = format!(
        "{} {} retries={}",
        s.id,
        status_name(s.status),
        s.retry_count
    );
    if let Some(http) = s.http_status {
        out.push_str(&format!(" http={http}"));
    }
    if let Some(error) = &s.last_error {
        out.push_str(&format!(" error={error:?}"));
    }
    out
}

fn describe(id: &str, error: Error) -> String {
    match error {
        Error::InvalidInput(e) => format!("{id:?}: invalid {}: {}", e.field, e.rule),
        Error::UnsupportedSchema(v) => format!("the store's schema version {v} is too new"),
        Error::Storage(message) => format!("cannot read the store: {message}"),
    }
}

fn status_name(status: OperationStatus) -> &'static str {
    match status {
        OperationStatus::Submitted => "submitted",
        OperationStatus::Retrying => "retrying",
        OperationStatus::Delivered => "delivered",
        OperationStatus::Parked => "parked",
        OperationStatus::Failed => "failed",
        OperationStatus::Discarded => "discarded",
    }
}
