//! The state rules of one row, as pure functions.
//!
//! A row is born `submitted` with retry-count 0, takes attempts while it is
//! in flight, and is frozen by its first terminal write. Each transition
//! here takes the stored row and returns the [`Change`] to store, or `None`
//! when the call must change nothing. Time is passed in, so the rules never read a
//! clock and timestamps never go backwards for a row however the clock
//! moves.

use crate::status::Status;

/// One stored operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Canonical lowercase hyphenated UUID.
    pub id: String,
    /// What the operation is, e.g. `ExternalSystem.CachedCall`.
    pub kind: String,
    /// Where the operation goes; set at enqueue.
    pub target_summary: Option<String>,
    /// The instance that issued the operation; set at enqueue.
    pub source_instance_id: Option<String>,
    /// The script that issued the operation; set at enqueue.
    pub source_script: Option<String>,
    /// The node that issued the operation; set at enqueue.
    pub source_node: Option<String>,
    /// Where the operation stands.
    pub status: Status,
    /// Attempts so far, as the forwarder counts them; never decreases.
    pub retry_count: u32,
    /// Most recent error text.
    pub last_error: Option<String>,
    /// Most recent HTTP status.
    pub http_status: Option<u16>,
    /// When the row was inserted, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When the row last changed.
    pub updated_at: i64,
    /// When the row became terminal; set exactly when `status` is terminal.
    pub terminal_at: Option<i64>,
}

/// A validated `record-enqueue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueue {
    /// Canonical id.
    pub id: String,
    /// Operation kind.
    pub kind: String,
    /// See [`Row::target_summary`].
    pub target_summary: Option<String>,
    /// See [`Row::source_instance_id`].
    pub source_instance_id: Option<String>,
    /// See [`Row::source_script`].
    pub source_script: Option<String>,
    /// See [`Row::source_node`].
    pub source_node: Option<String>,
}

/// A validated `record-attempt`: its status is in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `Submitted` or `Retrying`.
    pub status: Status,
    /// The forwarder's attempt counter.
    pub retry_count: u32,
    /// Already cut to its limit.
    pub last_error: Option<String>,
    /// Already range-checked.
    pub http_status: Option<u16>,
}

/// A validated `record-terminal`: its status is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminal {
    /// `Delivered`, `Parked`, `Failed` or `Discarded`.
    pub status: Status,
    /// Already cut to its limit.
    pub last_error: Option<String>,
    /// Already range-checked.
    pub http_status: Option<u16>,
}

/// The row a first enqueue inserts.
pub fn enqueued(op: Enqueue, now: i64) -> Row {
    Row {
        id: op.id,
        kind: op.kind,
        target_summary: op.target_summary,
        source_instance_id: op.source_instance_id,
        source_script: op.source_script,
        source_node: op.source_node,
        status: Status::Submitted,
        retry_count: 0,
        last_error: None,
        http_status: None,
        created_at: now,
        updated_at: now,
        terminal_at: None,
    }
}

/// What an attempt or a terminal write stores: the fields of a row in
/// flight that may change. The rest of a row is set once, at enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The row's new status.
    pub status: Status,
    /// The row's retry count, never lower than the stored one.
    pub retry_count: u32,
    /// The call's error text.
    pub last_error: Option<String>,
    /// The call's HTTP status.
    pub http_status: Option<u16>,
    /// When the change was made, never before the row's last change.
    pub updated_at: i64,
    /// Set to `updated_at` by a terminal write, and only by one.
    pub terminal_at: Option<i64>,
}

/// The change an attempt makes, or `None` when the attempt must be
/// dropped: the row is terminal, or the attempt is older than what is
/// stored.
pub fn after_attempt(row: &Row, attempt: Attempt, now: i64) -> Option<Change> {
    debug_assert!(!attempt.status.is_terminal());
    if row.status.is_terminal() || attempt.retry_count < row.retry_count {
        return None;
    }
    Some(Change {
        status: attempt.status,
        retry_count: attempt.retry_count,
        last_error: attempt.last_error,
        http_status: attempt.http_status,
        updated_at: monotonic(row, now),
        terminal_at: None,
    })
}

/// The change a terminal write makes, or `None` when an earlier terminal
/// write already won.
pub fn after_terminal(row: &Row, terminal: Terminal, now: i64) -> Option<Change> {
    debug_assert!(terminal.status.is_terminal());
    if row.status.is_terminal() {
        return None;
    }
    let at = monotonic(row, now);
    Some(Change {
        status: terminal.status,
        retry_count: row.retry_count,
        last_error: terminal.last_error,
        http_status: terminal.http_status,
        updated_at: at,
        terminal_at: Some(at),
    })
}

/// Whether `purge-terminal(older_than)` deletes the row: it is terminal and
/// became so strictly before `older_than`.
pub fn is_purged_by(row: &Row, older_than: i64) -> bool {
    row.terminal_at.is_some_and(|at| at < older_than)
}

/// The time to stamp on a change to `row`: the clock's reading, unless the
/// clock has gone back behind the row's last change.
fn monotonic(row: &Row, now: i64) -> i64 {
    now.max(row.updated_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn submitted_at(now: i64) -> Row {
        enqueued(
            Enqueue {
                id: "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b".into(),
                kind: "ExternalSystem.CachedCall".into(),
                target_summary: Some("POST https://erp/orders".into()),
                source_instance_id: Some("pump-7".into()),
                source_script: Some("OnShiftEnd".into()),
                source_node: Some("node-a".into()),
            },
            now,
        )
    }

    fn attempt(retry_count: u32) -> Attempt {
        Attempt {
            status: Status::Retrying,
            retry_count,
            last_error: Some("503 Service Unavailable".into()),
            http_status: Some(503),
        }
    }

    fn terminal(status: Status) -> Terminal {
        Terminal {
            status,
            last_error: None,
            http_status: Some(200),
        }
    }

    /// `row` as the store leaves it after writing `change`.
    fn apply(row: &Row, change: Change) -> Row {
        Row {
            status: change.status,
            retry_count: change.retry_count,
            last_error: change.last_error,
            http_status: change.http_status,
            updated_at: change.updated_at,
            terminal_at: change.terminal_at,
            ..row.clone()
        }
    }

    /// The row after an attempt, or `None` when it changes nothing.
    fn attempted(row: &Row, attempt: Attempt, now: i64) -> Option<Row> {
        after_attempt(row, attempt, now).map(|change| apply(row, change))
    }

    /// The row after a terminal write, or `None` when it changes nothing.
    fn finished(row: &Row, terminal: Terminal, now: i64) -> Option<Row> {
        after_terminal(row, terminal, now).map(|change| apply(row, change))
    }

    #[test]
    fn enqueue_starts_submitted_with_no_retries_and_no_terminal_time() {
        let row = submitted_at(1_000);
        assert_eq!(row.status, Status::Submitted);
        assert_eq!(row.retry_count, 0);
        assert_eq!(
            (row.created_at, row.updated_at, row.terminal_at),
            (1_000, 1_000, None)
        );
    }

    #[test]
    fn attempt_updates_status_count_error_http_and_time_only() {
        let row = submitted_at(1_000);
        let next = attempted(&row, attempt(1), 2_000).unwrap();
        assert_eq!(next.status, Status::Retrying);
        assert_eq!(next.retry_count, 1);
        assert_eq!(next.last_error.as_deref(), Some("503 Service Unavailable"));
        assert_eq!(next.http_status, Some(503));
        assert_eq!(next.updated_at, 2_000);
        assert_eq!(next.created_at, row.created_at);
        assert_eq!(next.kind, row.kind);
        assert_eq!(next.target_summary, row.target_summary);
        assert_eq!(next.terminal_at, None);
    }

    #[test]
    fn attempt_with_the_same_retry_count_applies() {
        let row = attempted(&submitted_at(0), attempt(2), 1).unwrap();
        assert!(attempted(&row, attempt(2), 2).is_some());
    }

    #[test]
    fn attempt_with_a_lower_retry_count_changes_nothing() {
        let row = attempted(&submitted_at(0), attempt(3), 1).unwrap();
        assert_eq!(attempted(&row, attempt(2), 2), None);
    }

    #[test]
    fn attempt_on_a_terminal_row_changes_nothing() {
        for status in [
            Status::Delivered,
            Status::Parked,
            Status::Failed,
            Status::Discarded,
        ] {
            let row = finished(&submitted_at(0), terminal(status), 1).unwrap();
            assert_eq!(attempted(&row, attempt(9), 2), None, "{status}");
        }
    }

    #[test]
    fn terminal_write_sets_terminal_at_equal_to_updated_at() {
        let row = finished(&submitted_at(0), terminal(Status::Delivered), 5).unwrap();
        assert_eq!(row.status, Status::Delivered);
        assert_eq!(row.terminal_at, Some(5));
        assert_eq!(row.updated_at, 5);
        assert_eq!(row.http_status, Some(200));
    }

    #[test]
    fn first_terminal_write_wins() {
        let row = finished(&submitted_at(0), terminal(Status::Parked), 5).unwrap();
        for status in [
            Status::Delivered,
            Status::Parked,
            Status::Failed,
            Status::Discarded,
        ] {
            assert_eq!(finished(&row, terminal(status), 6), None);
        }
    }

    #[test]
    fn timestamps_never_go_back_when_the_clock_does() {
        let row = submitted_at(10_000);
        let tried = attempted(&row, attempt(1), 4_000).unwrap();
        assert_eq!(tried.updated_at, 10_000);
        let done = finished(&tried, terminal(Status::Failed), 3_000).unwrap();
        assert_eq!((done.updated_at, done.terminal_at), (10_000, Some(10_000)));
    }

    #[test]
    fn purge_boundary_is_strict() {
        let row = finished(&submitted_at(0), terminal(Status::Discarded), 100).unwrap();
        assert!(!is_purged_by(&row, 100));
        assert!(is_purged_by(&row, 101));
        assert!(!is_purged_by(&submitted_at(0), i64::MAX));
    }

    #[derive(Clone, Debug)]
    enum Call {
        Attempt(Status, u32, i64),
        Terminal(Status, i64),
    }

    fn call() -> impl Strategy<Value = Call> {
        let in_flight = prop_oneof![Just(Status::Submitted), Just(Status::Retrying)];
        let final_ = prop_oneof![
            Just(Status::Delivered),
            Just(Status::Parked),
            Just(Status::Failed),
            Just(Status::Discarded)
        ];
        prop_oneof![
            (in_flight, 0u32..20, -1_000i64..1_000).prop_map(|(s, n, t)| Call::Attempt(s, n, t)),
            (final_, -1_000i64..1_000).prop_map(|(s, t)| Call::Terminal(s, t)),
        ]
    }

    proptest! {
        /// Whatever order calls arrive in, the invariants of a row hold after
        /// each one: the retry count never falls, time never goes back,
        /// terminal-at is set exactly for terminal rows, and a terminal row
        /// never changes again.
        #[test]
        fn invariants_hold_for_any_sequence_of_calls(calls in prop::collection::vec(call(), 0..40)) {
            let mut row = submitted_at(0);
            for call in calls {
                let next = match &call {
                    Call::Attempt(status, count, now) => attempted(
                        &row,
                        Attempt { status: *status, retry_count: *count, last_error: None, http_status: None },
                        *now,
                    ),
                    Call::Terminal(status, now) => finished(
                        &row,
                        Terminal { status: *status, last_error: None, http_status: None },
                        *now,
                    ),
                };
                if let Some(next) = next {
                    prop_assert!(!row.status.is_terminal(), "a terminal row changed");
                    prop_assert!(next.retry_count >= row.retry_count);
                    prop_assert!(next.updated_at >= row.updated_at);
                    prop_assert_eq!(next.created_at, row.created_at);
                    prop_assert_eq!(next.terminal_at.is_some(), next.status.is_terminal());
                    row = next;
                }
            }
        }
    }
}
