//! The six statuses of an operation and which of them are final.

use std::fmt;

/// Where an operation stands.
///
/// `Submitted` and `Retrying` are in flight; the other four are terminal:
/// once a row holds one of them, nothing but purge changes it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
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

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Submitted,
        Status::Retrying,
        Status::Delivered,
        Status::Parked,
        Status::Failed,
        Status::Discarded,
    ];

    /// Whether the status is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Submitted | Status::Retrying)
    }

    /// The lowercase name used in the database, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Retrying => "retrying",
            Status::Delivered => "delivered",
            Status::Parked => "parked",
            Status::Failed => "failed",
            Status::Discarded => "discarded",
        }
    }

    /// Parses a lowercase name, as [`Status::as_str`] writes it.
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_four_statuses_are_terminal() {
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                Status::Delivered,
                Status::Parked,
                Status::Failed,
                Status::Discarded
            ]
        );
    }

    #[test]
    fn names_round_trip_and_are_lowercase_only() {
        for status in Status::ALL {
            assert_eq!(Status::from_name(status.as_str()), Some(status));
        }
        assert_eq!(Status::from_name("Delivered"), None);
        assert_eq!(Status::from_name(""), None);
    }
}
