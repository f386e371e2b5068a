//! Shared set-up of the end-to-end tests: the real compiled component, in
//! the real host, on a fresh SQLite file in a temporary directory.
//!
//! The component is built by `make guest` before the tests run; it is
//! compiled by wasmtime once per test binary and shared.

use std::path::PathBuf;
use std::sync::OnceLock;

use tempfile::TempDir;
use tracking_host::OperationStatus::{Delivered, Retrying};
use tracking_host::{BUILT_COMPONENT, ManualClock, Plugin, StoreConfig, TrackingStore};

/// The time a test store's clock starts at: 2026-12-01T00:00:00Z.
pub const T0: i64 = 1_764_547_200_000;

/// The compiled component, loaded once.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        Plugin::load(BUILT_COMPONENT)
            .unwrap_or_else(|e| panic!("{e}; run `make guest` before the tests"))
    })
}

/// A store on a fresh file, its clock stopped at [`T0`], no scheduled purge.
pub struct TestStore {
    /// The store under test.
    pub store: TrackingStore,
    /// Its clock; move it to move time.
    pub clock: ManualClock,
    /// The directory holding the file; removed when dropped.
    pub dir: TempDir,
}

impl TestStore {
    /// A store over `tracking.db` in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = ManualClock::new(T0);
        let store = TrackingStore::open(plugin(), Self::config(&dir, &clock)).expect("open");
        TestStore { store, clock, dir }
    }

    /// The configuration tests open the file with.
    pub fn config(dir: &TempDir, clock: &ManualClock) -> StoreConfig {
        StoreConfig::new(dir.path().join("tracking.db"))
            .clock(clock.clone())
            .purge(None)
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("tracking.db")
    }

    /// Closes the store and opens the same file again.
    pub fn reopen(self) -> Self {
        let TestStore { store, clock, dir } = self;
        drop(store);
        let store = TrackingStore::open(plugin(), Self::config(&dir, &clock)).expect("reopen");
        TestStore { store, clock, dir }
    }

    /// Enqueues `id` as a cached call with every optional field set.
    pub fn enqueue(&self, id: &str) -> bool {
        self.store
            .record_enqueue(
                id,
                "ExternalSystem.CachedCall",
                Some("POST https://erp/api/orders"),
                Some("Pump-07"),
                Some("OnBatchComplete"),
                Some("edge-node-a"),
            )
            .expect("enqueue")
    }

    /// Counts the rows in the file, beside the store, with plain SQLite.
    pub fn row_count(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.path()).expect("open beside the store");
        conn.query_row("SELECT count(*) FROM operations", [], |r| r.get(0))
            .expect("count")
    }
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A new random operation id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The misbehaving component of `tests/rogue`, built by `make guest`.
pub const ROGUE_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/rogue_guest.wasm"
);

/// A store running the rogue component on a fresh file.
pub fn rogue_store() -> (TempDir, TrackingStore) {
    static ROGUE: OnceLock<Plugin> = OnceLock::new();
    let plugin = ROGUE.get_or_init(|| {
        Plugin::load(ROGUE_COMPONENT)
            .unwrap_or_else(|e| panic!("{e}; run `make guest` before the tests"))
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = StoreConfig::new(dir.path().join("tracking.db")).purge(None);
    let store = TrackingStore::open(plugin, config).expect("open");
    (dir, store)
}

/// The lifecycles of `ids` side by side through the `*_async` writes: each
/// step (enqueue, a `retrying` attempt, `delivered`) is queued for every id,
/// then every answer awaited, before the next step. Each answer must be a
/// change; `acked(step, id)` is called as it comes, `step` being `'E'`,
/// `'A'` or `'T'`.
pub async fn queued_lifecycles(
    store: &TrackingStore,
    ids: &[String],
    mut acked: impl FnMut(char, &str),
) {
    for step in ['E', 'A', 'T'] {
        let queued: Vec<_> = ids
            .iter()
            .map(|id| match step {
                'E' => {
                    store.record_enqueue_async(id, "Database.CachedWrite", None, None, None, None)
                }
                'A' => store.record_attempt_async(id, Retrying, 1, Some("busy"), None),
                _ => store.record_terminal_async(id, Delivered, None, None),
            })
            .collect();
        for (id, write) in ids.iter().zip(queued) {
            assert!(write.await.unwrap(), "{step} {id} changed nothing");
            acked(step, id);
        }
    }
}
