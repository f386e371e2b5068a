//! The commands of the `tracking` binary, parsed by clap.
//!
//! Exit codes: 0 on success (a duplicate or a no-op is a success), 2 for
//! invalid input, whether clap or the component found it, 1 for anything
//! else. The reason goes to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracking_host::purge::format_ms;
use tracking_host::script::{Captured, RunnerConfig, ScriptError, ScriptLimits, ScriptRunner};
use tracking_host::{
    BUILT_COMPONENT, Durability, Error, OperationSnapshot, OperationStatus, Plugin, StoreConfig,
    TrackingStore,
};

use crate::demo;

/// The site-local store of where each cached call and cached write stands.
///
/// Every command opens the database, runs one operation through the
/// tracking-store component, and commits before it prints.
#[derive(Debug, Parser)]
#[command(name = "tracking", version, propagate_version = true)]
pub struct Cli {
    /// The SQLite database file.
    #[arg(
        long,
        global = true,
        env = "TRACKING_DB",
        default_value = "var/tracking.db"
    )]
    db: PathBuf,

    /// The compiled tracking-store component.
    #[arg(long, global = true, env = "TRACKING_COMPONENT", default_value = BUILT_COMPONENT)]
    component: PathBuf,

    /// full: an acknowledged write survives power loss. normal: it survives
    /// a crash of the process only, and commits are much cheaper.
    #[arg(long, global = true, value_enum, default_value_t = Durability::Full)]
    durability: Durability,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record a new operation in `submitted` (a duplicate id changes nothing).
    Enqueue(EnqueueArgs),
    /// Record an in-flight attempt on an operation.
    Attempt(AttemptArgs),
    /// Record an operation's final outcome (the first one wins).
    Terminal(TerminalArgs),
    /// Show where an operation stands.
    Status(StatusArgs),
    /// Delete terminal operations older than a bound.
    Purge(PurgeArgs),
    /// Simulate a site's traffic through the real component into --db.
    Demo(demo::DemoArgs),
    /// Site scripts: sandboxed components that read status from --db.
    #[command(subcommand)]
    Script(ScriptCommand),
}

#[derive(Debug, Subcommand)]
enum ScriptCommand {
    /// Run a component of the status-script world once, print what it
    /// printed and its result. Exit 1 when it failed or was stopped.
    Run(ScriptRunArgs),
}

#[derive(Debug, Args)]
struct ScriptRunArgs {
    /// The script component (.wasm), e.g. one built by `make scripts`.
    script: PathBuf,
    /// Wall-clock deadline of the run, e.g. 500ms or 2s.
    #[arg(long, value_parser = parse_timeout, default_value = "1s")]
    timeout: Duration,
    /// Memory cap of the run, e.g. 16MiB or 64MB (MiB = 2^20 bytes,
    /// MB = 10^6); a plain number is bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32MiB")]
    memory: usize,
    /// Arguments passed to the script's `run`, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct EnqueueArgs {
    /// Operation id, a UUID.
    #[arg(long)]
    id: String,
    /// Operation kind, e.g. ExternalSystem.CachedCall or Database.CachedWrite.
    #[arg(long)]
    kind: String,
    /// Where the operation goes, e.g. "POST https://erp/orders".
    #[arg(long)]
    target: Option<String>,
    /// The source instance that issued it.
    #[arg(long)]
    instance: Option<String>,
    /// The source script that issued it.
    #[arg(long)]
    script: Option<String>,
    /// The source node that issued it.
    #[arg(long)]
    node: Option<String>,
}

#[derive(Debug, Args)]
struct AttemptArgs {
    /// Operation id, a UUID.
    #[arg(long)]
    id: String,
    /// submitted or retrying.
    #[arg(long, value_enum)]
    status: OperationStatus,
    /// The forwarder's attempt counter; a value lower than the stored one is
    /// ignored as late telemetry.
    #[arg(long, allow_negative_numbers = true)]
    retry_count: u32,
    /// The attempt's error text.
    #[arg(long)]
    error: Option<String>,
    /// The attempt's HTTP status, 100..=599.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_http_status)]
    http: Option<u16>,
}

#[derive(Debug, Args)]
struct TerminalArgs {
    /// Operation id, a UUID.
    #[arg(long)]
    id: String,
    /// delivered, parked, failed or discarded.
    #[arg(long, value_enum)]
    status: OperationStatus,
    /// The final error text.
    #[arg(long)]
    error: Option<String>,
    /// The final HTTP status, 100..=599.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_http_status)]
    http: Option<u16>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Operation id, a UUID.
    #[arg(long)]
    id: String,
    /// Print one JSON object with snake_case fields, or `null` when unknown.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct PurgeArgs {
    /// Delete rows that became terminal strictly before this time:
    /// milliseconds since the Unix epoch, or RFC 3339 (2026-12-01T00:00:00Z).
    #[arg(
        long,
        value_name = "MS_OR_RFC3339",
        value_parser = parse_instant,
        allow_hyphen_values = true
    )]
    older_than: Option<i64>,
    /// Delete rows that became terminal longer ago than this, e.g. 7d or 36h.
    #[arg(long, value_parser = humantime::parse_duration, allow_hyphen_values = true)]
    retention: Option<Duration>,
}

/// Why a command failed, and so which exit code it ends with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The store refused or failed the call.
    #[error("{0}")]
    Store(#[from] Error),
    /// The script was refused, stopped, or could not be run.
    #[error("{0}")]
    Script(#[from] ScriptError),
    /// Anything else: the output could not be written, and the like.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// 2 for invalid input, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Store(error) if error.is_invalid_input() => 2,
            _ => 1,
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Demo(args) = cli.command {
        return demo::run(&cli.component, &cli.db, cli.durability, args);
    }
    if let Command::Script(ScriptCommand::Run(args)) = cli.command {
        return run_script(&cli.component, &cli.db, args);
    }

    let plugin = Plugin::load(&cli.component)?;
    // Only enqueue may create the file: reading or updating a file that is
    // not there is a mistyped path, not a new store.
    let creates = matches!(cli.command, Command::Enqueue(_) | Command::Purge(_));
    // Reading never writes, not even a table into an empty file.
    let reads_only = matches!(cli.command, Command::Status(_));
    let config = StoreConfig::new(&cli.db)
        .create(creates)
        .read_only(reads_only)
        .durability(cli.durability)
        .purge(None);
    let store = TrackingStore::open(&plugin, config)?;

    match cli.command {
        Command::Enqueue(a) => {
            let inserted = store.record_enqueue(
                &a.id,
                &a.kind,
                a.target.as_deref(),
                a.instance.as_deref(),
                a.script.as_deref(),
                a.node.as_deref(),
            )?;
            report(
                inserted,
                "enqueued",
                "already recorded; left unchanged",
                &a.id,
            );
        }
        Command::Attempt(a) => {
            let changed =
                store.record_attempt(&a.id, a.status, a.retry_count, a.error.as_deref(), a.http)?;
            report(changed, "updated", UNCHANGED_ATTEMPT, &a.id);
        }
        Command::Terminal(a) => {
            let changed = store.record_terminal(&a.id, a.status, a.error.as_deref(), a.http)?;
            report(
                changed,
                "finished",
                "unknown or already terminal; left unchanged",
                &a.id,
            );
        }
        Command::Status(a) => print_status(store.get_status(&a.id)?, a.json)?,
        Command::Purge(a) => {
            let older_than = match (a.older_than, a.retention) {
                (Some(at), _) => at,
                (None, Some(retention)) => {
                    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                    store.clock().now_ms().saturating_sub(retention)
                }
                (None, None) => unreachable!("clap requires one of the two"),
            };
            let deleted = store.purge_terminal(older_than)?;
            println!(
                "purged {deleted} terminal rows older than {}",
                format_ms(older_than)
            );
        }
        Command::Demo(_) | Command::Script(_) => unreachable!("handled above"),
    }
    Ok(())
}

/// `script run`: the script is loaded (and refused) before the store is
/// opened, and the file must exist: a script only reads.
fn run_script(component: &Path, db: &Path, a: ScriptRunArgs) -> Result<(), Failure> {
    let limits = ScriptLimits {
        timeout: a.timeout,
        memory: a.memory,
        ..ScriptLimits::default()
    };
    let config = RunnerConfig::default()
        .limits(limits)
        .cache_dir(Plugin::default_cache_dir());
    let runner = ScriptRunner::new(config)?;
    let script = runner.load(&a.script)?;

    let plugin = Plugin::load(component)?;
    let config = StoreConfig::new(db)
        .create(false)
        .read_only(true)
        .purge(None);
    let store = TrackingStore::open(&plugin, config)?;
    match runner.run(&script, &store, &a.args) {
        Ok(run) => {
            print_captured(&run.output, limits.output);
            match run.result {
                Ok(answer) => {
                    println!("{answer}");
                    Ok(())
                }
                Err(reason) => Err(Failure::Other(format!("the script failed: {reason}"))),
            }
        }
        Err(error) => {
            if let Some(output) = error.output() {
                print_captured(output, limits.output);
            }
            Err(error.into())
        }
    }
}

/// The script's stdout on stdout and its stderr on stderr, as it wrote
/// them, and a note for what its caps dropped.
fn print_captured(output: &Captured, cap: usize) {
    // A closed pipe downstream is not the script's failure.
    let _ = std::io::stdout().write_all(&output.stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&output.stderr);
    for (stream, dropped) in [
        ("stdout", output.stdout_dropped),
        ("stderr", output.stderr_dropped),
    ] {
        if dropped > 0 {
            eprintln!(
                "note: {dropped} bytes of the script's {stream} past its {cap}-byte cap were dropped"
            );
        }
    }
}

/// A script's deadline, e.g. `500ms` or `2s`: a zero deadline would stop
/// every script before its first instruction.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(Duration::ZERO) => Err("the timeout must be above zero".into()),
        Ok(timeout) => Ok(timeout),
        Err(e) => Err(format!("expected a duration such as 500ms or 2s ({e})")),
    }
}

/// A memory size: `32MiB`, `64MB`, `1GiB` or plain bytes, parsed by
/// `bytesize` (IEC units are powers of 1024, SI units powers of 1000).
fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|e| format!("expected a size such as 32MiB or 64MB ({e})"))?;
    match usize::try_from(size.as_u64()) {
        Ok(0) => Err("the memory cap must be above zero".into()),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err("the memory cap is too large for this machine".into()),
    }
}

const UNCHANGED_ATTEMPT: &str =
    "unknown, terminal, or a retry count below the stored one; left unchanged";

fn report(changed: bool, done: &str, not_done: &str, id: &str) {
    if changed {
        println!("{done} {id}");
    } else {
        println!("{id}: {not_done}");
    }
}

fn print_status(snapshot: Option<OperationSnapshot>, json: bool) -> Result<(), Failure> {
    if json {
        let text = serde_json::to_string(&snapshot).map_err(|e| Failure::Other(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    match snapshot {
        None => println!("no such operation (never recorded, or purged)"),
        Some(s) => print!("{}", describe(&s)),
    }
    Ok(())
}

/// A snapshot as aligned `field: value` lines, for people.
pub fn describe(s: &OperationSnapshot) -> String {
    // Stored text comes from remote systems; a control character in it must
    // not move the cursor, colour the terminal or fake another line.
    let or_dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), printable);
    let lines = [
        ("id", s.id.clone()),
        ("kind", printable(&s.kind)),
        ("status", s.status.to_string()),
        ("retry count", s.retry_count.to_string()),
        ("last error", or_dash(s.last_error.as_deref())),
        (
            "http status",
            s.http_status.map_or("-".into(), |h| h.to_string()),
        ),
        ("target", or_dash(s.target_summary.as_deref())),
        ("source instance", or_dash(s.source_instance_id.as_deref())),
        ("source script", or_dash(s.source_script.as_deref())),
        ("source node", or_dash(s.source_node.as_deref())),
        ("created at", format_ms(s.created_at)),
        ("updated at", format_ms(s.updated_at)),
        ("terminal at", s.terminal_at.map_or("-".into(), format_ms)),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{name:>15}: {value}\n"))
        .collect()
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// Milliseconds since the epoch, or an RFC 3339 time: with its offset
/// (`Z`, `+02:00`), or without one, read as UTC. The RFC's grammar is held
/// to strictly, since the time decides which rows are deleted: no offsets
/// past ±23:59, no compact forms, no annotations.
fn parse_instant(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let ms = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => time.timestamp_millis(),
        Err(_) => {
            let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
                format!("expected milliseconds since the Unix epoch or an RFC 3339 time ({e})")
            })?;
            chrono::DateTime::<chrono::Utc>::from(time).timestamp_millis()
        }
    };
    if ms < 0 {
        return Err("times before 1970 are not supported".into());
    }
    Ok(ms)
}

/// An HTTP status as a number the store can check: a negative or oversized
/// one is refused here, before it is mistaken for a flag or wraps.
fn parse_http_status(text: &str) -> Result<u16, String> {
    text.parse::<i64>()
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("must be an HTTP status (a whole number, 100..=599), got {text:?}"))
}
