//! Writes queued without blocking (the `*_async` methods): the answers a
//! blocking caller would get, in the order the writes were queued, shared
//! commits, and nothing lost when a future or the store is dropped early.

use std::time::Duration;

use tracking_host::OperationStatus::*;
use tracking_host::{Error, Pending, StoreConfig, TrackingStore};
use tracking_tests::{TestStore, new_id, plugin, queued_lifecycles, rogue_store};

fn enqueue(store: &TrackingStore, id: &str) -> Pending<bool> {
    store.record_enqueue_async(id, "Database.CachedWrite", None, None, None, None)
}

#[tokio::test]
async fn writes_queued_at_once_are_answered_in_the_order_they_were_queued() {
    let test = TestStore::new();
    let store = &test.store;
    let id = new_id();
    // Nothing is awaited until all five are queued: each answer must be the
    // one it would be had the calls been made one at a time.
    let pending = vec![
        enqueue(store, &id),
        store.record_attempt_async(&id, Retrying, 2, Some("503"), Some(503)),
        store.record_attempt_async(&id, Retrying, 1, Some("late"), None),
        store.record_terminal_async(&id, Delivered, None, Some(200)),
        store.record_terminal_async(&id, Failed, Some("too late"), None),
        enqueue(store, &id),
    ];
    let mut answers = Vec::new();
    for write in pending {
        answers.push(write.await.unwrap());
    }
    assert_eq!(answers, [true, true, false, true, false, false]);

    let row = store.get_status(&id).unwrap().unwrap();
    assert_eq!(row.status, Delivered);
    assert_eq!(row.retry_count, 2);
    assert_eq!(row.last_error, None, "the terminal write sets it, to none");
    assert_eq!(row.http_status, Some(200));
}

#[tokio::test]
async fn one_thread_queueing_many_writes_shares_commits_between_them() {
    let test = TestStore::new();
    let ids: Vec<String> = (0..200).map(|_| new_id()).collect();
    let pending: Vec<_> = ids.iter().map(|id| enqueue(&test.store, id)).collect();
    for write in pending {
        assert!(write.await.unwrap());
    }
    let stats = test.store.stats();
    assert_eq!(stats.operations, 200);
    // A commit takes far longer than queueing a write, so while the first
    // commits run the rest pile up behind them.
    assert!(
        stats.commits < 200 && stats.largest_batch > 1,
        "200 writes queued from one thread took {} commits",
        stats.commits
    );
    assert_eq!(test.row_count(), 200);
}

#[tokio::test]
async fn a_refused_write_among_queued_ones_fails_alone() {
    let test = TestStore::new();
    let (before, after) = (new_id(), new_id());
    let pending = [
        enqueue(&test.store, &before),
        test.store
            .record_enqueue_async(&new_id(), "", None, None, None, None),
        test.store
            .record_attempt_async(&before, Retrying, 1, None, Some(600)),
        enqueue(&test.store, &after),
    ];
    let mut answers = Vec::new();
    for write in pending {
        answers.push(write.await);
    }
    assert!(matches!(answers[0], Ok(true)));
    match &answers[1] {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "kind"),
        other => panic!("an empty kind was answered {other:?}"),
    }
    match &answers[2] {
        Err(Error::InvalidInput { field, rule }) => {
            assert_eq!(field, "http-status");
            assert!(rule.contains("100..=599"), "{rule}");
        }
        other => panic!("http 600 was answered {other:?}"),
    }
    assert!(matches!(answers[3], Ok(true)));
    assert_eq!(test.row_count(), 2);
    let row = test.store.get_status(&before).unwrap().unwrap();
    assert_eq!((row.status, row.retry_count), (Submitted, 0));
}

#[tokio::test]
async fn a_dropped_future_does_not_withdraw_its_write() {
    let test = TestStore::new();
    let id = new_id();
    drop(enqueue(&test.store, &id));
    // Queued behind the dropped one, so answered only once it is committed.
    assert!(
        test.store
            .record_attempt_async(&id, Retrying, 1, None, None)
            .await
            .unwrap()
    );
    assert_eq!(test.store.get_status(&id).unwrap().unwrap().retry_count, 1);
}

#[test]
fn dropping_the_store_commits_what_was_queued_and_answers_it() {
    let test = TestStore::new();
    let ids: Vec<String> = (0..100).map(|_| new_id()).collect();
    let pending: Vec<_> = ids.iter().map(|id| enqueue(&test.store, id)).collect();
    let TestStore { store, clock, dir } = test;
    drop(store);
    // Committed by the time the drop returns, whether or not anyone awaits.
    let conn = rusqlite::Connection::open(dir.path().join("tracking.db")).unwrap();
    let committed: i64 = conn
        .query_row("SELECT count(*) FROM operations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(committed, 100);
    drop(conn);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        for write in pending {
            // Far longer than the commits take: this only turns a write
            // that is never answered into a failure instead of a hang.
            let answer = tokio::time::timeout(Duration::from_secs(60), write).await;
            assert!(
                answer
                    .expect("no answer after the store was dropped")
                    .unwrap()
            );
        }
    });
    let reopened = TestStore {
        store: TrackingStore::open(plugin(), TestStore::config(&dir, &clock)).unwrap(),
        clock,
        dir,
    };
    assert_eq!(reopened.row_count(), 100);
    for id in &ids {
        assert!(reopened.store.get_status(id).unwrap().is_some());
    }
}

#[tokio::test]
async fn a_read_only_store_refuses_queued_writes() {
    let test = TestStore::new();
    let config = StoreConfig::new(test.path()).read_only(true).purge(None);
    let reader = TrackingStore::open(plugin(), config).unwrap();
    let answer = enqueue(&reader, &new_id()).await;
    assert!(matches!(answer, Err(Error::ReadOnly)), "{answer:?}");
    assert_eq!(test.row_count(), 0);
}

#[tokio::test]
async fn a_trap_in_a_queued_write_costs_that_write_only() {
    let (dir, store) = rogue_store();
    let ok: Vec<String> = (0..20).map(|_| new_id()).collect();
    let mut pending = Vec::new();
    for (n, id) in ok.iter().enumerate() {
        pending.push((
            true,
            store.record_enqueue_async(id, "ok", None, None, None, None),
        ));
        if n % 5 == 0 {
            let trap = store.record_enqueue_async(&new_id(), "trap", None, None, None, None);
            pending.push((false, trap));
        }
    }
    for (fine, write) in pending {
        match write.await {
            Ok(changed) => assert!(fine && changed),
            Err(Error::Trap(_)) => assert!(!fine),
            Err(other) => panic!("{other:?}"),
        }
    }
    // The rogue notes each id it is given before it acts on it; a trapped
    // call's note is rolled back with it.
    let conn = rusqlite::Connection::open(dir.path().join("tracking.db")).unwrap();
    let notes: Vec<String> = conn
        .prepare("SELECT note FROM rogue ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(notes, ok);
    assert_eq!(store.stats().traps, 4);
}

#[test]
fn the_futures_can_cross_threads() {
    fn sendable<T: Send + Sync + Unpin + 'static>() {}
    sendable::<Pending<bool>>();
    sendable::<TrackingStore>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_blocking_threads_writing_together_end_with_exact_counts() {
    const TASKS: usize = 16;
    /// Lifecycles a task has in flight at once.
    const AT_ONCE: usize = 4;
    const ROUNDS: usize = 12;
    const THREADS: usize = 4;
    const LIFECYCLES: usize = 50;
    let test = TestStore::new();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let store = test.store.clone();
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                let ids: Vec<String> = (0..AT_ONCE).map(|_| new_id()).collect();
                queued_lifecycles(&store, &ids, |_, _| {}).await;
            }
        });
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = test.store.clone();
            std::thread::spawn(move || {
                for _ in 0..LIFECYCLES {
                    let id = new_id();
                    let kind = "Database.CachedWrite";
                    assert!(
                        store
                            .record_enqueue(&id, kind, None, None, None, None)
                            .unwrap()
                    );
                    assert!(store.record_attempt(&id, Retrying, 1, None, None).unwrap());
                    let parked = store.record_terminal(&id, Parked, Some("gave up"), None);
                    assert!(parked.unwrap());
                }
            })
        })
        .collect();
    // Far longer than the writes take: this only turns a hang into a
    // failure.
    let all_tasks = async {
        while let Some(task) = tasks.join_next().await {
            task.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_tasks)
        .await
        .expect("the tasks' writes were not all answered");
    for thread in threads {
        thread.join().unwrap();
    }

    let conn = rusqlite::Connection::open(test.path()).unwrap();
    let count = |status: &str| -> usize {
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM operations WHERE status = ?1 AND retry_count = 1",
                [status],
                |r| r.get(0),
            )
            .unwrap();
        rows as usize
    };
    assert_eq!(count("delivered"), TASKS * ROUNDS * AT_ONCE);
    assert_eq!(count("parked"), THREADS * LIFECYCLES);
    let lifecycles = TASKS * ROUNDS * AT_ONCE + THREADS * LIFECYCLES;
    assert_eq!(test.row_count(), lifecycles as i64);
    assert_eq!(test.store.stats().operations, (lifecycles * 3) as u64);
}
