//! Bad input, field by field: a clear error naming the field and the rule,
//! and the row exactly as it was.

use tracking_host::Error;
use tracking_host::OperationStatus::*;
use tracking_tests::{TestStore, new_id};

/// Longest optional field and last error the component keeps (its limits).
const MAX_FIELD_BYTES: usize = 1024;
const MAX_LAST_ERROR_BYTES: usize = 4096;

fn field_of<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidInput { field, rule }) => (field, rule),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// A store with one row in flight, and that row's snapshot.
fn with_row() -> (TestStore, String, tracking_host::OperationSnapshot) {
    let t = TestStore::new();
    let id = new_id();
    t.enqueue(&id);
    t.store
        .record_attempt(&id, Retrying, 2, Some("503"), Some(503))
        .unwrap();
    let snapshot = t.store.get_status(&id).unwrap().unwrap();
    (t, id, snapshot)
}

#[test]
fn malformed_id_is_refused_naming_the_id() {
    let t = TestStore::new();
    for bad in [
        "",
        "42",
        "not-a-uuid",
        "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6",
        "🦀",
    ] {
        let (field, rule) = field_of(t.store.record_enqueue(
            bad,
            "ExternalSystem.CachedCall",
            None,
            None,
            None,
            None,
        ));
        assert_eq!(field, "id");
        assert!(rule.contains("UUID"), "{rule}");
        assert_eq!(field_of(t.store.get_status(bad)).0, "id");
        assert_eq!(
            field_of(t.store.record_attempt(bad, Retrying, 1, None, None)).0,
            "id"
        );
        assert_eq!(
            field_of(t.store.record_terminal(bad, Failed, None, None)).0,
            "id"
        );
    }
}

#[test]
fn empty_or_oversized_kind_is_refused_and_nothing_is_inserted() {
    let t = TestStore::new();
    let id = new_id();
    for bad in [
        String::new(),
        " ".into(),
        "k".repeat(129),
        "two\nlines".into(),
    ] {
        let (field, _) = field_of(t.store.record_enqueue(&id, &bad, None, None, None, None));
        assert_eq!(field, "kind");
    }
    assert_eq!(t.store.get_status(&id).unwrap(), None);
}

#[test]
fn oversized_optional_fields_are_refused_naming_each_field() {
    let t = TestStore::new();
    let id = new_id();
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    let kind = "ExternalSystem.CachedCall";
    let cases = [
        (
            "target-summary",
            t.store
                .record_enqueue(&id, kind, Some(&long), None, None, None),
        ),
        (
            "source-instance-id",
            t.store
                .record_enqueue(&id, kind, None, Some(&long), None, None),
        ),
        (
            "source-script",
            t.store
                .record_enqueue(&id, kind, None, None, Some(&long), None),
        ),
        (
            "source-node",
            t.store
                .record_enqueue(&id, kind, None, None, None, Some(&long)),
        ),
    ];
    for (expected, result) in cases {
        let (field, rule) = field_of(result);
        assert_eq!(field, expected);
        assert!(rule.contains("1024"), "the rule names the limit: {rule}");
    }
    assert_eq!(t.store.get_status(&id).unwrap(), None);
    assert!(
        t.store
            .record_enqueue(&id, kind, Some(&long[1..]), None, None, None)
            .unwrap()
    );
}

#[test]
fn terminal_status_in_an_attempt_is_refused_and_the_row_is_unchanged() {
    let (t, id, before) = with_row();
    for status in [Delivered, Parked, Failed, Discarded] {
        let (field, rule) = field_of(t.store.record_attempt(&id, status, 3, None, None));
        assert_eq!(field, "status");
        assert!(rule.contains("record-terminal"), "{rule}");
    }
    assert_eq!(t.store.get_status(&id).unwrap().unwrap(), before);
}

#[test]
fn in_flight_status_in_a_terminal_write_is_refused_and_the_row_is_unchanged() {
    let (t, id, before) = with_row();
    for status in [Submitted, Retrying] {
        assert_eq!(
            field_of(t.store.record_terminal(&id, status, None, None)).0,
            "status"
        );
    }
    assert_eq!(t.store.get_status(&id).unwrap().unwrap(), before);
}

#[test]
fn http_status_outside_100_to_599_is_refused_and_the_row_is_unchanged() {
    let (t, id, before) = with_row();
    for bad in [0, 99, 600, 65_535] {
        let (field, rule) = field_of(t.store.record_attempt(&id, Retrying, 3, None, Some(bad)));
        assert_eq!(field, "http-status");
        assert!(rule.contains("100..=599"), "{rule}");
        assert_eq!(
            field_of(t.store.record_terminal(&id, Delivered, None, Some(bad))).0,
            "http-status"
        );
    }
    assert_eq!(t.store.get_status(&id).unwrap().unwrap(), before);
    assert!(
        t.store
            .record_attempt(&id, Retrying, 3, None, Some(599))
            .unwrap()
    );
    assert!(
        t.store
            .record_terminal(&id, Delivered, None, Some(100))
            .unwrap()
    );
}

#[test]
fn over_long_last_error_is_cut_at_a_character_boundary_and_marked() {
    let (t, id, _) = with_row();
    // Four-byte characters, so the limit falls inside one of them.
    let error = "🦀".repeat(MAX_LAST_ERROR_BYTES);
    assert!(
        t.store
            .record_attempt(&id, Retrying, 3, Some(&error), Some(503))
            .unwrap()
    );

    let kept = t
        .store
        .get_status(&id)
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert!(kept.len() <= MAX_LAST_ERROR_BYTES, "{} bytes", kept.len());
    assert!(kept.ends_with("…[cut]"), "marked as cut");
    assert!(kept.trim_end_matches("…[cut]").chars().all(|c| c == '🦀'));
    assert!(
        kept.len() > MAX_LAST_ERROR_BYTES - 16,
        "cut no more than needed"
    );
}

#[test]
fn over_long_last_error_on_a_terminal_write_is_cut_too() {
    let (t, id, _) = with_row();
    let error = "é".repeat(MAX_LAST_ERROR_BYTES);
    assert!(
        t.store
            .record_terminal(&id, Parked, Some(&error), None)
            .unwrap()
    );
    let kept = t
        .store
        .get_status(&id)
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert!(kept.len() <= MAX_LAST_ERROR_BYTES && kept.ends_with("…[cut]"));
}

#[test]
fn huge_and_odd_input_never_breaks_the_store() {
    let (t, id, before) = with_row();
    let huge = "\u{0}".repeat(8 << 20);
    assert!(
        t.store
            .record_enqueue(&huge, &huge, Some(&huge), None, None, None)
            .is_err()
    );
    assert!(
        t.store
            .record_attempt(&id, Retrying, u32::MAX, Some(&huge), None)
            .unwrap()
    );
    let after = t.store.get_status(&id).unwrap().unwrap();
    assert_eq!(after.retry_count, u32::MAX);
    assert_ne!(after, before);
    assert!(after.last_error.unwrap().len() <= MAX_LAST_ERROR_BYTES);

    // Still fully usable afterwards.
    let other = new_id();
    assert!(t.enqueue(&other));
    assert!(
        t.store
            .record_terminal(&other, Delivered, None, None)
            .unwrap()
    );
}

#[test]
fn error_messages_name_the_field_and_the_rule() {
    let (t, id, _) = with_row();
    let error = t
        .store
        .record_attempt(&id, Retrying, 3, None, Some(700))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid http-status: must be within 100..=599, got 700"
    );
    assert!(error.is_invalid_input());
}

/// Texts larger than the component's whole memory (64 MiB by default)
/// could not even be copied into it: the host refuses them, naming the
/// field, or cuts an error text as the component would.
#[test]
fn arguments_too_large_for_the_component_are_refused_or_cut_before_reaching_it() {
    let (t, id, before) = with_row();
    let huge = "x".repeat(80 << 20);
    let refused = [
        (
            "kind",
            t.store
                .record_enqueue(&new_id(), &huge, None, None, None, None),
        ),
        (
            "id",
            t.store.record_enqueue(&huge, "ok", None, None, None, None),
        ),
        (
            "target-summary",
            t.store
                .record_enqueue(&new_id(), "ok", Some(&huge), None, None, None),
        ),
        (
            "source-instance-id",
            t.store
                .record_enqueue(&new_id(), "ok", None, Some(&huge), None, None),
        ),
        (
            "source-script",
            t.store
                .record_enqueue(&new_id(), "ok", None, None, Some(&huge), None),
        ),
        (
            "source-node",
            t.store
                .record_enqueue(&new_id(), "ok", None, None, None, Some(&huge)),
        ),
        ("id", t.store.record_terminal(&huge, Failed, None, None)),
    ];
    for (field, result) in refused {
        let (named, rule) = field_of(result);
        assert_eq!(named, field);
        assert!(
            rule.contains(&tracking_host::MAX_ARGUMENT_BYTES.to_string()),
            "{rule}"
        );
    }
    let (named, _) = field_of(t.store.get_status(&huge));
    assert_eq!(named, "id");
    let (named, _) = field_of(ready_now(t.store.record_enqueue_async(
        &new_id(),
        &huge,
        None,
        None,
        None,
        None,
    )));
    assert_eq!(named, "kind");
    assert_eq!(t.store.get_status(&id).unwrap().unwrap(), before);
    assert_eq!(t.row_count(), 1, "nothing was inserted");

    // An error text is cut, not refused: the attempt is recorded.
    assert!(
        t.store
            .record_attempt(&id, Retrying, 3, Some(&huge), None)
            .unwrap()
    );
    let kept = t
        .store
        .get_status(&id)
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert!(kept.len() <= MAX_LAST_ERROR_BYTES && kept.ends_with("…[cut]"));
    assert!(
        t.store
            .record_terminal(&id, Delivered, Some(&huge), None)
            .unwrap()
    );
    assert_eq!(
        t.store.stats().traps,
        0,
        "nothing reached the component to trap it"
    );
}

/// A refused write's future is ready at once; no executor is needed.
fn ready_now<T>(future: tracking_host::Pending<T>) -> Result<T, Error> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut future = future;
    match std::pin::Pin::new(&mut future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(answer) => answer,
        Poll::Pending => panic!("a refused write was queued"),
    }
}

#[test]
fn a_store_with_no_reader_or_an_empty_batch_is_refused_naming_the_setting() {
    let t = TestStore::new();
    for (config, setting) in [
        (TestStore::config(&t.dir, &t.clock).readers(0), "readers"),
        (
            TestStore::config(&t.dir, &t.clock).max_batch(0),
            "max_batch",
        ),
    ] {
        let (field, rule) = field_of(tracking_host::TrackingStore::open(
            tracking_tests::plugin(),
            config,
        ));
        assert_eq!(field, setting);
        assert_eq!(rule, "must be at least 1, got 0");
    }
    assert!(t.enqueue(&new_id()), "the open store is untouched");
}
