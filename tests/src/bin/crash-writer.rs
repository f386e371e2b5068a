//! A child process for the crash test: writes full lifecycles from several
//! threads as fast as the store takes them, and prints one line per
//! acknowledged write (`E id`, `A id`, `T id` for enqueue, attempt,
//! terminal) until it is killed.
//!
//! Usage: crash-writer DB_PATH

use std::io::Write;

use tracking_host::{OperationStatus, StoreConfig, TrackingStore};

const THREADS: usize = 4;

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
    });
}

/// One line per acknowledgement, written whole, so that a kill leaves at
/// most a torn last line, which the test ignores.
fn ack(stage: char, id: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{stage} {id}");
    let _ = out.flush();
}
