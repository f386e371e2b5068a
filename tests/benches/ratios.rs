//! `make bench`: the store measured against baselines taken in the same
//! run, printed as one table of ratios. Absolute times on a shared 2-core
//! machine are noise; a ratio between two things measured minutes apart on
//! the same machine is not.
//!
//! Environment: `BENCH_PURGE_ROWS` (default 1000000) sets the size of the
//! purge benchmark; `BENCH_DIR` (default `target/bench`) where its files go;
//! `BENCH_ONLY` (say `memory,purge`) runs only the benchmarks it names, of
//! `memory`, `file`, `group`, `reads`, `purge` and `start`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params};
use tracking_host::OperationStatus::*;
use tracking_host::{
    BUILT_COMPONENT, Durability, Plugin, PurgeSchedule, StoreConfig, TrackingStore,
};
use tracking_tests::queued_lifecycles;

/// One line of the table.
struct Row {
    name: String,
    ours: String,
    baseline: String,
    ratio: f64,
    target: &'static str,
    met: bool,
}

fn main() {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = Plugin::load(BUILT_COMPONENT).expect("run `make guest` first");
    println!("machine: {}", machine());

    println!("(each row prints as it completes; the table follows)");
    let mut rows = Vec::new();
    let shm = Path::new("/dev/shm");
    let memory_dir = if shm.is_dir() {
        shm.join("tracking-bench")
    } else {
        dir.join("mem")
    };
    std::fs::create_dir_all(&memory_dir).unwrap();
    let mut add = |row: Row| {
        println!(
            "{}: {} vs {} = {:.2}x (target {})",
            row.name, row.ours, row.baseline, row.ratio, row.target
        );
        rows.push(row);
    };
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let benchmarks: [(&str, &dyn Fn() -> Vec<Row>); 6] = [
        ("memory", &|| {
            vec![per_operation(&plugin, &memory_dir, "in memory (tmpfs)")]
        }),
        ("file", &|| vec![per_operation(&plugin, &dir, "on a file")]),
        ("group", &|| group_commit(&plugin, &dir)),
        ("reads", &|| vec![reads_beside_writers(&plugin, &dir)]),
        ("purge", &|| purge(&plugin, &dir)),
        ("start", &|| vec![fast_start(&dir)]),
    ];
    for (name, run) in benchmarks {
        if wanted(name) {
            run().into_iter().for_each(&mut add);
        }
    }
    let _ = std::fs::remove_dir_all(&memory_dir);

    println!();
    println!("| benchmark | ours | baseline | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let met = if r.met { "yes" } else { "no" };
        println!(
            "| {} | {} | {} | {:.2}x | {} | {met} |",
            r.name, r.ours, r.baseline, r.ratio, r.target
        );
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn config(path: &Path) -> StoreConfig {
    StoreConfig::new(path).purge(None)
}

fn id(n: u64) -> String {
    uuid::Uuid::from_u64_pair(0x5eed_0000_0000_4000, 0x8000_0000_0000_0000 | n).to_string()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// 1. One lifecycle (enqueue, attempt, terminal, get-status), one thread.

const LIFECYCLES: u64 = 1_500;

fn per_operation(plugin: &Plugin, dir: &Path, place: &str) -> Row {
    let mut ours = Vec::new();
    let mut native = Vec::new();
    for round in 0..3 {
        let path = fresh(dir, "per-op-component.db");
        let store = TrackingStore::open(plugin, config(&path)).unwrap();
        ours.push(timed(|| component_lifecycles(&store, round)));
        drop(store);

        let path = fresh(dir, "per-op-native.db");
        // The same file set-up as the host: the component creates the schema.
        drop(TrackingStore::open(plugin, config(&path)).unwrap());
        let mut baseline = Native::open(&path);
        native.push(timed(|| baseline.lifecycles(round)));
    }
    let (ours, native) = (median(ours), median(native));
    let per = |d: Duration| {
        format!(
            "{:.1} µs/op",
            d.as_secs_f64() * 1e6 / (LIFECYCLES * 4) as f64
        )
    };
    let ratio = ours.as_secs_f64() / native.as_secs_f64();
    Row {
        name: format!("each operation through the component vs native rusqlite, {place}"),
        ours: per(ours),
        baseline: per(native),
        ratio,
        target: "≤ 1.3x",
        met: ratio <= 1.3,
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn component_lifecycles(store: &TrackingStore, round: u64) {
    for n in 0..LIFECYCLES {
        let id = id(round << 32 | n);
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
        store
            .record_attempt(&id, Retrying, 1, Some("503 Service Unavailable"), Some(503))
            .unwrap();
        store
            .record_terminal(&id, Delivered, None, Some(200))
            .unwrap();
        store.get_status(&id).unwrap().unwrap();
    }
}

/// What the component and host do per operation, as plain rusqlite: the
/// same statements, the same transactions and savepoints, the same
/// connections (a writer and a read-only reader) and settings.
struct Native {
    writer: Connection,
    reader: Connection,
}

const SELECT_ROW: &str = "SELECT id, kind, target_summary, source_instance_id, source_script,
        source_node, status, retry_count, last_error, http_status, created_at, updated_at,
        terminal_at
    FROM operations WHERE id = ?1";

/// A row as the store reads it: every column, as a native store would need
/// them to apply a transition or answer a status query.
#[allow(dead_code)] // read to be paid for, not looked at
struct NativeRow {
    id: String,
    kind: String,
    target_summary: Option<String>,
    source_instance_id: Option<String>,
    source_script: Option<String>,
    source_node: Option<String>,
    status: String,
    retry_count: i64,
    last_error: Option<String>,
    http_status: Option<i64>,
    created_at: i64,
    updated_at: i64,
    terminal_at: Option<i64>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NativeRow> {
    Ok(NativeRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        target_summary: r.get(2)?,
        source_instance_id: r.get(3)?,
        source_script: r.get(4)?,
        source_node: r.get(5)?,
        status: r.get(6)?,
        retry_count: r.get(7)?,
        last_error: r.get(8)?,
        http_status: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        terminal_at: r.get(12)?,
    })
}

impl Native {
    fn open(path: &Path) -> Self {
        let writer = Connection::open(path).unwrap();
        writer.busy_timeout(Duration::from_secs(5)).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "synchronous", "FULL").unwrap();
        let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        Native { writer, reader }
    }

    fn write(&mut self, f: impl FnOnce(&Connection)) {
        let c = &self.writer;
        c.execute_batch("BEGIN IMMEDIATE; SAVEPOINT operation")
            .unwrap();
        let version: i64 = c
            .prepare_cached("PRAGMA user_version")
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        f(c);
        c.execute_batch("RELEASE operation; COMMIT").unwrap();
    }

    fn update(
        c: &Connection,
        id: &str,
        status: &str,
        retry: i64,
        error: Option<&str>,
        http: i64,
        terminal: bool,
    ) {
        let row = c
            .prepare_cached(SELECT_ROW)
            .unwrap()
            .query_row([id], read_row)
            .unwrap();
        // The store's rule: a row's timestamps never go back.
        let at = now().max(row.updated_at);
        if terminal {
            c.prepare_cached(
                "UPDATE operations
    SET status = ?2, last_error = ?3, http_status = ?4,
        updated_at = MAX(updated_at, ?5), terminal_at = MAX(updated_at, ?5)
    WHERE id = ?1 AND terminal_at IS NULL",
            )
            .unwrap()
            .execute(params![id, status, error, http, at])
            .unwrap();
        } else {
            c.prepare_cached(
                "UPDATE operations
    SET status = ?2, retry_count = ?3, last_error = ?4, http_status = ?5,
        updated_at = MAX(updated_at, ?6)
    WHERE id = ?1 AND terminal_at IS NULL AND retry_count <= ?3",
            )
            .unwrap()
            .execute(params![id, status, retry, error, http, at])
            .unwrap();
        }
    }

    fn lifecycles(&mut self, round: u64) {
        for n in 0..LIFECYCLES {
            let id = id(round << 32 | n);
            self.write(|c| {
                let now = now();
                c.prepare_cached(
                    "INSERT INTO operations (id, kind, target_summary,
        source_instance_id, source_script, source_node, status, retry_count, last_error,
        http_status, created_at, updated_at, terminal_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (id) DO NOTHING",
                )
                .unwrap()
                .execute(params![
                    id,
                    "ExternalSystem.CachedCall",
                    "POST /orders",
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    "submitted",
                    0,
                    None::<String>,
                    None::<i64>,
                    now,
                    now,
                    None::<i64>
                ])
                .unwrap();
            });
            self.write(|c| {
                Self::update(
                    c,
                    &id,
                    "retrying",
                    1,
                    Some("503 Service Unavailable"),
                    503,
                    false,
                )
            });
            self.write(|c| Self::update(c, &id, "delivered", 1, None, 200, true));

            let r = &self.reader;
            r.execute_batch("BEGIN DEFERRED").unwrap();
            let _: i64 = r
                .prepare_cached("PRAGMA user_version")
                .unwrap()
                .query_row([], |r| r.get(0))
                .unwrap();
            r.prepare_cached(SELECT_ROW)
                .unwrap()
                .query_row([&id], read_row)
                .unwrap();
            r.execute_batch("ROLLBACK").unwrap();
        }
    }
}

fn now() -> i64 {
    tracking_host::clock::system_now_ms()
}

// 2. Sixteen threads of full lifecycles, durable: group commit vs one
//    commit per operation, made two ways.

const THREADS: u64 = 16;

/// How the sixteen threads reach the file.
#[derive(Clone, Copy)]
enum Writers {
    /// One store shared by all threads: one writer, at most `max_batch`
    /// operations per commit. Each thread runs `in_flight` lifecycles at
    /// once: one with the blocking methods, more with the `*_async` ones,
    /// queueing the same step of each before awaiting any.
    Shared { max_batch: usize, in_flight: usize },
    /// A store of its own for each thread, so sixteen write connections
    /// taking turns at SQLite's write lock, one commit per operation.
    OnePerThread,
}

/// Batch sizes of a run: the mean and the largest.
struct Batches {
    mean: f64,
    largest: usize,
}

/// Operations per second, and the sizes of the commits.
fn throughput(plugin: &Plugin, path: &Path, writers: Writers, per_thread: u64) -> (f64, Batches) {
    let open = |max_batch: usize| {
        TrackingStore::open(
            plugin,
            config(path)
                .durability(Durability::Full)
                .max_batch(max_batch)
                .readers(1),
        )
        .unwrap()
    };
    let (stores, in_flight): (Vec<TrackingStore>, u64) = match writers {
        Writers::Shared {
            max_batch,
            in_flight,
        } => (vec![open(max_batch); THREADS as usize], in_flight as u64),
        Writers::OnePerThread => ((0..THREADS).map(|_| open(1)).collect(), 1),
    };
    let elapsed = timed(|| {
        std::thread::scope(|scope| {
            for (t, store) in stores.iter().enumerate() {
                scope.spawn(move || {
                    let ids = (0..per_thread).map(|n| id((t as u64) << 32 | n));
                    if in_flight == 1 {
                        ids.for_each(|id| blocking_lifecycle(store, &id));
                    } else {
                        let ids: Vec<String> = ids.collect();
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        for chunk in ids.chunks(in_flight as usize) {
                            runtime.block_on(queued_lifecycles(store, chunk, |_, _| {}));
                        }
                    }
                });
            }
        })
    });
    let ops = (THREADS * per_thread * 3) as f64;
    // The shared writer's stores are clones of one handle: count it once.
    let stats: Vec<_> = match writers {
        Writers::Shared { .. } => vec![stores[0].stats()],
        Writers::OnePerThread => stores.iter().map(TrackingStore::stats).collect(),
    };
    let commits: u64 = stats.iter().map(|s| s.commits).sum();
    let operations: u64 = stats.iter().map(|s| s.operations).sum();
    let batches = Batches {
        mean: operations as f64 / commits.max(1) as f64,
        largest: stats.iter().map(|s| s.largest_batch).max().unwrap_or(0),
    };
    (ops / elapsed.as_secs_f64(), batches)
}

fn blocking_lifecycle(store: &TrackingStore, id: &str) {
    assert!(
        store
            .record_enqueue(id, "Database.CachedWrite", None, None, None, None)
            .unwrap()
    );
    assert!(
        store
            .record_attempt(id, Retrying, 1, Some("busy"), None)
            .unwrap()
    );
    assert!(store.record_terminal(id, Delivered, None, None).unwrap());
}

/// Lifecycles each thread runs at once through the `*_async` methods in the
/// second measurement of group commit.
const IN_FLIGHT: usize = 8;

fn group_commit(plugin: &Plugin, dir: &Path) -> Vec<Row> {
    let shared = |max_batch, in_flight| Writers::Shared {
        max_batch,
        in_flight,
    };
    let run =
        |name, writers, per_thread| throughput(plugin, &fresh(dir, name), writers, per_thread);
    let (grouped, batch) = run("group.db", shared(256, 1), 400);
    let (alone, _) = run("alone.db", shared(1, 1), 100);
    let (apart, _) = run("apart.db", Writers::OnePerThread, 100);
    let (queued, queued_batch) = run("queued.db", shared(256, IN_FLIGHT), 800);
    let (queued_alone, _) = run("queued-alone.db", shared(1, IN_FLIGHT), 100);
    let row = |what: String, ours: f64, batch: &Batches, baseline: &str, rate: f64| {
        let ratio = ours / rate;
        Row {
            name: format!(
                "{what}, synchronous=FULL: group commit (batches of {:.1} on average, {} at most) vs {baseline}",
                batch.mean, batch.largest
            ),
            ours: format!("{ours:.0} ops/s"),
            baseline: format!("{rate:.0} ops/s"),
            ratio,
            target: "≥ 20x",
            met: ratio >= 20.0,
        }
    };
    let blocking = || "16 threads of lifecycles".to_owned();
    let queueing = || format!("16 threads of {IN_FLIGHT} lifecycles at once each (async)");
    vec![
        row(
            blocking(),
            grouped,
            &batch,
            "a commit per operation through the one writer",
            alone,
        ),
        row(
            blocking(),
            grouped,
            &batch,
            "a commit per operation from a store per thread",
            apart,
        ),
        row(
            queueing(),
            queued,
            &queued_batch,
            "the same through the one writer with a commit per operation",
            queued_alone,
        ),
        // A blocking connection has one write in flight, so this baseline
        // is the sixteen stores above, each thread committing its own.
        row(
            queueing(),
            queued,
            &queued_batch,
            "a commit per operation from a store per thread",
            apart,
        ),
    ]
}

// 3. get-status latency beside 16 busy writers.

/// The p99 latency of `get-status` over 3,000 reads, as the median of three
/// rounds: one round's tail can be a moment when the machine was busy with
/// something else (the kernel writing back an earlier benchmark's file).
fn p99_get_status(store: &TrackingStore, ids: &[String]) -> Duration {
    let round = || {
        let mut latencies: Vec<Duration> = ids
            .iter()
            .cycle()
            .take(3_000)
            .map(|id| timed(|| drop(store.get_status(id).unwrap())))
            .collect();
        latencies.sort();
        latencies[latencies.len() * 99 / 100]
    };
    median((0..3).map(|_| round()).collect())
}

fn reads_beside_writers(plugin: &Plugin, dir: &Path) -> Row {
    let store = TrackingStore::open(plugin, config(&fresh(dir, "reads.db"))).unwrap();
    let ids: Vec<String> = (0..200).map(|n| id(1 << 40 | n)).collect();
    for id in &ids {
        store
            .record_enqueue(id, "ExternalSystem.CachedCall", None, None, None, None)
            .unwrap();
    }
    let idle = p99_get_status(&store, &ids);

    let stop = AtomicBool::new(false);
    let busy = std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (store, stop) = (store.clone(), &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = id(t << 32 | n);
                    store
                        .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
                        .unwrap();
                    store.record_terminal(&id, Delivered, None, None).unwrap();
                    n += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        let busy = p99_get_status(&store, &ids);
        stop.store(true, Ordering::Relaxed);
        busy
    });
    let ratio = busy.as_secs_f64() / idle.as_secs_f64();
    Row {
        name: "get-status p99 while 16 writers commit vs on an idle store".into(),
        ours: format!("{:.0} µs", busy.as_secs_f64() * 1e6),
        baseline: format!("{:.0} µs", idle.as_secs_f64() * 1e6),
        ratio,
        target: "≤ 5x",
        met: ratio <= 5.0,
    }
}

// 4. Purging a large backlog: batched through the component vs one native
//    DELETE; and how long a writer waits meanwhile.

fn purge(plugin: &Plugin, dir: &Path) -> Vec<Row> {
    let rows: u64 = std::env::var("BENCH_PURGE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let template = fresh(dir, "purge-template.db");
    drop(TrackingStore::open(plugin, config(&template)).unwrap());
    fill(&template, rows);

    let native_path = fresh(dir, "purge-native.db");
    copy_durably(&template, &native_path);
    let native = {
        let c = Connection::open(&native_path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        timed(|| {
            let deleted = c
                .execute(
                    "DELETE FROM operations WHERE terminal_at IS NOT NULL AND terminal_at < ?1",
                    [i64::MAX],
                )
                .unwrap();
            assert_eq!(deleted as u64, rows);
        })
    };

    let ours_path = fresh(dir, "purge-component.db");
    copy_durably(&template, &ours_path);
    let schedule = PurgeSchedule {
        retention: Duration::ZERO,
        interval: Duration::from_secs(3600),
    };
    // The first scheduled purge starts as the store opens.
    let store = TrackingStore::open(plugin, config(&ours_path).purge(Some(schedule))).unwrap();
    let mut longest = Duration::ZERO;
    let mut n = 0;
    while store.purge_stats().runs == 0 {
        let id = id(3 << 40 | n);
        let took = timed(|| {
            store
                .record_enqueue(&id, "Database.CachedWrite", None, None, None, None)
                .unwrap();
        });
        longest = longest.max(took);
        n += 1;
    }
    let report = store.purge_stats().last.unwrap();
    assert_eq!(report.deleted, rows);
    drop(store);
    for path in [&template, &native_path, &ours_path] {
        fresh(
            path.parent().unwrap(),
            path.file_name().unwrap().to_str().unwrap(),
        );
    }

    let ratio = report.took.as_secs_f64() / native.as_secs_f64();
    println!(
        "after that purge, {} pages were given back in {:.2} s",
        report.reclaimed_pages,
        report.reclaim_took.as_secs_f64()
    );
    vec![
        Row {
            name: format!(
                "purge {rows} terminal rows among {rows} in flight: batched via the component vs one native DELETE"
            ),
            ours: format!("{:.2} s", report.took.as_secs_f64()),
            baseline: format!("{:.2} s", native.as_secs_f64()),
            ratio,
            target: "≤ 2x",
            met: ratio <= 2.0,
        },
        Row {
            name: format!(
                "longest wait of a concurrent writer during that purge and its reclaim ({n} writes)"
            ),
            ours: format!("{:.1} ms", longest.as_secs_f64() * 1e3),
            baseline: "100 ms".into(),
            ratio: longest.as_secs_f64() / 0.1,
            target: "< 100 ms",
            met: longest < Duration::from_millis(100),
        },
    ]
}

/// Copies a database file and flushes the copy, so that the first commit
/// measured after it does not pay for writing back hundreds of megabytes.
fn copy_durably(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::File::open(to).unwrap().sync_all().unwrap();
}

/// `rows` terminal rows and as many in flight, written natively.
fn fill(path: &Path, rows: u64) {
    let mut c = Connection::open(path).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO operations (id, kind, status, retry_count, created_at, updated_at, terminal_at)
                 VALUES (?1, 'Database.CachedWrite', ?2, 0, ?3, ?3, ?4)",
            )
            .unwrap();
        for n in 0..rows * 2 {
            let terminal = n % 2 == 0;
            let at = 1_700_000_000_000 + n as i64;
            let (status, terminal_at) = if terminal {
                ("delivered", Some(at))
            } else {
                ("retrying", None)
            };
            insert
                .execute(params![id(2 << 40 | n), status, at, terminal_at])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

// 5. Opening a store: compiled code from the cache vs compiling afresh.

fn fast_start(dir: &Path) -> Row {
    let cache = dir.join("compiled-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let path = fresh(dir, "start.db");
    let open = |cache: Option<&Path>| {
        timed(|| {
            let plugin = Plugin::load_with(BUILT_COMPONENT, cache).unwrap();
            drop(TrackingStore::open(&plugin, config(&path)).unwrap());
        })
    };
    open(Some(&cache)); // fills the cache
    let cached = median((0..5).map(|_| open(Some(&cache))).collect());
    let afresh = median((0..5).map(|_| open(None)).collect());
    let ratio = afresh.as_secs_f64() / cached.as_secs_f64();
    Row {
        name: "open a store: cached compiled component vs compiling afresh (speed-up)".into(),
        ours: format!("{:.1} ms", cached.as_secs_f64() * 1e3),
        baseline: format!("{:.1} ms", afresh.as_secs_f64() * 1e3),
        ratio,
        target: "≥ 10x",
        met: ratio >= 10.0,
    }
}
