//! Site scripts in the script runner: the two example scripts on a real
//! store file, the limits that stop a misbehaving script, the imports that
//! are refused at load, and many runs beside busy writers.
//!
//! The components are built by `make scripts` before the tests run.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracking_host::OperationStatus::*;
use tracking_host::script::{
    RunnerConfig, Script, ScriptError, ScriptLimits, ScriptOutput, ScriptRunner,
};
use tracking_host::{BUILT_COMPONENT, TrackingStore};
use tracking_tests::{TestStore, new_id};

const RELEASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/"
);

/// The Rust example, `examples/scripts/status-summary-rs`.
fn rust_example() -> String {
    format!("{RELEASE}status_summary_rs.wasm")
}

/// The JavaScript example, `examples/scripts/status-summary-js`.
const JS_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/scripts/status-summary-js.wasm"
);

/// One runner for the whole test binary, its compiled scripts cached under
/// target/ so that the 12 MB JavaScript component compiles once.
fn runner() -> &'static ScriptRunner {
    static RUNNER: OnceLock<ScriptRunner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let cache = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/script-cache");
        ScriptRunner::new(RunnerConfig::default().cache_dir(Some(cache.into())))
            .expect("a script runner")
    })
}

/// Loads a script built by `make scripts`, once per path.
fn script(path: &str) -> Script {
    static LOADED: OnceLock<std::sync::Mutex<Vec<(String, Script)>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    let mut loaded = loaded.lock().unwrap();
    if let Some((_, script)) = loaded.iter().find(|(p, _)| p == path) {
        return script.clone();
    }
    let script = runner()
        .load(path)
        .unwrap_or_else(|e| panic!("{e}; run `make scripts` before the tests"));
    loaded.push((path.to_owned(), script.clone()));
    script
}

fn rogue() -> Script {
    script(&format!("{RELEASE}script_rogue_misbehave.wasm"))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn run(script: &Script, store: &TrackingStore, list: &[&str]) -> Result<ScriptOutput, ScriptError> {
    runner().run(script, store, &args(list))
}

fn limits(timeout: Duration, memory: usize) -> ScriptLimits {
    ScriptLimits {
        timeout,
        memory,
        ..ScriptLimits::default()
    }
}

/// Three operations in three states, written through the real store.
struct Site {
    test: TestStore,
    delivered: String,
    retrying: String,
    unknown: String,
}

impl Site {
    fn new() -> Self {
        let test = TestStore::new();
        let (delivered, retrying, unknown) = (new_id(), new_id(), new_id());
        test.enqueue(&delivered);
        let store = &test.store;
        store
            .record_attempt(&delivered, Retrying, 1, Some("503"), Some(503))
            .unwrap();
        store
            .record_terminal(&delivered, Delivered, None, Some(200))
            .unwrap();
        test.enqueue(&retrying);
        store
            .record_attempt(&retrying, Retrying, 2, Some("connection reset"), None)
            .unwrap();
        Site {
            test,
            delivered,
            retrying,
            unknown,
        }
    }

    fn ids(&self) -> [&str; 3] {
        [&self.delivered, &self.retrying, &self.unknown]
    }

    /// The lines both examples print for [`Site::ids`], from the store's own
    /// snapshots: what a script reads must be what the host reads.
    fn expected_lines(&self) -> String {
        let store = &self.test.store;
        let d = store.get_status(&self.delivered).unwrap().unwrap();
        let r = store.get_status(&self.retrying).unwrap().unwrap();
        assert_eq!((d.retry_count, d.http_status), (1, Some(200)));
        format!(
            "{} delivered retries=1 http=200\n{} retrying retries=2 error=\"connection reset\"\n{} unknown\n",
            d.id, r.id, self.unknown
        )
    }
}

const SUMMARY: &str = "3 ids: 1 delivered, 1 retrying, 1 unknown";

#[test]
fn rust_example_reads_the_right_snapshots_of_a_real_store_file() {
    let site = Site::new();
    let out = run(&script(&rust_example()), &site.test.store, &site.ids()).unwrap();

    assert_eq!(out.result.as_deref(), Ok(SUMMARY));
    assert_eq!(out.output.stdout_text(), site.expected_lines());
    assert_eq!(out.status_calls, 3);
    assert!(site.test.path().exists());
}

#[test]
fn js_example_reads_the_right_snapshots_of_a_real_store_file() {
    let site = Site::new();
    let out = run(&script(JS_EXAMPLE), &site.test.store, &site.ids()).unwrap();

    // Built without stdio (it would import wasi:filesystem), the JavaScript
    // example returns its lines with the summary instead of printing them.
    let expected = format!("{}{SUMMARY}", site.expected_lines());
    assert_eq!(out.result.as_deref(), Ok(expected.as_str()));
    assert_eq!(out.status_calls, 3);
}

#[test]
fn both_examples_fail_on_a_malformed_id_naming_the_rule() {
    let site = Site::new();
    for path in [rust_example(), JS_EXAMPLE.to_owned()] {
        let out = run(
            &script(&path),
            &site.test.store,
            &[&site.delivered, "not-a-uuid"],
        )
        .unwrap();
        let error = out.result.expect_err("a malformed id fails the script");
        assert!(error.contains("invalid id"), "{path}: {error}");

        let out = run(&script(&path), &site.test.store, &[]).unwrap();
        assert!(out.result.unwrap_err().starts_with("usage:"), "{path}");
    }
}

#[test]
fn a_script_that_loops_forever_is_stopped_at_its_deadline_and_nothing_else_is_affected() {
    let site = Site::new();
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let error = runner()
        .run_with(
            &rogue(),
            &site.test.store,
            &args(&["loop"]),
            limits(timeout, 32 << 20),
        )
        .unwrap_err();
    let elapsed = started.elapsed();

    assert!(
        matches!(error, ScriptError::Deadline { timeout: t, .. } if t == timeout),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the script was stopped at its deadline of 200ms"
    );
    assert!(elapsed >= timeout, "stopped early, after {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_millis(300),
        "stopped late, after {elapsed:?}"
    );

    // The store still writes and reads, and the next run works.
    let id = new_id();
    assert!(site.test.enqueue(&id));
    let out = run(&script(&rust_example()), &site.test.store, &site.ids()).unwrap();
    assert_eq!(out.result.as_deref(), Ok(SUMMARY));
    let out = run(&rogue(), &site.test.store, &["status", &id]).unwrap();
    assert_eq!(
        out.result.unwrap(),
        format!("{id} OperationStatus::Submitted 0")
    );
}

#[test]
fn a_script_that_sleeps_in_a_host_call_is_stopped_at_its_deadline() {
    let site = Site::new();
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let error = runner()
        .run_with(
            &rogue(),
            &site.test.store,
            &args(&["sleep"]),
            limits(timeout, 32 << 20),
        )
        .unwrap_err();

    assert!(matches!(error, ScriptError::Deadline { .. }), "{error}");
    assert!(started.elapsed() < timeout + Duration::from_millis(300));
}

#[test]
fn a_script_that_allocates_without_bound_is_stopped_at_its_memory_cap() {
    let site = Site::new();
    let cap = 16 << 20;
    let error = runner()
        .run_with(
            &rogue(),
            &site.test.store,
            &args(&["alloc"]),
            limits(Duration::from_secs(5), cap),
        )
        .unwrap_err();

    assert!(
        matches!(error, ScriptError::Memory { limit, .. } if limit == cap),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the script was stopped at its memory cap of 16777216 bytes"
    );
    let out = run(&rogue(), &site.test.store, &["echo", "after"]).unwrap();
    assert_eq!(out.result.as_deref(), Ok("after"));
}

#[test]
fn a_panicking_script_is_a_trap_that_keeps_its_message() {
    let site = Site::new();
    let error = run(&rogue(), &site.test.store, &["panic"]).unwrap_err();

    let ScriptError::Trap { output, .. } = &error else {
        panic!("expected a trap, got {error}");
    };
    assert!(
        output
            .stderr_text()
            .contains("the rogue script panics on request"),
        "{}",
        output.stderr_text()
    );
}

#[test]
fn output_past_the_cap_is_dropped_and_the_script_still_finishes() {
    let site = Site::new();
    let out = run(&rogue(), &site.test.store, &["flood"]).unwrap();

    assert_eq!(out.result.as_deref(), Ok("flooded"));
    let cap = ScriptLimits::default().output;
    assert_eq!(out.output.stdout.len(), cap);
    assert_eq!(out.output.stderr.len(), cap);
    assert_eq!(out.output.stdout_dropped, (8 << 20) - cap as u64);
    assert_eq!(out.output.stderr_dropped, (8 << 20) - cap as u64);
}

#[test]
fn a_script_gets_no_environment_and_its_stdout_and_stderr_apart() {
    let site = Site::new();
    let out = run(&rogue(), &site.test.store, &["echo", "a", "b"]).unwrap();

    assert_eq!(out.result.as_deref(), Ok("a b"));
    assert_eq!(out.output.stdout_text(), "echo\n");
    assert_eq!(out.output.stderr_text(), "echo\n");
    let out = run(&rogue(), &site.test.store, &["fail"]).unwrap();
    assert_eq!(out.result, Err("failed on request".to_owned()));
}

fn refused(path: &str) -> (String, String) {
    match runner().load(path) {
        Err(ScriptError::RefusedImport { import, why }) => (import, why),
        Err(other) => panic!("{path}: expected a refused import, got {other}"),
        Ok(_) => panic!("{path}: loaded a component that reaches beyond the script world"),
    }
}

#[test]
fn a_component_that_imports_the_write_interface_is_refused_at_load_naming_it() {
    let (import, why) = refused(&format!("{RELEASE}script_rogue_writer.wasm"));
    assert_eq!(import, "scadalink:tracking/store@0.1.0");
    assert!(why.starts_with("the store's write interface"), "{why}");
}

#[test]
fn a_component_that_imports_the_storage_capability_is_refused_at_load_naming_it() {
    let (import, why) = refused(BUILT_COMPONENT);
    assert_eq!(import, "scadalink:tracking/storage@0.1.0");
    assert!(why.starts_with("the SQL storage capability"), "{why}");
}

#[test]
fn a_component_that_imports_the_filesystem_is_refused_at_load_naming_it() {
    let (import, why) = refused(&format!("{RELEASE}script_rogue_filesystem.wasm"));
    assert!(import.starts_with("wasi:filesystem/"), "{import}");
    assert!(why.starts_with("the filesystem"), "{why}");

    let message = runner()
        .load(format!("{RELEASE}script_rogue_filesystem.wasm"))
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains(&import), "{message}");
}

#[test]
fn a_hundred_runs_over_threads_while_writers_are_busy_are_all_correct() {
    const SCRIPT_THREADS: usize = 4;
    const RUNS_PER_THREAD: usize = 25;

    let site = Site::new();
    let expected = site.expected_lines();
    // Half the threads on the shared runner, half on one with wasmtime's
    // pooling allocator, which has room for all of them at once.
    let cache = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/script-cache");
    let config = RunnerConfig::default()
        .pool(Some(SCRIPT_THREADS as u32))
        .cache_dir(Some(cache.into()));
    let pooled = ScriptRunner::new(config).unwrap();
    let pooled_rust = pooled.load(rust_example()).unwrap();
    let rust = script(&rust_example());
    let done = std::sync::atomic::AtomicBool::new(false);
    let (runs, writes, slowest) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let store = site.test.store.clone();
                let done = &done;
                scope.spawn(move || {
                    let mut writes = 0u64;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = new_id();
                        store
                            .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
                            .unwrap();
                        store
                            .record_attempt(&id, Retrying, 1, None, Some(503))
                            .unwrap();
                        writes += 2;
                    }
                    writes
                })
            })
            .collect();

        let scripts: Vec<_> = (0..SCRIPT_THREADS)
            .map(|thread| {
                let (runner, rust) = if thread % 2 == 0 {
                    (runner(), &rust)
                } else {
                    (&pooled, &pooled_rust)
                };
                let (site, expected) = (&site, &expected);
                scope.spawn(move || {
                    let mut slowest = Duration::ZERO;
                    for _ in 0..RUNS_PER_THREAD {
                        let out = runner
                            .run(rust, &site.test.store, &args(&site.ids()))
                            .unwrap();
                        assert_eq!(out.result.as_deref(), Ok(SUMMARY));
                        assert_eq!(&out.output.stdout_text(), expected);
                        slowest = slowest.max(out.elapsed);
                    }
                    slowest
                })
            })
            .collect();

        let slowest = scripts
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        (SCRIPT_THREADS * RUNS_PER_THREAD, writes, slowest)
    });

    assert_eq!(runs, 100);
    assert!(writes > 0, "the writers never ran");
    // Far inside the deadline: a run never waited for a commit long enough
    // to be stopped.
    assert!(slowest < ScriptLimits::default().timeout, "{slowest:?}");
    println!("100 runs beside {writes} committed writes; slowest run {slowest:?}");
}
