//! The store's values as Rust types: what a site runtime passes in and reads
//! back.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::bindings::types as wit;

/// Where an operation stands. `Submitted` and `Retrying` are in flight; the
/// other four are terminal and final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Enqueued, no attempt recorded yet.
    Submitted,
    /// At least one attempt failed and another will follow.
    Retrying,
    /// The call or write reached its target.
    Delivered,
    /// Retries ran out; the operation waits for an operator.
    Parked,
    /// The target rejected the operation for good.
    Failed,
    /// An operator or a policy dropped the operation.
    Discarded,
}

impl OperationStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OperationStatus; 6] = [
        OperationStatus::Submitted,
        OperationStatus::Retrying,
        OperationStatus::Delivered,
        OperationStatus::Parked,
        OperationStatus::Failed,
        OperationStatus::Discarded,
    ];

    /// Whether the status is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, OperationStatus::Submitted | OperationStatus::Retrying)
    }

    /// The lowercase name used in the CLI and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Submitted => "submitted",
            OperationStatus::Retrying => "retrying",
            OperationStatus::Delivered => "delivered",
            OperationStatus::Parked => "parked",
            OperationStatus::Failed => "failed",
            OperationStatus::Discarded => "discarded",
        }
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationStatus {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        OperationStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown status {name:?}; expected one of submitted, retrying, delivered, \
                     parked, failed, discarded"
                )
            })
    }
}

impl From<OperationStatus> for wit::OperationStatus {
    fn from(status: OperationStatus) -> Self {
        match status {
            OperationStatus::Submitted => wit::OperationStatus::Submitted,
            OperationStatus::Retrying => wit::OperationStatus::Retrying,
            OperationStatus::Delivered => wit::OperationStatus::Delivered,
            OperationStatus::Parked => wit::OperationStatus::Parked,
            OperationStatus::Failed => wit::OperationStatus::Failed,
            OperationStatus::Discarded => wit::OperationStatus::Discarded,
        }
    }
}

impl From<wit::OperationStatus> for OperationStatus {
    fn from(status: wit::OperationStatus) -> Self {
        match status {
            wit::OperationStatus::Submitted => OperationStatus::Submitted,
            wit::OperationStatus::Retrying => OperationStatus::Retrying,
            wit::OperationStatus::Delivered => OperationStatus::Delivered,
            wit::OperationStatus::Parked => OperationStatus::Parked,
            wit::OperationStatus::Failed => OperationStatus::Failed,
            wit::OperationStatus::Discarded => OperationStatus::Discarded,
        }
    }
}

/// The stored row of one operation. Serialises with snake_case field names
/// and timestamps in milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationSnapshot {
    /// Canonical lowercase hyphenated UUID.
    pub id: String,
    /// e.g. `ExternalSystem.CachedCall`.
    pub kind: String,
    /// Where the operation goes.
    pub target_summary: Option<String>,
    /// The instance that issued it.
    pub source_instance_id: Option<String>,
    /// The script that issued it.
    pub source_script: Option<String>,
    /// The node that issued it.
    pub source_node: Option<String>,
    /// Where it stands.
    pub status: OperationStatus,
    /// Attempts so far; never decreases.
    pub retry_count: u32,
    /// Most recent error text, possibly cut to its limit.
    pub last_error: Option<String>,
    /// Most recent HTTP status.
    pub http_status: Option<u16>,
    /// When the row was inserted.
    pub created_at: i64,
    /// When the row last changed.
    pub updated_at: i64,
    /// When the row became terminal.
    pub terminal_at: Option<i64>,
}

impl From<wit::OperationSnapshot> for OperationSnapshot {
    fn from(s: wit::OperationSnapshot) -> Self {
        OperationSnapshot {
            id: s.id,
            kind: s.kind,
            target_summary: s.target_summary,
            source_instance_id: s.source_instance_id,
            source_script: s.source_script,
            source_node: s.source_node,
            status: s.status.into(),
            retry_count: s.retry_count,
            last_error: s.last_error,
            http_status: s.http_status,
            created_at: s.created_at,
            updated_at: s.updated_at,
            terminal_at: s.terminal_at,
        }
    }
}
