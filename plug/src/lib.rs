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
//! - Built for `wasm32`, the crate also exports the interface, with one
//!   connection per component instance (`component.rs`).
//!
//! The schema, its version and every statement are the guest's, so a file
//! written through the standalone component is read by the native host and
//! the other way round.
//!
//! # What the plug cannot give
//!
//! - **Atomicity per statement, not per call.** Nothing tells a capability
//!   where an exported call begins or ends, so each statement commits on its
//!   own (SQLite's autocommit). Every store operation changes data with one
//!   statement, so that change is whole or absent; a schema migration spans
//!   several statements, each safe to re-run, and writes the version last,
//!   so one cut short is finished by the next call.
//! - **No file locking.** WASI has no file locks, and the WASI file layer of
//!   SQLite used here ignores them: two processes writing the same file at
//!   once, two standalone runs or one beside the native host, can corrupt
//!   it. Run one at a time.
//! - **No directory sync.** That file layer syncs files but never their
//!   directory, so on a power loss right after the `-wal` file was first
//!   created, the commits in it can be lost. A process crash loses nothing
//!   acknowledged.
#![deny(missing_docs)]

pub mod database;

#[cfg(target_arch = "wasm32")]
mod component;

pub use database::{DATABASE_FILE, Database, Failure};
