//! `make bench`, second part: status scripts. Prints, for the Rust example
//! reading one id, its runs per second on one thread, the cost of one run
//! against one direct `get_status` call on the host measured in the same
//! run (a ratio), and the instantiation time from the pre-instantiated
//! template, with wasmtime's on-demand allocator and with its pooling
//! allocator. The JavaScript example's run is printed beside it.
//!
//! Environment: `BENCH_RUNS` (default 2000) runs per measurement.

use std::time::{Duration, Instant};

use tracking_host::script::{RunnerConfig, Script, ScriptRunner};
use tracking_host::{OperationStatus, TrackingStore};
use tracking_tests::{TestStore, new_id};

const RUST_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/status_summary_rs.wasm"
);
const JS_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/scripts/status-summary-js.wasm"
);
const CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/script-cache");

/// What instantiation from the template should stay under.
const INSTANTIATION_TARGET: Duration = Duration::from_micros(50);

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let test = TestStore::new();
    let id = new_id();
    test.enqueue(&id);
    test.store
        .record_terminal(&id, OperationStatus::Delivered, None, Some(200))
        .unwrap();
    let args = vec![id.clone()];

    let direct = per_call(runs * 10, || {
        test.store.get_status(&id).unwrap().unwrap();
    });
    println!("direct get_status on the host: {}", micros(direct));

    let on_demand = runner(None);
    let pooled = runner(Some(8));
    let mut table = Vec::new();
    for (name, runner) in [("on-demand", &on_demand), ("pooling", &pooled)] {
        let script = runner.load(RUST_EXAMPLE).expect("run `make scripts` first");
        let (run, instantiation) = measure(runner, &script, &test.store, &args, runs);
        println!(
            "Rust example, {name}: {:.0} runs/s, one run {} = {:.0}x get_status; \
             instantiation median {} (target < {})",
            1.0 / run.as_secs_f64(),
            micros(run),
            run.as_secs_f64() / direct.as_secs_f64(),
            micros(instantiation),
            micros(INSTANTIATION_TARGET),
        );
        table.push((name, run, instantiation));
    }

    let js = on_demand
        .load(JS_EXAMPLE)
        .expect("run `make scripts` first");
    let (run, instantiation) = measure(&on_demand, &js, &test.store, &args, runs / 10);
    println!(
        "JavaScript example, on-demand: {:.0} runs/s, one run {} = {:.0}x get_status; \
         instantiation median {}",
        1.0 / run.as_secs_f64(),
        micros(run),
        run.as_secs_f64() / direct.as_secs_f64(),
        micros(instantiation),
    );

    println!();
    println!(
        "| Rust example, 1 id | runs/s | one run | run / get_status | instantiation (median) |"
    );
    println!("|---|---|---|---|---|");
    for (name, run, instantiation) in table {
        println!(
            "| {name} | {:.0} | {} | {:.0}x | {}{} |",
            1.0 / run.as_secs_f64(),
            micros(run),
            run.as_secs_f64() / direct.as_secs_f64(),
            micros(instantiation),
            if instantiation < INSTANTIATION_TARGET {
                ""
            } else {
                " (over target)"
            },
        );
    }
}

fn runner(pool: Option<u32>) -> ScriptRunner {
    let config = RunnerConfig::default()
        .pool(pool)
        .cache_dir(Some(CACHE.into()));
    ScriptRunner::new(config).expect("a script runner")
}

/// Mean time of one run, and the median instantiation, after a warm-up.
fn measure(
    runner: &ScriptRunner,
    script: &Script,
    store: &TrackingStore,
    args: &[String],
    runs: usize,
) -> (Duration, Duration) {
    for _ in 0..runs / 10 + 1 {
        runner.run(script, store, args).unwrap();
    }
    let mut instantiations = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let out = runner.run(script, store, args).unwrap();
        assert!(out.result.is_ok(), "{:?}", out.result);
        instantiations.push(out.instantiation);
    }
    let mean = started.elapsed() / runs as u32;
    instantiations.sort();
    (mean, instantiations[runs / 2])
}

fn per_call(calls: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..calls / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..calls {
        f();
    }
    started.elapsed() / calls as u32
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
