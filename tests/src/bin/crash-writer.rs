//! A child process for the crash test: writes full lifecycles from several
//! threads as fast as the store takes them, and prints one line per
//! acknowledged write (`E id`, `A id`, `T id` for enqueue, attempt,
//! terminal) until it is killed. Some threads block on each write; others
//! queue a step of several lifecycles at once through the `*_async` writes
//! and acknowledge each write as its future completes, in lower case
//! (`e id`, `a id`, `t id`).
//!
//! Usage: crash-writer DB_PATH

use std::io::Write;

use tracking_host::{OperationStatus, StoreConfig, TrackingStore};
use tracking_tests::queued_lifecycles;

const THREADS: usize = 4;
const QUEUEING_THREADS: usize = 2;
/// Lifecycles a queueing thread has in flight at once.
const AT_ONCE: usize = 8;

fn main() {
    let db = std::env::args()
        .nth(1)
        .expect("usage: crash-writer DB_PATH");
    let store = TrackingStore::open(tracking_tests::plugin(), StoreConfig::new(db).purge(None))
        .expect("open the store");

    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let store = store.clone();
            scope.spawn(move || {
                loop {
                    let id = tracking_tests::new_id();
                    store
                        .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
                        .unwrap();
                    ack('E', &id);
                    store
                        .record_attempt(&id, OperationStatus::Retrying, 1, Some("busy"), None)
                        .unwrap();
                    ack('A', &id);
                    store
                        .record_terminal(&id, OperationStatus::Delivered, None, None)
                        .unwrap();
                    ack('T', &id);
                }
            });
        }
        for _ in 0..QUEUEING_THREADS {
            let store = store.clone();
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime");
                loop {
                    let ids: Vec<String> = (0..AT_ONCE).map(|_| tracking_tests::new_id()).collect();
                    runtime.block_on(queued_lifecycles(&store, &ids, |step, id| {
                        ack(step.to_ascii_lowercase(), id)
                    }));
                }
            });
        }
    });
}

/// One line per acknowledgement, written whole, so that a kill leaves at
/// most a torn last line, which the test ignores.
fn ack(stage: char, id: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{stage} {id}");
    let _ = out.flush();
}
