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
    let guest_after = store.stats().guest_memory;
    let host_after = resident_bytes();

    assert!(guest_before > 0, "the guest's memory is measured");
    assert!(
        guest_after <= guest_before + (1 << 20),
        "guest memory grew from {guest_before} to {guest_after} bytes"
    );
    assert!(
        host_after <= host_before + (16 << 20),
        "host resident memory grew from {host_before} to {host_after} bytes"
    );
    let last = ids.last().unwrap();
    assert_eq!(store.get_status(last).unwrap().unwrap().status, Submitted);
}
