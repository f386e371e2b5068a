//! The tracking-store component: every transition rule of a site's operation
//! tracking store.
//!
//! A site runtime sends external-system calls and database writes through a
//! store-and-forward buffer; this crate records where each of those
//! operations stands. The rules live here in plain Rust, over a small
//! [`Storage`] trait, so they compile and are unit tested natively:
//!
//! - [`status`], [`limits`] and [`validate`]: the vocabulary and the input
//!   rules, each size limit a named constant;
//! - [`rules`]: the pure state transitions of one row;
//! - [`schema`]: the table layout, its version, and the migrations that
//!   bring an older file up to date;
//! - [`store`]: the five store operations, tying those together over
//!   [`Storage`] and a [`Clock`].
//!
//! Built for `wasm32`, the crate also exports the `tracking-store` world of
//! `wit/`, with the host's storage capability behind [`Storage`] and the WASI
//! wall clock behind [`Clock`] (see `component.rs`).
#![deny(missing_docs)]

pub mod error;
pub mod limits;
pub mod rules;
pub mod schema;
pub mod status;
pub mod storage;
pub mod store;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod component;

pub use error::StoreError;
pub use rules::Row;
pub use status::Status;
pub use storage::{Storage, StorageFailure, Value};
pub use store::{Clock, Store};
