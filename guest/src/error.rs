//! The errors a store operation reports to its caller.

use std::fmt;

/// Why a store operation did nothing.
///
/// Every variant means the database is exactly as it was before the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// An argument broke a rule; the same call will fail the same way.
    InvalidInput {
        /// The argument's name as the WIT interface spells it.
        field: &'static str,
        /// The rule it broke, in words.
        rule: String,
    },
    /// The file carries a schema version newer than this component knows.
    UnsupportedSchema(u32),
    /// The storage capability failed, or a stored row could not be read.
    Storage(String),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field,
            rule: rule.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InvalidInput { field, rule } => write!(f, "invalid {field}: {rule}"),
            StoreError::UnsupportedSchema(version) => write!(
                f,
                "database schema version {version} is newer than this component supports ({})",
                crate::schema::CURRENT_VERSION
            ),
            StoreError::Storage(message) => write!(f, "storage failure: {message}"),
        }
    }
}

impl std::error::Error for StoreError {}
