//! Many callers at once: group commit, readers beside the writer, purges in
//! the middle, and traps that cost one call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracking_host::OperationStatus::*;
use tracking_host::{Error, ManualClock, PurgeSchedule, StoreConfig, TrackingStore};
use tracking_tests::{T0, new_id, plugin, rogue_store};

const DAY_MS: i64 = 86_400_000;

fn count(path: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn stress_of_lifecycles_duplicate_enqueues_and_purges_ends_with_exact_counts() {
    const WRITERS: usize = 8;
    const LIFECYCLES: usize = 500;
    const SHARED: usize = 500;
    const OLD: usize = 3_000;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: Duration::from_secs(86_400),
        interval: Duration::from_millis(5),
    };
    let config = StoreConfig::new(&path)
        .clock(clock.clone())
        .purge(Some(schedule));
    let store = TrackingStore::open(plugin(), config).unwrap();

    // Rows that became terminal ten days ago: the purges must take all of
    // them while the writers run, and nothing else.
    clock.set(T0 - 10 * DAY_MS);
    for _ in 0..OLD {
        let id = new_id();
        store
            .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
            .unwrap();
        store.record_terminal(&id, Discarded, None, None).unwrap();
    }
    clock.set(T0);

    let shared: Vec<String> = (0..SHARED).map(|_| new_id()).collect();
    let inserted_shared = AtomicU64::new(0);
    let purged_by_loop = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let lifecycles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || {
                    for _ in 0..LIFECYCLES {
                        let id = new_id();
                        assert!(
                            store
                                .record_enqueue(
                                    &id,
                                    "ExternalSystem.CachedCall",
                                    Some("POST /x"),
                                    None,
                                    None,
                                    None
                                )
                                .unwrap()
                        );
                        assert!(
                            store
                                .record_attempt(&id, Retrying, 1, Some("503"), Some(503))
                                .unwrap()
                        );
                        assert!(
                            store
                                .record_attempt(&id, Retrying, 2, Some("429"), Some(429))
                                .unwrap()
                        );
                        assert!(
                            !store
                                .record_attempt(&id, Retrying, 1, Some("late"), None)
                                .unwrap()
                        );
                        assert!(
                            store
                                .record_terminal(&id, Delivered, None, Some(200))
                                .unwrap()
                        );
                        assert_eq!(store.get_status(&id).unwrap().unwrap().status, Delivered);
                    }
                })
            })
            .collect();
        let duplicates: Vec<_> = (0..WRITERS)
            .map(|n| {
                let (store, shared, inserted) = (store.clone(), &shared, &inserted_shared);
                scope.spawn(move || {
                    // Each thread walks the ids from another starting point.
                    for k in 0..SHARED {
                        let id = &shared[(k + n * 61) % SHARED];
                        if store
                            .record_enqueue(id, "Database.CachedWrite", None, None, None, None)
                            .unwrap()
                        {
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let purger = {
            let (store, purged, done) = (store.clone(), &purged_by_loop, &done);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    purged.fetch_add(
                        store.purge_terminal(T0 - DAY_MS).unwrap(),
                        Ordering::Relaxed,
                    );
                }
            })
        };
        for handle in lifecycles.into_iter().chain(duplicates) {
            handle.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        purger.join().unwrap();
    });

    // Whatever is left of the old rows goes in one more purge.
    let purged_at_end = store.purge_terminal(T0 - DAY_MS).unwrap();
    let stats = store.stats();
    assert_eq!(
        purged_by_loop.load(Ordering::Relaxed) + stats.purge.deleted + purged_at_end,
        OLD as u64,
        "every old row was purged exactly once"
    );
    assert_eq!(stats.purge.failures, 0);
    assert_eq!(
        inserted_shared.load(Ordering::Relaxed),
        SHARED as u64,
        "one insert per shared id"
    );
    for id in &shared {
        assert_eq!(store.get_status(id).unwrap().unwrap().status, Submitted);
    }
    drop(store);

    assert_eq!(
        count(&path, "SELECT count(*) FROM operations"),
        (WRITERS * LIFECYCLES + SHARED) as i64
    );
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM operations WHERE status = 'delivered' AND retry_count = 2"
        ),
        (WRITERS * LIFECYCLES) as i64
    );
    assert_eq!(
        count(&path, "SELECT count(DISTINCT id) FROM operations"),
        count(&path, "SELECT count(*) FROM operations")
    );
}

#[test]
fn every_acknowledged_write_is_already_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let store = TrackingStore::open(plugin(), StoreConfig::new(&path).purge(None)).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (store, path) = (store.clone(), &path);
            scope.spawn(move || {
                let outside = rusqlite::Connection::open(path).unwrap();
                for _ in 0..50 {
                    let id = new_id();
                    store
                        .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
                        .unwrap();
                    let seen: i64 = outside
                        .query_row(
                            "SELECT count(*) FROM operations WHERE id = ?1",
                            [&id],
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(
                        seen, 1,
                        "another connection sees the write once it is acknowledged"
                    );
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(stats.operations, 200, "every write is counted once");
    assert!(stats.commits <= stats.operations);
}

#[test]
fn one_commit_per_operation_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path().join("tracking.db"))
        .purge(None)
        .max_batch(1);
    let store = TrackingStore::open(plugin(), config).unwrap();
    let id = new_id();
    let answers: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (store, id) = (store.clone(), &id);
                scope.spawn(move || {
                    store
                        .record_enqueue(id, "k", None, None, None, None)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers.iter().filter(|inserted| **inserted).count(), 1);
    let stats = store.stats();
    assert_eq!(
        (stats.largest_batch, stats.commits, stats.operations),
        (1, 8, 8)
    );
}

#[test]
fn an_error_in_one_operation_of_a_group_leaves_the_others_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let store = TrackingStore::open(plugin(), StoreConfig::new(&path).purge(None)).unwrap();
    let results: Vec<Result<bool, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|n| {
                let store = store.clone();
                scope.spawn(move || {
                    let http = if n % 4 == 0 { Some(999) } else { Some(503) };
                    let id = new_id();
                    store.record_enqueue(&id, "k", None, None, None, None)?;
                    store.record_terminal(&id, Failed, None, http)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 24);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().is_err_and(Error::is_invalid_input))
            .count(),
        8
    );
    drop(store);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM operations WHERE status = 'failed'"
        ),
        24
    );
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM operations WHERE status = 'submitted'"
        ),
        8
    );
}

#[test]
fn a_trap_costs_one_call_while_other_threads_are_served() {
    let (_dir, store) = rogue_store();
    let ok_calls = 4 * 150;
    std::thread::scope(|scope| {
        let trapper = {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..40 {
                    let error = store
                        .record_enqueue(&new_id(), "trap", None, None, None, None)
                        .unwrap_err();
                    assert!(matches!(error, Error::Trap(_)), "{error:?}");
                }
            })
        };
        for _ in 0..4 {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..150 {
                    assert!(
                        store
                            .record_enqueue(&new_id(), "ok", None, None, None, None)
                            .unwrap()
                    );
                }
            });
        }
        trapper.join().unwrap();
    });
    let written = store.get_status(&new_id()).unwrap().unwrap().retry_count;
    assert_eq!(
        written as usize, ok_calls,
        "no trapped write was kept, no other write was lost"
    );
    assert_eq!(store.stats().traps, 40);
}

#[test]
fn purges_reclaim_the_space_of_deleted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let clock = ManualClock::new(T0);
    let schedule = PurgeSchedule {
        retention: Duration::from_secs(1),
        interval: Duration::from_millis(10),
    };
    let config = StoreConfig::new(&path)
        .clock(clock.clone())
        .purge(Some(schedule));
    let store = TrackingStore::open(plugin(), config).unwrap();

    let big = "x".repeat(1000);
    let mut sizes = Vec::new();
    for round in 0..4 {
        for _ in 0..3_000 {
            let id = new_id();
            store
                .record_enqueue(&id, "k", Some(&big), None, None, None)
                .unwrap();
            store
                .record_terminal(&id, Delivered, Some(&big), None)
                .unwrap();
        }
        clock.advance(Duration::from_secs(10));
        let target = (round + 1) * 3_000;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while store.purge_stats().deleted < target {
            assert!(
                std::time::Instant::now() < deadline,
                "purge fell behind: {:?}",
                store.purge_stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let the reclaim that follows the purge finish.
        let runs = store.purge_stats().runs;
        while store.purge_stats().runs < runs + 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    let wal = std::fs::metadata(dir.path().join("tracking.db-wal")).map_or(0, |m| m.len());
    assert!(
        sizes[3] <= sizes[0] * 2,
        "the file keeps growing under churn: {sizes:?}"
    );
    assert!(wal < 16 << 20, "the log is checkpointed: {wal} bytes");
    assert_eq!(count(&path, "SELECT count(*) FROM operations"), 0);
}

/// Runs `threads` callers through `lifecycles` lifecycles each, with rows
/// of about 4 KB, and returns the most bytes the log's file was seen to
/// hold (it is cut back each time the log starts again, so it is watched
/// throughout).
fn longest_log(threads: usize, lifecycles: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let config = StoreConfig::new(&path).purge(None).max_batch(256);
    let store = TrackingStore::open(plugin(), config).unwrap();
    let summary = "s".repeat(1000);
    let big = "e".repeat(3000);
    let wal = dir.path().join("tracking.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let done = std::sync::atomic::AtomicBool::new(false);

    let longest = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut longest = 0;
            while !done.load(Ordering::Relaxed) {
                longest = longest.max(size());
                std::thread::sleep(Duration::from_millis(1));
            }
            longest.max(size())
        });
        let callers: Vec<_> = (0..threads)
            .map(|_| {
                let store = store.clone();
                let (summary, big) = (&summary, &big);
                scope.spawn(move || {
                    for _ in 0..lifecycles {
                        let id = new_id();
                        store
                            .record_enqueue(&id, "k", Some(summary), None, None, None)
                            .unwrap();
                        store
                            .record_attempt(&id, Retrying, 1, Some(big), Some(503))
                            .unwrap();
                        store
                            .record_terminal(&id, Delivered, Some(big), Some(200))
                            .unwrap();
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM operations WHERE status = 'delivered'"
        ),
        (threads * lifecycles) as i64
    );
    longest
}

#[test]
fn the_log_stays_short_under_a_steady_stream_of_commits() {
    // With nothing but passive checkpoints beside the writer, a stream of
    // commits leaves no gap in which the log can start again, and it grows
    // for as long as the stream lasts: by 140 MB here.
    let longest = longest_log(8, 500);
    assert!(longest < 16 << 20, "the log grew to {longest} bytes");
}

#[test]
fn the_log_stays_short_when_each_commit_holds_hundreds_of_pages() {
    // 160 callers fill commits of a few hundred pages each, more than the
    // few pages the checkpoint thread may be short by for the writer to
    // catch up in line; it catches up once the thread has copied all but
    // the latest commit.
    let longest = longest_log(160, 30);
    assert!(longest < 32 << 20, "the log grew to {longest} bytes");
}
