//! The compiled component and what instantiates it: the engine, the linker
//! with the storage capability and a locked-down WASI, and a
//! pre-instantiated template.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::bindings::{self, TrackingStorePre, storage, types};
use crate::clock::{Clock, WasiWallClock};
use crate::database::Database;
use crate::error::Error;
use crate::store::HostState;

/// Bytes of the component's stderr kept, so that a panic message can be
/// reported with the trap it caused.
const GUEST_STDERR_BYTES: usize = 4096;

/// A loaded tracking-store component, ready to instantiate. Cheap to clone;
/// one plugin can serve any number of stores.
#[derive(Clone)]
pub struct Plugin {
    pre: Arc<TrackingStorePre<HostState>>,
}

impl Plugin {
    /// Loads and compiles the component at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Plugin(format!(
                "cannot read {}: {e} (build it with `make guest`, or pass --component)",
                path.display()
            ))
        })?;
        Self::from_bytes(&bytes)
    }

    /// Compiles a component from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let engine = Engine::default();
        let component = Component::new(&engine, bytes).map_err(plugin_error)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(plugin_error)?;
        storage::add_to_linker::<_, HasSelf<Database>>(&mut linker, |state| &mut state.db)
            .map_err(plugin_error)?;
        types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(plugin_error)?;

        let pre = linker.instantiate_pre(&component).map_err(plugin_error)?;
        let pre = TrackingStorePre::new(pre).map_err(plugin_error)?;
        Ok(Plugin { pre: Arc::new(pre) })
    }

    /// A fresh instance over `db`, seeing `clock` as its wall clock.
    pub(crate) fn instantiate(
        &self,
        db: Database,
        clock: Arc<dyn Clock>,
        memory_limit: usize,
    ) -> Result<(Store<HostState>, bindings::TrackingStore), Error> {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_BYTES);
        // Nothing but clocks and a captured stderr: no files, no
        // environment, no arguments, no network, no name lookup.
        let wasi = WasiCtxBuilder::new()
            .wall_clock(WasiWallClock(clock))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(memory_limit).build(),
            stderr,
            db,
        };

        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let instance = self.pre.instantiate(&mut store).map_err(plugin_error)?;
        Ok((store, instance))
    }
}

fn plugin_error(error: wasmtime::Error) -> Error {
    Error::Plugin(format!("{error:#}"))
}
