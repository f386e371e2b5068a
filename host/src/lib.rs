//! The host of the tracking-store component.
//!
//! A site runtime embeds this crate to keep the site's operation tracking
//! store: [`Plugin`] loads the compiled component, [`TrackingStore`] opens a
//! SQLite file under it and offers the five store operations as typed
//! methods, and a background thread purges terminal rows on a schedule.
//!
//! The component holds every rule of the store; this crate supplies what it
//! cannot have by itself:
//!
//! - `storage`: the storage capability, rusqlite over the one file the host
//!   opened, with prepared statements cached;
//! - `database`: opening that file (WAL, the chosen durability, a busy
//!   timeout), transactions and savepoints, and the fence that keeps the
//!   component's SQL inside the store's own tables;
//! - `plugin`: the engine, the compiled-code cache, the linker, and a
//!   locked-down WASI (clocks only);
//! - `session`: one instance over one connection, replaced after a trap;
//! - `writer`: the single write connection and its caller-led group commit,
//!   with a relay thread that leads for writes queued without blocking;
//! - `checkpoint`: the thread that checkpoints the log beside the writer;
//! - `readers`: read-only instances that serve `get_status` beside it;
//! - [`purge`]: the scheduled purge;
//! - [`clock`]: the wall clock, injectable so that tests can move time;
//! - [`script`]: the runner of untrusted site scripts that read status.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracking_host::{PurgeSchedule, Plugin, StoreConfig, TrackingStore};
//!
//! let plugin = Plugin::load("target/wasm32-wasip2/release/tracking_guest.wasm")?;
//! let config = StoreConfig::new("var/tracking.db").purge(Some(PurgeSchedule {
//!     retention: Duration::from_secs(7 * 24 * 3600),
//!     interval: Duration::from_secs(3600),
//! }));
//! let store = TrackingStore::open(&plugin, config)?;
//! let status = store.get_status("0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b")?;
//! # Ok::<(), tracking_host::Error>(())
//! ```
#![deny(missing_docs)]

mod bindings;
mod checkpoint;
pub mod clock;
mod config;
mod database;
mod error;
mod plugin;
pub mod purge;
mod readers;
pub mod script;
mod session;
mod storage;
mod store;
mod types;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Durability, PurgeSchedule, StoreConfig};
pub use error::Error;
pub use plugin::Plugin;
pub use purge::{PurgeReport, PurgeStats};
pub use storage::MAX_STATEMENT_BYTES;
pub use store::{MAX_ARGUMENT_BYTES, Pending, StoreStats, TrackingStore};
pub use types::{OperationSnapshot, OperationStatus};

/// Where `make guest` leaves the compiled component in this source tree;
/// the CLI's default `--component`.
pub const BUILT_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/tracking_guest.wasm"
);
