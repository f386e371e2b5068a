//! The script runner: untrusted site scripts that read operation status.
//!
//! A script is a component of the `status-script` world (`wit/script.wit`):
//! it imports `status.get-status` and exports `run(args) -> result<string,
//! string>`. [`ScriptRunner::load`] compiles it, refuses it if its imports
//! reach beyond that world (see `imports`), and keeps a pre-instantiated
//! template; [`ScriptRunner::run`] then gives every run a fresh instance
//! from the template, with
//!
//! - a wall-clock deadline ([`ScriptLimits::timeout`], 1 s by default),
//!   enforced by epoch interruption while the script computes and by a
//!   timer while it waits in a host call (a sleep);
//! - a memory cap ([`ScriptLimits::memory`], 32 MiB by default): growing
//!   past it stops the run;
//! - no files, no network, no environment, no arguments but `run`'s; an
//!   empty stdin; stdout and stderr captured, each up to
//!   [`ScriptLimits::output`] bytes, the rest dropped;
//! - its `get-status` calls answered by [`TrackingStore::get_status`], the
//!   store's read side, which never waits for a commit.
//!
//! A script has no way to write: the worst it can do is spend its own
//! deadline and memory, and then its instance is thrown away.
//!
//! ```no_run
//! use tracking_host::script::{RunnerConfig, ScriptRunner};
//! use tracking_host::{Plugin, StoreConfig, TrackingStore};
//!
//! let plugin = Plugin::load("target/wasm32-wasip2/release/tracking_guest.wasm")?;
//! let store = TrackingStore::open(&plugin, StoreConfig::new("var/tracking.db"))?;
//! let runner = ScriptRunner::new(RunnerConfig::default())?;
//! let script = runner.load("target/wasm32-wasip2/release/status_summary_rs.wasm")?;
//! let run = runner.run(&script, &store, &["0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b".into()])?;
//! println!("{}{:?}", run.output.stdout_text(), run.result);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The runner has an engine of its own, apart from the store's, because
//! scripts need epoch interruption and the store's component must not pay
//! for it.

mod error;
mod imports;
mod output;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info_span};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use error::{Captured, ScriptError};
use output::CappedOutput;

use crate::bindings::types as wit;
use crate::store::TrackingStore;
use crate::types::OperationSnapshot;

mod bindings {
    wasmtime::component::bindgen!({
        world: "status-script",
        path: "../wit",
        exports: { default: async },
        with: { "scadalink:tracking/types": crate::bindings::scadalink::tracking::types },
    });
}

use bindings::StatusScriptPre;
use bindings::scadalink::tracking::status;

/// The default wall-clock deadline of one run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default memory cap of one run: 32 MiB.
pub const DEFAULT_MEMORY: usize = 32 << 20;
/// The default cap on each of stdout and stderr: 64 KiB.
pub const DEFAULT_OUTPUT: usize = 64 << 10;

/// How often the engine's epoch advances, and so how late past its deadline
/// a computing script may be stopped.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Most table elements a script's instance may grow to. A JavaScript
/// engine's function table holds tens of thousands; this bounds what a
/// script can make the host allocate through tables.
const MAX_TABLE_ELEMENTS: usize = 200_000;

/// What one run may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Wall-clock time from the start of instantiation to `run`'s return.
    /// Past it the run is stopped with [`ScriptError::Deadline`].
    pub timeout: Duration,
    /// Bytes of linear memory the instance may hold, all its memories
    /// together. Growing past it stops the run with [`ScriptError::Memory`];
    /// it protects the host from a script that allocates without bound.
    pub memory: usize,
    /// Bytes of stdout, and separately of stderr, kept per run; a script
    /// that prints more loses the excess, so that a chatty script cannot
    /// fill the host's memory through its output.
    pub output: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
            output: DEFAULT_OUTPUT,
        }
    }
}

/// How a [`ScriptRunner`] is built.
#[derive(Clone, Debug, Default)]
pub struct RunnerConfig {
    /// The limits every run gets.
    pub limits: ScriptLimits,
    /// `Some(n)`: instances come from wasmtime's pooling allocator, which
    /// keeps memory for `n` runs at once reserved and reuses it; a run
    /// beyond `n` at once fails. `None` (the default): each run maps its
    /// memory afresh.
    pub pool: Option<u32>,
    /// Where compiled scripts are cached, as [`crate::Plugin::load_with`]
    /// does for the store's component; `None` compiles at every load.
    pub cache_dir: Option<PathBuf>,
}

impl RunnerConfig {
    /// Sets [`RunnerConfig::limits`].
    pub fn limits(mut self, limits: ScriptLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`RunnerConfig::pool`].
    pub fn pool(mut self, instances: Option<u32>) -> Self {
        self.pool = instances;
        self
    }

    /// Sets [`RunnerConfig::cache_dir`].
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }
}

/// Loads and runs status scripts. Cheap to clone; `Send + Sync`, so that
/// threads can run scripts at once.
#[derive(Clone)]
pub struct ScriptRunner {
    engine: Engine,
    linker: Arc<Linker<ScriptState>>,
    limits: ScriptLimits,
}

/// A loaded script: compiled, checked, and pre-instantiated. Cheap to
/// clone. It runs only on the runner that loaded it.
#[derive(Clone)]
pub struct Script {
    pre: Arc<StatusScriptPre<ScriptState>>,
}

/// What a run that returned gave back.
#[derive(Clone, Debug)]
pub struct ScriptOutput {
    /// `run`'s result: the script's answer, or why it failed.
    pub result: Result<String, String>,
    /// What it printed.
    pub output: Captured,
    /// Time from the start of the run to its return.
    pub elapsed: Duration,
    /// Time the instantiation from the template took, within `elapsed`.
    pub instantiation: Duration,
    /// The most linear memory the instance held, in bytes.
    pub peak_memory: usize,
    /// How many `get-status` calls it made.
    pub status_calls: u32,
}

impl ScriptRunner {
    /// Builds the runner's engine and linker, and starts the thread that
    /// advances the engine's epoch (it ends when the engine is dropped).
    pub fn new(config: RunnerConfig) -> Result<Self, ScriptError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        if let Some(dir) = &config.cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            wasm.cache(Some(Cache::new(cache).map_err(runner_error)?));
        }
        if let Some(instances) = config.pool {
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(
                instances,
                &config.limits,
            )));
        }
        let engine = Engine::new(&wasm).map_err(runner_error)?;

        let mut linker = Linker::<ScriptState>::new(&engine);
        // The whole of WASI is linked; what a script may import is decided
        // by `imports::check` at load, which names what it refuses.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(runner_error)?;
        status::add_to_linker::<_, HasSelf<ScriptState>>(&mut linker, |state| state)
            .map_err(runner_error)?;
        wit::add_to_linker::<_, HasSelf<ScriptState>>(&mut linker, |state| state)
            .map_err(runner_error)?;

        start_epoch_ticker(&engine);
        Ok(ScriptRunner {
            engine,
            linker: Arc::new(linker),
            limits: config.limits,
        })
    }

    /// The limits every run gets.
    pub fn limits(&self) -> ScriptLimits {
        self.limits
    }

    /// Loads the script component at `path`; see [`ScriptRunner::load_bytes`].
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Script, ScriptError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| ScriptError::Load(format!("cannot read {}: {e}", path.display())))?;
        self.load_bytes(&bytes)
    }

    /// Compiles a script component and pre-instantiates it.
    ///
    /// # Failure
    ///
    /// [`ScriptError::RefusedImport`] when the component imports anything
    /// outside the script world, naming the import;
    /// [`ScriptError::Load`] when it is not a component or does not export
    /// `run` with the world's signature.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<Script, ScriptError> {
        let component = Component::new(&self.engine, bytes).map_err(load_error)?;
        imports::check(&self.engine, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(load_error)?;
        let pre = StatusScriptPre::new(pre).map_err(load_error)?;
        Ok(Script { pre: Arc::new(pre) })
    }

    /// Runs `script` once in a fresh instance, its status calls answered by
    /// `store`, and returns what it returned and printed.
    ///
    /// Blocks until the run ends; call it from a thread of its own, not
    /// from an async task (use `spawn_blocking` there). A script's `err` is
    /// an `Ok` here, in [`ScriptOutput::result`]: the run itself worked.
    ///
    /// # Failure
    ///
    /// [`ScriptError::Deadline`], [`ScriptError::Memory`] or
    /// [`ScriptError::Trap`] when the run was stopped, with what it printed
    /// until then. The store is unaffected either way.
    pub fn run(
        &self,
        script: &Script,
        store: &TrackingStore,
        args: &[String],
    ) -> Result<ScriptOutput, ScriptError> {
        self.run_with(script, store, args, self.limits)
    }

    /// [`ScriptRunner::run`] with other limits than the runner's. With a
    /// pool, a memory cap above the runner's own is still held to the
    /// runner's, the size of a pool slot.
    pub fn run_with(
        &self,
        script: &Script,
        store: &TrackingStore,
        args: &[String],
        limits: ScriptLimits,
    ) -> Result<ScriptOutput, ScriptError> {
        let _span = info_span!("script_run", args = args.len()).entered();
        if !Engine::same(&self.engine, script.pre.engine()) {
            return Err(ScriptError::Runner(
                "the script was loaded by another runner".into(),
            ));
        }

        let started = Instant::now();
        let deadline = started + limits.timeout;
        let stdout = CappedOutput::new(limits.output);
        let stderr = CappedOutput::new(limits.output);
        let mut wasm = self.new_store(store, &stdout, &stderr, limits.memory, deadline);

        // The epoch callback stops a script that computes; the timer stops
        // one that waits in a host call (a sleep), where no epoch is seen.
        let mut instantiation = Duration::ZERO;
        let outcome = wasmtime_wasi::runtime::in_tokio(async {
            let run = async {
                let instance = script.pre.instantiate_async(&mut wasm).await?;
                instantiation = started.elapsed();
                instance.call_run(&mut wasm, args).await
            };
            tokio::time::timeout_at(deadline.into(), run).await
        });

        let output = captured(&stdout, &stderr);
        let state = wasm.data();
        let stopped = |trap| stopped(&limits, state, trap, output.clone());
        let result = match outcome {
            Ok(Ok(result)) => Ok(ScriptOutput {
                result,
                output: output.clone(),
                elapsed: started.elapsed(),
                instantiation,
                peak_memory: state.memory.peak,
                status_calls: state.status_calls,
            }),
            Ok(Err(trap)) => Err(stopped(Some(trap))),
            Err(_elapsed) => Err(stopped(None)),
        };
        debug!(elapsed = ?started.elapsed(), ok = result.is_ok(), "script run ended");
        result
    }

    /// A wasmtime store for one run: the locked-down WASI context, the
    /// memory cap and the deadline.
    fn new_store(
        &self,
        store: &TrackingStore,
        stdout: &CappedOutput,
        stderr: &CappedOutput,
        memory: usize,
        deadline: Instant,
    ) -> Store<ScriptState> {
        // No preopened directories, no environment, no arguments, no
        // network, no name lookup, an empty stdin: the builder's defaults,
        // with the network switches spelled out.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = ScriptState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory),
            store: store.clone(),
            deadline_passed: false,
            status_calls: 0,
        };

        let mut wasm = Store::new(&self.engine, state);
        wasm.limiter(|state| &mut state.memory);
        wasm.set_epoch_deadline(1);
        wasm.epoch_deadline_callback(move |mut ctx| {
            if Instant::now() < deadline {
                return Ok(UpdateDeadline::Continue(1));
            }
            ctx.data_mut().deadline_passed = true;
            Err(wasmtime::Error::msg("the script passed its deadline"))
        });
        wasm
    }
}

/// Why a run that did not return was stopped. `trap` is `None` when the
/// timer ended it.
fn stopped(
    limits: &ScriptLimits,
    state: &ScriptState,
    trap: Option<wasmtime::Error>,
    output: Captured,
) -> ScriptError {
    match trap {
        None => ScriptError::Deadline {
            timeout: limits.timeout,
            output,
        },
        Some(_) if state.deadline_passed => ScriptError::Deadline {
            timeout: limits.timeout,
            output,
        },
        Some(_) if state.memory.exceeded => ScriptError::Memory {
            limit: limits.memory,
            output,
        },
        Some(trap) => ScriptError::Trap {
            message: format!("{trap:#}"),
            output,
        },
    }
}

/// The pooling allocator's settings for `instances` runs at once. A
/// component of a JavaScript engine has a handful of core instances,
/// memories and tables; the counts leave room for that.
fn pool(instances: u32, limits: &ScriptLimits) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 16)
        .max_core_instances_per_component(16)
        .total_memories(instances * 4)
        .max_memories_per_component(4)
        .total_tables(instances * 8)
        .max_tables_per_component(8)
        .table_elements(MAX_TABLE_ELEMENTS)
        .total_stacks(instances)
        .max_memory_size(limits.memory);
    pool
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is
/// dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("script-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(error) = spawned {
        // Without the ticker a computing script is stopped only by the
        // timer, which it never yields to: say so loudly.
        tracing::error!(%error, "cannot start the script epoch thread");
    }
}

fn captured(stdout: &CappedOutput, stderr: &CappedOutput) -> Captured {
    let (stdout, stdout_dropped) = stdout.take();
    let (stderr, stderr_dropped) = stderr.take();
    Captured {
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
    }
}

/// What one run's wasmtime store holds.
struct ScriptState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    store: TrackingStore,
    /// Set by the epoch callback when it stops the run.
    deadline_passed: bool,
    status_calls: u32,
}

impl WasiView for ScriptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for ScriptState {}

impl status::Host for ScriptState {
    fn get_status(&mut self, id: String) -> Result<Option<wit::OperationSnapshot>, wit::Error> {
        self.status_calls = self.status_calls.saturating_add(1);
        match self.store.get_status(&id) {
            Ok(snapshot) => Ok(snapshot.map(to_wit)),
            Err(error) => Err(to_wit_error(error)),
        }
    }
}

fn to_wit(s: OperationSnapshot) -> wit::OperationSnapshot {
    wit::OperationSnapshot {
        id: s.id,
        kind: s.kind,
        target_summary: s.target_summary,
        source_instance_id: s.source_instance_id,
        source_script: s.source_script,
        source_node: s.source_node,
        status: s.status.into(),
        retry_count: s.retry_count,
        last_error: s.last_error,
        http_status: s.http_status,
        created_at: s.created_at,
        updated_at: s.updated_at,
        terminal_at: s.terminal_at,
    }
}

fn to_wit_error(error: crate::Error) -> wit::Error {
    match error {
        crate::Error::InvalidInput { field, rule } => {
            wit::Error::InvalidInput(wit::InvalidInput { field, rule })
        }
        crate::Error::UnsupportedSchema(version) => wit::Error::UnsupportedSchema(version),
        // A trap of the store's reader, or anything else the host met, is a
        // storage failure to the script: it may retry.
        other => wit::Error::Storage(other.to_string()),
    }
}

/// The memory cap of one run.
struct MemoryCap {
    max: usize,
    used: usize,
    peak: usize,
    /// Set when the script tried to grow past `max`, so that the trap that
    /// follows is reported as the cap, not as a bug.
    exceeded: bool,
}

impl MemoryCap {
    fn new(max: usize) -> Self {
        MemoryCap {
            max,
            used: 0,
            peak: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used - current + desired;
        if total > self.max {
            // Stop the run here rather than fail the growth: an allocator
            // that survives a failed growth would only retry, and the run
            // has reached its cap either way.
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "the script reached its memory cap of {} bytes",
                self.max
            )));
        }
        self.used = total;
        self.peak = self.peak.max(total);
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

fn load_error(error: wasmtime::Error) -> ScriptError {
    ScriptError::Load(format!("{error:#}"))
}

fn runner_error(error: wasmtime::Error) -> ScriptError {
    ScriptError::Runner(format!("{error:#}"))
}
