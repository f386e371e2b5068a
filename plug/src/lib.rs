//! The storage plug: the `scadalink:tracking/storage` capability exported by
//! a component of its own, over SQLite compiled into that component and a
//! database file reached through WASI's filesystem.
//!
//! The native host (`host/`) supplies this capability to the tracking-store
//! component directly. The plug exists so that the component can also run
//! without that host: `make standalone` composes the guest with this plug
//! (`wac plug`) into `target/standalone/tracking-standalone.wasm`, which the
//! plain `wasmtime` CLI runs with nothing but a preopened directory.
//!
//! - [`database`] opens the one file and runs the component's statements
//!   under the same rules as the host's capability. It is plain rusqlite, so
//!   it is unit tested natively.
//! - Built for `wasm32`, the crate also exports the interface over
//!   [`DATABASE_FILE`] (`component.rs`).
//!
//! The schema, its version and every statement are the guest's, so a file
//! written through the standalone component is read by the native host and
//! the other way round.
//!
//! # What the plug cannot give
//!
//! - **Atomicity per statement, not per call.** Nothing tells a capability
//!   where an exported call begins or ends, so each statement commits on its
//!   own, on a connection of its own (see [`Database`]). Every store
//!   operation changes data with a single statement, so that change is
//!   whole or absent; a schema migration spans several statements, each
//!   safe to re-run, and writes the version last, so one cut short is
//!   finished by the next call. Two runs at once may interleave their
//!   statements: an attempt's read-then-update is not isolated from another
//!   run's (a terminal row still never changes: the update rechecks it).
//! - **Locks the host does not see.** WASI has no `fcntl` locks; SQLite's
//!   WASI layer locks with a `tracking.db.lock` directory instead, which
//!   keeps standalone runs apart but means nothing to the native host.
//!   Never run the standalone component on a file a native host has open.
//!   A run killed in the middle of a statement leaves that directory behind,
//!   and later runs report `database is locked` until it is removed.
#![deny(missing_docs)]

pub mod database;

#[cfg(target_arch = "wasm32")]
mod component;

pub use database::{DATABASE_FILE, Database, Failure};
