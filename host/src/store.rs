//! [`TrackingStore`]: the component, its database and its purge schedule
//! behind typed Rust methods.
//!
//! Every call takes the store's lock, opens a transaction, runs the
//! component's function and commits only if it returned `ok`. An error
//! rolls back; a trap rolls back and replaces the instance, so one bad call
//! costs exactly that call.

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{debug, info_span, warn};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, StoreExports, types as wit};
use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::database::{Access, Database};
use crate::error::Error;
use crate::plugin::Plugin;
use crate::purge::{PurgeScheduler, PurgeStats};
use crate::types::{OperationSnapshot, OperationStatus};

/// What one instance's wasmtime store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) db: Database,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for HostState {}

/// A live instance of the component over the open database.
struct Session {
    store: Store<HostState>,
    instance: bindings::TrackingStore,
}

/// What the lock guards, and what the purge thread shares.
pub(crate) struct Shared {
    plugin: Plugin,
    clock: Arc<dyn Clock>,
    memory_limit: usize,
    /// `None` only while a trapped instance is being replaced, or after a
    /// replacement failed (then every call reports why).
    session: Mutex<Option<Session>>,
    pub(crate) stats: Mutex<PurgeStats>,
}

/// The operation tracking store of one site: a SQLite file driven by the
/// tracking-store component.
///
/// Methods take `&self` and may be called from any number of threads; calls
/// are serialised by one lock. Dropping the store stops its purge thread.
///
/// ```no_run
/// use tracking_host::{OperationStatus, Plugin, StoreConfig, TrackingStore};
///
/// let plugin = Plugin::load("target/wasm32-wasip2/release/tracking_guest.wasm")?;
/// let store = TrackingStore::open(&plugin, StoreConfig::new("var/tracking.db"))?;
///
/// let id = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";
/// store.record_enqueue(id, "ExternalSystem.CachedCall", Some("POST /orders"), None, None, None)?;
/// store.record_attempt(id, OperationStatus::Retrying, 1, Some("503 Service Unavailable"), Some(503))?;
/// store.record_terminal(id, OperationStatus::Delivered, None, Some(200))?;
///
/// let snapshot = store.get_status(id)?.expect("just written");
/// assert_eq!(snapshot.status, OperationStatus::Delivered);
/// # Ok::<(), tracking_host::Error>(())
/// ```
pub struct TrackingStore {
    shared: Arc<Shared>,
    purge: Option<PurgeScheduler>,
}

impl TrackingStore {
    /// Opens (or creates) the database of `config` and instantiates
    /// `plugin` over it; starts the scheduled purge if one is configured.
    pub fn open(plugin: &Plugin, config: StoreConfig) -> Result<Self, Error> {
        let db = Database::open(&config)?;
        let (store, instance) =
            plugin.instantiate(db, Arc::clone(&config.clock), config.guest_memory_limit)?;
        let shared = Arc::new(Shared {
            plugin: plugin.clone(),
            clock: config.clock,
            memory_limit: config.guest_memory_limit,
            session: Mutex::new(Some(Session { store, instance })),
            stats: Mutex::new(PurgeStats::default()),
        });
        let purge = config
            .purge
            .map(|schedule| PurgeScheduler::start(Arc::downgrade(&shared), schedule));
        Ok(TrackingStore { shared, purge })
    }

    /// Records a new operation in `submitted`. Returns `false`, changing
    /// nothing, when the id is already recorded.
    pub fn record_enqueue(
        &self,
        id: &str,
        kind: &str,
        target_summary: Option<&str>,
        source_instance_id: Option<&str>,
        source_script: Option<&str>,
        source_node: Option<&str>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_enqueue", id, kind).entered();
        debug!(
            target_summary,
            source_instance_id, source_script, source_node, "arguments"
        );
        self.shared.call(Access::Write, |exports, store| {
            exports.call_record_enqueue(
                store,
                id,
                kind,
                target_summary,
                source_instance_id,
                source_script,
                source_node,
            )
        })
    }

    /// Records an in-flight attempt. Returns `false`, changing nothing, for
    /// an unknown id, a terminal row, or a retry count below the stored one.
    pub fn record_attempt(
        &self,
        id: &str,
        status: OperationStatus,
        retry_count: u32,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_attempt", id, %status, retry_count).entered();
        debug!(last_error, http_status, "arguments");
        self.shared.call(Access::Write, |exports, store| {
            exports.call_record_attempt(
                store,
                id,
                status.into(),
                retry_count,
                last_error,
                http_status,
            )
        })
    }

    /// Flips an in-flight row to a terminal status. Returns `false`,
    /// changing nothing, for an unknown id or a row already terminal.
    pub fn record_terminal(
        &self,
        id: &str,
        status: OperationStatus,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_terminal", id, %status).entered();
        debug!(last_error, http_status, "arguments");
        self.shared.call(Access::Write, |exports, store| {
            exports.call_record_terminal(store, id, status.into(), last_error, http_status)
        })
    }

    /// The row's snapshot, or `None` when the id has no row.
    pub fn get_status(&self, id: &str) -> Result<Option<OperationSnapshot>, Error> {
        let _span = info_span!("get_status", id).entered();
        let snapshot = self.shared.call(Access::Read, |exports, store| {
            exports.call_get_status(store, id)
        })?;
        Ok(snapshot.map(OperationSnapshot::from))
    }

    /// Deletes terminal rows whose terminal-at is strictly older than
    /// `older_than_ms`. Returns how many were deleted.
    pub fn purge_terminal(&self, older_than_ms: i64) -> Result<u64, Error> {
        let _span = info_span!("purge_terminal", older_than_ms).entered();
        self.shared.purge_terminal(older_than_ms)
    }

    /// What the scheduled purge has done since the store opened.
    pub fn purge_stats(&self) -> PurgeStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The clock this store stamps rows with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }
}

impl Drop for TrackingStore {
    fn drop(&mut self) {
        if let Some(purge) = self.purge.take() {
            purge.stop();
        }
    }
}

impl Shared {
    pub(crate) fn purge_terminal(&self, older_than_ms: i64) -> Result<u64, Error> {
        self.call(Access::Write, |exports, store| {
            exports.call_purge_terminal(store, older_than_ms)
        })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs one exported function in a transaction of its own.
    fn call<R>(
        &self,
        access: Access,
        run: impl FnOnce(
            &StoreExports,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, wit::Error>>,
    ) -> Result<R, Error> {
        let mut guard = self.lock();
        let session = self.session(&mut guard)?;
        let db = &session.store.data().db;
        db.begin(access)?;

        let outcome = {
            let _fence = db.guest_section();
            run(
                session.instance.scadalink_tracking_store(),
                &mut session.store,
            )
        };
        let db = &session.store.data().db;
        match outcome {
            Ok(Ok(value)) => match db.commit() {
                Ok(()) => Ok(value),
                Err(error) => {
                    db.rollback();
                    Err(error.into())
                }
            },
            Ok(Err(error)) => {
                db.rollback();
                Err(error.into())
            }
            Err(trap) => {
                db.rollback();
                let message = self.replace_after_trap(&mut guard, trap);
                Err(Error::Trap(message))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        // A panic while the lock was held happened outside the component
        // (a trap is an `Err`, not a panic), and the transaction was rolled
        // back by then; the session is still sound.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn session<'a>(&self, guard: &'a mut Option<Session>) -> Result<&'a mut Session, Error> {
        guard.as_mut().ok_or_else(|| {
            Error::Plugin("the component instance could not be replaced after a trap".into())
        })
    }

    /// An instance that trapped may not be entered again. Builds a fresh one
    /// over the same connection and returns the trap's description.
    fn replace_after_trap(&self, guard: &mut Option<Session>, trap: wasmtime::Error) -> String {
        let Some(old) = guard.take() else {
            return format!("{trap:#}");
        };
        let state = old.store.into_data();
        let stderr = String::from_utf8_lossy(&state.stderr.contents())
            .trim()
            .to_owned();
        let message = if stderr.is_empty() {
            format!("{trap:#}")
        } else {
            format!("{trap:#}; the component wrote: {stderr}")
        };
        warn!(error = %message, "component trapped; replacing its instance");

        match self
            .plugin
            .instantiate(state.db, Arc::clone(&self.clock), self.memory_limit)
        {
            Ok((store, instance)) => *guard = Some(Session { store, instance }),
            Err(error) => warn!(%error, "cannot replace the trapped instance"),
        }
        message
    }
}
