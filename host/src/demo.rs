//! `tracking demo`: a simulated site driving the real component into a real
//! database file.
//!
//! Operations of both kinds come from several instances, scripts and nodes
//! and each lives a plausible life: delivered at once, retried through 503s,
//! 429s and timeouts, parked when retries run out, failed, discarded, or
//! still in flight at the end. The forwarder is at-least-once, so some
//! enqueues arrive twice and some attempt telemetry arrives late. Simulated
//! time spans more than the retention window, so the scheduled purge
//! deletes rows while the site runs. At the end every operation is checked
//! against what the simulation expects, and a summary is printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tracking_host::purge::format_ms;
use tracking_host::{
    Durability, ManualClock, OperationStatus, Plugin, PurgeSchedule, StoreConfig, TrackingStore,
    clock::system_now_ms,
};

use crate::cli::{Failure, describe};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Options of `tracking demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many operations the site issues.
    #[arg(long, default_value_t = 12_000)]
    operations: usize,
    /// How many days of site time to simulate, 1 to 3650; more than 7 lets
    /// the scheduled purge delete rows.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Seed of the simulation; the same seed gives the same traffic.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Real time between two scheduled purges while the demo runs.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    purge_every: Duration,
    /// Add to an existing database instead of starting a fresh one.
    #[arg(long)]
    keep: bool,
}

/// One call the simulated forwarder makes.
#[derive(Clone, Debug)]
enum Call {
    Enqueue,
    Attempt {
        status: OperationStatus,
        retry_count: u32,
        error: Option<&'static str>,
        http: Option<u16>,
    },
    Terminal {
        status: OperationStatus,
        error: Option<&'static str>,
        http: Option<u16>,
    },
}

/// A call the simulation knows the answer to: whether it must change the row.
#[derive(Clone, Debug)]
struct Event {
    at: i64,
    op: usize,
    call: Call,
    expect_change: bool,
}

struct Operation {
    id: String,
    kind: &'static str,
    target: String,
    instance: String,
    script: &'static str,
    node: &'static str,
    /// The status the operation ends the simulation in.
    fate: OperationStatus,
    terminal_at: Option<i64>,
}

const SCRIPTS: [&str; 6] = [
    "OnBatchComplete",
    "OnShiftEnd",
    "SyncRecipes",
    "PostAlarmToMes",
    "WriteHistorian",
    "ReportEnergy",
];
const NODES: [&str; 3] = ["edge-node-a", "edge-node-b", "edge-node-c"];
const TRANSIENT: [(&str, Option<u16>); 4] = [
    ("503 Service Unavailable", Some(503)),
    ("429 Too Many Requests: retry after 30s", Some(429)),
    ("connection timed out after 30s", None),
    ("502 Bad Gateway", Some(502)),
];
const DB_TRANSIENT: [&str; 2] = [
    "database is locked (SQLITE_BUSY) on historian",
    "could not connect to server: Connection refused",
];

/// Builds the site's traffic: the operations and every call, in time order.
fn simulate(count: usize, days: u32, seed: u64, end: i64) -> (Vec<Operation>, Vec<Event>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = end - i64::from(days) * DAY_MS;
    let mut ops = Vec::with_capacity(count);
    let mut events = Vec::with_capacity(count * 4);

    for index in 0..count {
        let is_call = rng.u8(0..10) < 7;
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        let id = uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string();
        let (kind, target) = if is_call {
            let path = ["orders", "batches", "alarms", "energy-readings"][rng.usize(0..4)];
            (
                "ExternalSystem.CachedCall",
                format!("POST https://erp.plant.local/api/{path}"),
            )
        } else {
            let table = ["batch_log", "recipe_audit", "downtime"][rng.usize(0..3)];
            (
                "Database.CachedWrite",
                format!("INSERT INTO historian.{table}"),
            )
        };
        let enqueued_at = rng.i64(start..end - HOUR_MS);
        let roll = rng.u8(0..100);
        let fate = match roll {
            0..60 => OperationStatus::Delivered,
            60..80 => OperationStatus::Delivered,
            80..88 => OperationStatus::Parked,
            88..94 => OperationStatus::Failed,
            94..97 => OperationStatus::Discarded,
            _ => OperationStatus::Retrying,
        };
        let retries = match roll {
            0..60 => 0,
            60..80 => rng.u32(1..5),
            80..88 => 8,
            88..94 => rng.u32(0..2),
            _ => rng.u32(1..4),
        };

        let mut push = |at: i64, call: Call, expect_change: bool| {
            events.push(Event {
                at,
                op: index,
                call,
                expect_change,
            })
        };
        push(enqueued_at, Call::Enqueue, true);
        if rng.u8(0..100) < 5 {
            // The forwarder restarted before it saw the acknowledgement.
            push(enqueued_at + rng.i64(50..5_000), Call::Enqueue, false);
        }

        let mut at = enqueued_at;
        let mut last_transient = (None, None);
        for retry in 1..=retries {
            // Exponential backoff, 30 s doubling, capped at 30 minutes.
            at += (30_000i64 << retry.min(6)).min(30 * 60_000) + rng.i64(0..5_000);
            let (error, http) = if is_call {
                TRANSIENT[rng.usize(0..TRANSIENT.len())]
            } else {
                (DB_TRANSIENT[rng.usize(0..DB_TRANSIENT.len())], None)
            };
            last_transient = (Some(error), http);
            let call = Call::Attempt {
                status: OperationStatus::Retrying,
                retry_count: retry,
                error: Some(error),
                http,
            };
            push(at, call, true);
        }

        let mut terminal_at = None;
        if fate.is_terminal() {
            at += rng.i64(200..20_000);
            let (error, http) = match fate {
                OperationStatus::Delivered => (None, is_call.then_some(200)),
                OperationStatus::Parked => last_transient,
                OperationStatus::Failed if is_call => {
                    (Some("422 Unprocessable Entity: unknown order"), Some(422))
                }
                OperationStatus::Failed => {
                    (Some("UNIQUE constraint failed: batch_log.batch_id"), None)
                }
                _ => (Some("discarded by operator from the parked queue"), None),
            };
            push(
                at,
                Call::Terminal {
                    status: fate,
                    error,
                    http,
                },
                true,
            );
            terminal_at = Some(at);

            if rng.u8(0..100) < 4 && retries > 0 {
                // Attempt telemetry that was overtaken by the terminal write.
                let call = Call::Attempt {
                    status: OperationStatus::Retrying,
                    retry_count: retries,
                    error: Some("late telemetry"),
                    http: None,
                };
                push(at + rng.i64(10..2_000), call, false);
            }
        }

        ops.push(Operation {
            id,
            kind,
            target,
            instance: format!(
                "{}-{:02}",
                ["Pump", "Filler", "Mixer", "Boiler"][index % 4],
                index % 12
            ),
            script: SCRIPTS[rng.usize(0..SCRIPTS.len())],
            node: NODES[rng.usize(0..NODES.len())],
            fate,
            terminal_at,
        });
    }

    events.sort_by_key(|e| e.at);
    (ops, events)
}

/// Runs the demo: simulate, check every row, print the summary.
pub fn run(
    component: &Path,
    db: &Path,
    durability: Durability,
    args: DemoArgs,
) -> Result<(), Failure> {
    let other = |e: std::io::Error| Failure::Other(format!("{}: {e}", db.display()));
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(other)?;
    }
    if !args.keep {
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", db.display());
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(other(e)),
                _ => {}
            }
        }
    }

    let end = system_now_ms();
    let (ops, events) = simulate(args.operations, args.days, args.seed, end);
    let retention = PurgeSchedule::DEFAULT_RETENTION;
    let clock = ManualClock::new(end - i64::from(args.days) * DAY_MS);
    let plugin = Plugin::load(component)?;
    let config = StoreConfig::new(db)
        .durability(durability)
        .clock(clock.clone())
        .purge(Some(PurgeSchedule {
            retention,
            interval: args.purge_every,
        }));
    let store = TrackingStore::open(&plugin, config)?;

    println!(
        "Simulating {} operations over {} days of site time into {} (durability {:?}) ...",
        ops.len(),
        args.days,
        db.display(),
        durability
    );
    let progress = ProgressBar::new(events.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} calls  {per_sec}  site time {msg}")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    let mut surprises = Vec::new();
    for (n, event) in events.iter().enumerate() {
        clock.set(event.at);
        let op = &ops[event.op];
        let changed = apply(&store, op, &event.call)?;
        if changed != event.expect_change {
            surprises.push(format!("{} {:?}: changed={changed}", op.id, event.call));
        }
        if n % 256 == 0 {
            progress.set_position(n as u64);
            progress.set_message(format_ms(event.at));
        }
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    clock.set(end);

    // Stop the scheduled purge (dropping the store joins its thread), then
    // reopen the file as a site runtime would after a restart, so that the
    // counts below are not moved by a purge running beside them.
    let scheduled = store.purge_stats();
    drop(store);
    let config = StoreConfig::new(db)
        .durability(durability)
        .clock(clock)
        .purge(None);
    let store = TrackingStore::open(&plugin, config)?;

    let before = tally(&store, &ops)?;
    let cutoff = end - retention.as_millis() as i64;
    let final_purge = store.purge_terminal(cutoff)?;
    let after = tally(&store, &ops)?;
    check_rows(&store, &ops, cutoff, &mut surprises)?;

    println!(
        "{} calls in {:.2} s: {:.0} operations per second through the component (each committed)",
        events.len(),
        elapsed.as_secs_f64(),
        events.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "Scheduled purge (retention 7 days) ran {} times while the site ran and deleted {} rows.",
        scheduled.runs, scheduled.deleted
    );
    println!(
        "After a restart, a final purge of rows terminal before {} deleted {final_purge} more.\n",
        format_ms(cutoff)
    );
    print_counts(&ops, &before, &after);

    if let Some(sample) = sample(&ops, &store)? {
        println!(
            "\nOne operation, as `tracking status --id {}` shows it:",
            sample.id
        );
        print!("{}", describe(&sample));
    }
    if !surprises.is_empty() {
        return Err(Failure::Other(format!(
            "{} results differ from the contract, e.g. {}",
            surprises.len(),
            surprises[0]
        )));
    }
    println!(
        "\nEvery row matches what the simulation expected. Try: tracking --db {} status --id <id>",
        db.display()
    );
    Ok(())
}

fn apply(store: &TrackingStore, op: &Operation, call: &Call) -> Result<bool, Failure> {
    let changed = match *call {
        Call::Enqueue => store.record_enqueue(
            &op.id,
            op.kind,
            Some(&op.target),
            Some(&op.instance),
            Some(op.script),
            Some(op.node),
        )?,
        Call::Attempt {
            status,
            retry_count,
            error,
            http,
        } => store.record_attempt(&op.id, status, retry_count, error, http)?,
        Call::Terminal {
            status,
            error,
            http,
        } => store.record_terminal(&op.id, status, error, http)?,
    };
    Ok(changed)
}

/// Rows in the file by status, read back one by one through the component.
fn tally(
    store: &TrackingStore,
    ops: &[Operation],
) -> Result<BTreeMap<&'static str, usize>, Failure> {
    let mut counts = BTreeMap::new();
    for op in ops {
        let name = match store.get_status(&op.id)? {
            Some(snapshot) => snapshot.status.as_str(),
            None => "(purged)",
        };
        *counts.entry(name).or_insert(0) += 1;
    }
    Ok(counts)
}

/// After the final purge a row is in the file exactly when it is in flight
/// or became terminal within the retention window, and in its expected
/// status.
fn check_rows(
    store: &TrackingStore,
    ops: &[Operation],
    cutoff: i64,
    surprises: &mut Vec<String>,
) -> Result<(), Failure> {
    for op in ops {
        let snapshot = store.get_status(&op.id)?;
        let should_exist = op.terminal_at.is_none_or(|at| at >= cutoff);
        match snapshot {
            Some(s) if s.status != op.fate => {
                surprises.push(format!("{} is {}, expected {}", op.id, s.status, op.fate))
            }
            Some(_) if !should_exist => {
                surprises.push(format!("{} should have been purged", op.id))
            }
            None if should_exist => surprises.push(format!("{} is missing", op.id)),
            _ => {}
        }
    }
    Ok(())
}

fn print_counts(
    ops: &[Operation],
    before: &BTreeMap<&'static str, usize>,
    after: &BTreeMap<&'static str, usize>,
) {
    let mut simulated: BTreeMap<&str, usize> = BTreeMap::new();
    for op in ops {
        *simulated.entry(op.fate.as_str()).or_insert(0) += 1;
    }
    println!(
        "{:<10} {:>10} {:>20} {:>19}",
        "status", "simulated", "before final purge", "after final purge"
    );
    let names = OperationStatus::ALL.map(|s| s.as_str());
    for name in names.iter().copied().chain(["(purged)"]) {
        let get = |m: &BTreeMap<&str, usize>| m.get(name).copied().unwrap_or(0);
        println!(
            "{name:<10} {:>10} {:>20} {:>19}",
            get(&simulated),
            get(before),
            get(after)
        );
    }
    println!(
        "{:<10} {:>10} {:>20} {:>19}",
        "total",
        ops.len(),
        ops.len(),
        ops.len()
    );
}

/// An operation that was retried before it was delivered, if one is still
/// in the file.
fn sample(
    ops: &[Operation],
    store: &TrackingStore,
) -> Result<Option<tracking_host::OperationSnapshot>, Failure> {
    for op in ops.iter().rev() {
        if op.fate != OperationStatus::Delivered || op.kind != "ExternalSystem.CachedCall" {
            continue;
        }
        if let Some(snapshot) = store.get_status(&op.id)?
            && snapshot.retry_count >= 2
        {
            return Ok(Some(snapshot));
        }
    }
    Ok(None)
}
