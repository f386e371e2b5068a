//! The compiled component and what instantiates it: the engine, the linker
//! with the storage capability and a locked-down WASI, and a
//! pre-instantiated template.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::bindings::{self, TrackingStorePre, storage, types};
use crate::clock::{Clock, WasiWallClock};
use crate::database::Database;
use crate::error::Error;
use crate::session::{GuestLimits, HostState};

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
    /// Loads the component at `path`, compiled once and then cached on disk
    /// in [`Plugin::default_cache_dir`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::load_with(path, Self::default_cache_dir().as_deref())
    }

    /// Where [`Plugin::load`] caches compiled components:
    /// `$TRACKING_CACHE_DIR`, else `$XDG_CACHE_HOME/tracking-store`, else
    /// `$HOME/.cache/tracking-store`; `None` when none of them is set.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("TRACKING_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("tracking-store")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("tracking-store")))
    }

    /// Loads the component at `path`. With a `cache_dir`, the compiled code
    /// is cached there, keyed by the engine's settings and the component's
    /// bytes, so that a later load of the same component by a compatible
    /// engine skips compilation; a changed component or engine compiles
    /// afresh. Without one, every load compiles.
    pub fn load_with(path: impl AsRef<Path>, cache_dir: Option<&Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Plugin(format!(
                "cannot read {}: {e} (build it with `make guest`, or pass --component)",
                path.display()
            ))
        })?;
        Self::from_bytes(&bytes, cache_dir)
    }

    /// Compiles a component from its bytes, cached in `cache_dir` if given.
    pub fn from_bytes(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Self, Error> {
        let mut config = Config::new();
        if let Some(dir) = cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(Cache::new(cache).map_err(plugin_error)?));
        }
        let engine = Engine::new(&config).map_err(plugin_error)?;
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
        limits: GuestLimits,
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
            limits,
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
