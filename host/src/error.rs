//! The one error type of the host library.

use crate::bindings::types as wit;

/// Why a store call, or opening a store, failed.
///
/// Whatever the variant, a failed call changed nothing in the database.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument broke a rule of the store; retrying the same call fails
    /// the same way. `field` is the argument's WIT name (`http-status`).
    #[error("invalid {field}: {rule}")]
    InvalidInput {
        /// The argument's name.
        field: String,
        /// The rule it broke, in words.
        rule: String,
    },

    /// The database file was written by a newer schema version than the
    /// loaded component knows.
    #[error("database schema version {0} is newer than the loaded component supports")]
    UnsupportedSchema(u32),

    /// SQLite failed: I/O, a full disk, a file locked past the busy timeout.
    #[error("storage failure: {0}")]
    Storage(String),

    /// The component trapped (a bug or an exhausted limit). Its call was
    /// rolled back and the instance replaced; the next call gets a fresh one.
    #[error("the component trapped: {0}")]
    Trap(String),

    /// A write was asked of a store opened with
    /// [`crate::StoreConfig::read_only`].
    #[error("the store was opened read-only; writes are refused")]
    ReadOnly,

    /// The component could not be loaded, compiled or instantiated.
    #[error("cannot load the component: {0}")]
    Plugin(String),

    /// The database could not be opened or configured.
    #[error("cannot open the database {path}: {reason}")]
    Open {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Whether the caller's input is at fault (the CLI exits with 2 for it).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput { .. })
    }
}

impl From<wit::Error> for Error {
    fn from(error: wit::Error) -> Self {
        match error {
            wit::Error::InvalidInput(wit::InvalidInput { field, rule }) => {
                Error::InvalidInput { field, rule }
            }
            wit::Error::UnsupportedSchema(version) => Error::UnsupportedSchema(version),
            wit::Error::Storage(message) => Error::Storage(message),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error::Storage(error.to_string())
    }
}
