//! The scheduled purge, with the store's clock moved by the test.

use std::time::{Duration, Instant};

use tracking_host::OperationStatus::*;
use tracking_host::{ManualClock, PurgeSchedule, StoreConfig, TrackingStore};
use tracking_tests::{T0, new_id, plugin};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn open(dir: &tempfile::TempDir, clock: &ManualClock, schedule: PurgeSchedule) -> TrackingStore {
    let config = StoreConfig::new(dir.path().join("tracking.db"))
        .clock(clock.clone())
        .purge(Some(schedule));
    TrackingStore::open(plugin(), config).unwrap()
}

/// Waits (in real time) until the purge thread has completed `runs` runs.
fn wait_for_runs(store: &TrackingStore, runs: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.purge_stats().runs < runs {
        assert!(
            Instant::now() < deadline,
            "the scheduled purge did not run: {:?}",
            store.purge_stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn scheduled_purge_deletes_rows_older_than_the_retention_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: 7 * DAY,
        interval: Duration::from_millis(20),
    };
    let store = open(&dir, &clock, schedule);

    let old = new_id();
    let in_flight = new_id();
    store
        .record_enqueue(&old, "Database.CachedWrite", None, None, None, None)
        .unwrap();
    store
        .record_enqueue(&in_flight, "Database.CachedWrite", None, None, None, None)
        .unwrap();
    store.record_terminal(&old, Delivered, None, None).unwrap();

    clock.advance(3 * DAY);
    let recent = new_id();
    store
        .record_enqueue(&recent, "ExternalSystem.CachedCall", None, None, None, None)
        .unwrap();
    store
        .record_terminal(&recent, Failed, Some("422"), Some(422))
        .unwrap();

    // Day 7 + 1 ms after `old` became terminal: only `old` is past retention.
    clock.set(T0 + 7 * 86_400_000 + 1);
    let runs = store.purge_stats().runs;
    wait_for_runs(&store, runs + 2);

    assert_eq!(store.get_status(&old).unwrap(), None);
    assert_eq!(store.get_status(&recent).unwrap().unwrap().status, Failed);
    assert_eq!(
        store.get_status(&in_flight).unwrap().unwrap().status,
        Submitted
    );
    let stats = store.purge_stats();
    assert_eq!(stats.deleted, 1);
    assert_eq!(stats.failures, 0);
    assert_eq!(stats.last.unwrap().older_than, T0 + 1);

    // Much later the recent row goes too, but a row in flight never does.
    clock.advance(30 * DAY);
    wait_for_runs(&store, store.purge_stats().runs + 2);
    assert_eq!(store.get_status(&recent).unwrap(), None);
    assert!(store.get_status(&in_flight).unwrap().is_some());
}

#[test]
fn a_row_exactly_at_the_retention_boundary_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: 7 * DAY,
        interval: Duration::from_millis(20),
    };
    let store = open(&dir, &clock, schedule);
    let id = new_id();
    store
        .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
        .unwrap();
    store.record_terminal(&id, Parked, None, None).unwrap();

    clock.advance(7 * DAY);
    wait_for_runs(&store, store.purge_stats().runs + 2);
    assert!(store.get_status(&id).unwrap().is_some());
}

#[test]
fn the_first_purge_runs_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: DAY,
        interval: Duration::from_secs(3600),
    };
    let store = open(&dir, &clock, schedule);
    wait_for_runs(&store, 1);
    assert_eq!(
        store.purge_stats().last.unwrap().older_than,
        T0 - 86_400_000
    );
}

#[test]
fn dropping_the_store_stops_the_purge_thread_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: DAY,
        interval: Duration::from_secs(3600),
    };
    let store = open(&dir, &clock, schedule);
    wait_for_runs(&store, 1);

    let started = Instant::now();
    drop(store);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop waited for the interval"
    );
    // The file is free again: another store opens it and writes.
    let again = open(&dir, &clock, schedule);
    assert!(
        again
            .record_enqueue(&new_id(), "k", None, None, None, None)
            .unwrap()
    );
}
