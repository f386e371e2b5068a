//! Long runs do not leak: neither the component's linear memory nor the
//! host's resident memory keeps growing over many calls.

use tracking_host::OperationStatus::Submitted;
use tracking_host::{StoreConfig, TrackingStore};
use tracking_tests::{new_id, plugin};

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn alternate(store: &TrackingStore, calls: usize, ids: &mut Vec<String>) {
    for n in 0..calls / 2 {
        let id = new_id();
        store
            .record_enqueue(
                &id,
                "ExternalSystem.CachedCall",
                Some("POST /orders"),
                None,
                None,
                None,
            )
            .unwrap();
        let probe = &ids[n % ids.len()];
        store.get_status(probe).unwrap();
        ids.push(id);
    }
}

/// As [`alternate`], with the writes queued eight at a time through the
/// async methods (and so led by the writer's relay thread) before the
/// reads.
fn alternate_queued(store: &TrackingStore, calls: usize, ids: &mut Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..calls / 16 {
        let fresh: Vec<String> = (0..8).map(|_| new_id()).collect();
        let queued: Vec<_> = fresh
            .iter()
            .map(|id| {
                store.record_enqueue_async(id, "Database.CachedWrite", None, None, None, None)
            })
            .collect();
        runtime.block_on(async {
            for write in queued {
                assert!(write.await.unwrap());
            }
        });
        for n in 0..8 {
            store.get_status(&ids[n * 7 % ids.len()]).unwrap();
        }
        ids.extend(fresh);
    }
}

fn assert_bounded(what: &str, (guest_before, host_before): (usize, usize), store: &TrackingStore) {
    let (guest_after, host_after) = (store.stats().guest_memory, resident_bytes());
    assert!(guest_before > 0, "the guest's memory is measured");
    assert!(
        guest_after <= guest_before + (1 << 20),
        "{what}: guest memory grew from {guest_before} to {guest_after} bytes"
    );
    assert!(
        host_after <= host_before + (16 << 20),
        "{what}: host resident memory grew from {host_before} to {host_after} bytes"
    );
}

#[test]
fn twenty_thousand_alternating_calls_grow_neither_guest_nor_host_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path().join("tracking.db")).purge(None);
    let store = TrackingStore::open(plugin(), config).unwrap();
    let mut ids = vec![new_id()];

    // Warm up: SQLite's page caches and the allocators reach their working
    // size.
    alternate(&store, 4_000, &mut ids);
    let guest_before = store.stats().guest_memory;
    let host_before = resident_bytes();

    alternate(&store, 20_000, &mut ids);
    assert_bounded("blocking calls", (guest_before, host_before), &store);

    alternate_queued(&store, 4_000, &mut ids);
    let before = (store.stats().guest_memory, resident_bytes());
    alternate_queued(&store, 20_000, &mut ids);
    assert_bounded("queued writes", before, &store);

    let last = ids.last().unwrap();
    assert_eq!(store.get_status(last).unwrap().unwrap().status, Submitted);
}
