//! One live instance of the component over one connection, and what
//! replaces it when it traps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::warn;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, types as wit};
use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::database::Database;
use crate::error::Error;
use crate::plugin::Plugin;

/// What one instance's wasmtime store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: GuestLimits,
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

/// Caps an instance's linear memory and reports how much it holds.
pub(crate) struct GuestLimits {
    pub(crate) max_memory: usize,
    /// Bytes of linear memory of the instance, shared with the store's
    /// statistics.
    pub(crate) memory: Arc<AtomicUsize>,
}

/// Most table elements an instance may grow to; the component needs a few
/// dozen.
const MAX_TABLE_ELEMENTS: usize = 10_000;

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory.load(Ordering::Relaxed) - current + desired;
        if total > self.max_memory {
            return Ok(false);
        }
        self.memory.store(total, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// How to build an instance: shared by every instance of one store.
#[derive(Clone)]
pub(crate) struct Recipe {
    pub(crate) plugin: Plugin,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) memory_limit: usize,
}

impl Recipe {
    /// Instances of `plugin` with the clock and memory limit of `config`.
    pub(crate) fn new(plugin: &Plugin, config: &StoreConfig) -> Self {
        Recipe {
            plugin: plugin.clone(),
            clock: Arc::clone(&config.clock),
            memory_limit: config.guest_memory_limit,
        }
    }
}

/// An instance that replaces itself after a trap.
pub(crate) struct Instance {
    recipe: Recipe,
    memory: Arc<AtomicUsize>,
    /// `None` only after a replacement failed; every call then says why.
    live: Option<Live>,
    pub(crate) traps: u64,
}

struct Live {
    store: Store<HostState>,
    bindings: bindings::TrackingStore,
}

impl Instance {
    pub(crate) fn new(recipe: Recipe, db: Database) -> Result<Self, Error> {
        let memory = Arc::new(AtomicUsize::new(0));
        let live = Live::new(&recipe, db, Arc::clone(&memory))?;
        Ok(Instance {
            recipe,
            memory,
            live: Some(live),
            traps: 0,
        })
    }

    /// The connection under the instance.
    pub(crate) fn db(&self) -> Result<&Database, Error> {
        self.live
            .as_ref()
            .map(|live| &live.store.data().db)
            .ok_or_else(lost)
    }

    /// Bytes of linear memory the instance holds now.
    pub(crate) fn memory(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Runs one exported function. The caller owns the transaction around
    /// it. A trap replaces the instance, keeping the connection (and its
    /// open transaction, which the caller then rolls back).
    pub(crate) fn call<R>(
        &mut self,
        run: impl FnOnce(
            &bindings::TrackingStore,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, wit::Error>>,
    ) -> Result<R, Error> {
        let live = self.live.as_mut().ok_or_else(lost)?;
        let outcome = {
            let _fence = live.store.data().db.guest_section();
            run(&live.bindings, &mut live.store)
        };
        match outcome {
            Ok(result) => result.map_err(Error::from),
            Err(trap) => Err(Error::Trap(self.replace(trap))),
        }
    }

    /// An instance that trapped may not be entered again. Builds a fresh one
    /// over the same connection and returns the trap's description.
    fn replace(&mut self, trap: wasmtime::Error) -> String {
        self.traps += 1;
        let Some(old) = self.live.take() else {
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

        self.memory.store(0, Ordering::Relaxed);
        match Live::new(&self.recipe, state.db, Arc::clone(&self.memory)) {
            Ok(live) => self.live = Some(live),
            Err(error) => warn!(%error, "cannot replace the trapped instance"),
        }
        message
    }
}

impl Live {
    fn new(recipe: &Recipe, db: Database, memory: Arc<AtomicUsize>) -> Result<Self, Error> {
        let limits = GuestLimits {
            max_memory: recipe.memory_limit,
            memory,
        };
        let (store, bindings) = recipe
            .plugin
            .instantiate(db, Arc::clone(&recipe.clock), limits)?;
        Ok(Live { store, bindings })
    }
}

fn lost() -> Error {
    Error::Plugin("the component instance could not be replaced after a trap".into())
}
