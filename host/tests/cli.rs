//! The `tracking` binary: each command, its JSON output and its exit codes,
//! run as a user runs it, on a real file with the real component.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const ID: &str = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";

struct Cli {
    dir: TempDir,
}

impl Cli {
    fn new() -> Self {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("site.db")
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_db(&self.db(), args)
    }

    /// Runs and expects `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        if code == 0 {
            assert!(
                stderr.is_empty(),
                "a success prints nothing on stderr: {stderr}"
            );
        } else {
            assert!(
                stderr.contains("error"),
                "a failure says why on stderr: {stderr}"
            );
        }
        stdout
    }

    fn stderr(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stderr).unwrap()
    }

    fn status_json(&self, id: &str) -> Value {
        serde_json::from_str(&self.expect(0, &["status", "--id", id, "--json"])).unwrap()
    }
}

fn run_with_db(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracking"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("TRACKING_DB")
        .output()
        .unwrap()
}

fn enqueue(cli: &Cli) {
    cli.expect(
        0,
        &[
            "enqueue",
            "--id",
            ID,
            "--kind",
            "ExternalSystem.CachedCall",
            "--target",
            "POST /orders",
            "--instance",
            "Pump-07",
            "--script",
            "OnBatchComplete",
            "--node",
            "edge-node-a",
        ],
    );
}

#[test]
fn enqueue_then_status_json_prints_every_field_in_snake_case() {
    let cli = Cli::new();
    enqueue(&cli);
    let row = cli.status_json(ID);

    assert_eq!(row["id"], ID);
    assert_eq!(row["kind"], "ExternalSystem.CachedCall");
    assert_eq!(row["target_summary"], "POST /orders");
    assert_eq!(row["source_instance_id"], "Pump-07");
    assert_eq!(row["source_script"], "OnBatchComplete");
    assert_eq!(row["source_node"], "edge-node-a");
    assert_eq!(row["status"], "submitted");
    assert_eq!(row["retry_count"], 0);
    assert_eq!(row["last_error"], Value::Null);
    assert_eq!(row["http_status"], Value::Null);
    assert_eq!(row["terminal_at"], Value::Null);
    assert!(row["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(row["created_at"], row["updated_at"]);
    assert_eq!(row.as_object().unwrap().len(), 13);
}

#[test]
fn status_json_of_an_unknown_id_prints_null_and_succeeds() {
    let cli = Cli::new();
    enqueue(&cli);
    let other = "5d1c7e2b-3a4f-4b6c-8d9e-0a1b2c3d4e5f";
    assert_eq!(
        cli.expect(0, &["status", "--id", other, "--json"]).trim(),
        "null"
    );
    assert!(
        cli.expect(0, &["status", "--id", other])
            .contains("no such operation")
    );
}

#[test]
fn a_duplicate_enqueue_is_a_success_that_changes_nothing() {
    let cli = Cli::new();
    enqueue(&cli);
    let before = cli.status_json(ID);
    let out = cli.expect(
        0,
        &["enqueue", "--id", ID, "--kind", "Database.CachedWrite"],
    );
    assert!(out.contains("left unchanged"), "{out}");
    assert_eq!(cli.status_json(ID), before);
}

#[test]
fn attempt_terminal_and_purge_walk_a_full_lifecycle() {
    let cli = Cli::new();
    enqueue(&cli);
    let out = cli.expect(
        0,
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "retrying",
            "--retry-count",
            "2",
            "--error",
            "503 Service Unavailable",
            "--http",
            "503",
        ],
    );
    assert!(out.starts_with("updated"), "{out}");
    let row = cli.status_json(ID);
    assert_eq!(
        (row["status"].as_str(), row["retry_count"].as_u64()),
        (Some("retrying"), Some(2))
    );
    assert_eq!(row["last_error"], "503 Service Unavailable");
    assert_eq!(row["http_status"], 503);

    let out = cli.expect(
        0,
        &[
            "terminal",
            "--id",
            ID,
            "--status",
            "delivered",
            "--http",
            "200",
        ],
    );
    assert!(out.starts_with("finished"), "{out}");
    let row = cli.status_json(ID);
    assert_eq!(row["status"], "delivered");
    assert_eq!(row["terminal_at"], row["updated_at"]);

    // First terminal write wins; a late attempt is dropped.
    let out = cli.expect(0, &["terminal", "--id", ID, "--status", "failed"]);
    assert!(out.contains("left unchanged"), "{out}");
    cli.expect(
        0,
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "retrying",
            "--retry-count",
            "9",
        ],
    );
    assert_eq!(cli.status_json(ID)["status"], "delivered");

    // The purge bound is strict.
    let terminal_at = row["terminal_at"].as_i64().unwrap();
    let at = terminal_at.to_string();
    assert!(
        cli.expect(0, &["purge", "--older-than", &at])
            .starts_with("purged 0 ")
    );
    let after = (terminal_at + 1).to_string();
    assert!(
        cli.expect(0, &["purge", "--older-than", &after])
            .starts_with("purged 1 ")
    );
    assert_eq!(
        cli.expect(0, &["status", "--id", ID, "--json"]).trim(),
        "null"
    );
}

#[test]
fn purge_takes_rfc3339_times_and_retention_durations() {
    let cli = Cli::new();
    enqueue(&cli);
    cli.expect(0, &["terminal", "--id", ID, "--status", "discarded"]);

    let out = cli.expect(0, &["purge", "--older-than", "2001-01-01T00:00:00Z"]);
    assert_eq!(
        out.trim(),
        "purged 0 terminal rows older than 2001-01-01T00:00:00.000Z"
    );
    let out = cli.expect(0, &["purge", "--older-than", "2001-01-01T02:30:00+02:30"]);
    assert_eq!(
        out.trim(),
        "purged 0 terminal rows older than 2001-01-01T00:00:00.000Z",
        "an offset is taken into account"
    );
    assert!(
        cli.expect(0, &["purge", "--retention", "7d"])
            .starts_with("purged 0 ")
    );
    assert!(
        cli.expect(0, &["purge", "--retention", "0s"])
            .starts_with("purged 1 ")
    );
}

#[test]
fn status_without_json_prints_a_readable_snapshot() {
    let cli = Cli::new();
    enqueue(&cli);
    let out = cli.expect(0, &["status", "--id", ID]);
    for line in [
        "id: 0f8e2c1a",
        "status: submitted",
        "retry count: 0",
        "source node: edge-node-a",
    ] {
        assert!(out.contains(line), "{line:?} missing from\n{out}");
    }
}

#[test]
fn invalid_input_exits_with_2_and_names_the_field() {
    let cli = Cli::new();
    enqueue(&cli);
    let before = cli.status_json(ID);
    let cases: [(&[&str], &str); 11] = [
        (&["enqueue", "--id", "nope", "--kind", "k"], "invalid id"),
        (&["enqueue", "--id", ID, "--kind", ""], "invalid kind"),
        (
            &[
                "attempt",
                "--id",
                ID,
                "--status",
                "delivered",
                "--retry-count",
                "1",
            ],
            "invalid status",
        ),
        (
            &[
                "attempt",
                "--id",
                ID,
                "--status",
                "retrying",
                "--retry-count",
                "1",
                "--http",
                "600",
            ],
            "invalid http-status",
        ),
        (
            &["terminal", "--id", ID, "--status", "retrying"],
            "invalid status",
        ),
        (&["status", "--id", "0f8e2c1a"], "invalid id"),
        // A negative status is a value to refuse, not a flag clap does not know.
        (
            &["terminal", "--id", ID, "--status", "failed", "--http", "-1"],
            "'--http <HTTP>': must be an HTTP status (a whole number, 100..=599)",
        ),
        (
            &["purge", "--older-than", "2026-12-01T00:00:00-25:00"],
            "'--older-than <MS_OR_RFC3339>': expected milliseconds",
        ),
        (
            &["purge", "--older-than", "1969-12-31T23:59:59Z"],
            "times before 1970 are not supported",
        ),
        (
            &[
                "attempt",
                "--id",
                ID,
                "--status",
                "retrying",
                "--retry-count",
                "-1",
            ],
            "'--retry-count <RETRY_COUNT>'",
        ),
        (
            &["purge", "--retention", "-5d"],
            "'--retention <RETENTION>'",
        ),
    ];
    for (args, message) in cases {
        cli.expect(2, args);
        let stderr = cli.stderr(args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(cli.status_json(ID), before, "bad input changed nothing");
}

#[test]
fn malformed_arguments_exit_with_2() {
    let cli = Cli::new();
    for args in [
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "bogus",
            "--retry-count",
            "1",
        ][..],
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "retrying",
            "--retry-count",
            "-1",
        ],
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "Retrying",
            "--retry-count",
            "1",
        ],
        &[
            "terminal", "--id", ID, "--status", "failed", "--http", "70000",
        ],
        &["purge"],
        &["purge", "--older-than", "1", "--retention", "1d"],
        &["purge", "--older-than", "yesterday"],
        &["purge", "--retention", "a week"],
        &["enqueue", "--id", ID],
        &["frobnicate"],
    ] {
        let out = cli.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_missing_database_is_not_created_by_reads_and_exits_with_1() {
    let cli = Cli::new();
    let stderr = cli.stderr(&["status", "--id", ID]);
    cli.expect(1, &["status", "--id", ID]);
    assert!(stderr.contains("no such file"), "{stderr}");
    cli.expect(
        1,
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "retrying",
            "--retry-count",
            "1",
        ],
    );
    assert!(!cli.db().exists());
}

#[test]
fn a_missing_component_exits_with_1_and_says_how_to_build_it() {
    let cli = Cli::new();
    let args = [
        "--component",
        "/nonexistent/tracking.wasm",
        "status",
        "--id",
        ID,
    ];
    cli.expect(1, &args);
    assert!(cli.stderr(&args).contains("make guest"));
}

#[test]
fn help_describes_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_tracking"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "enqueue", "attempt", "terminal", "status", "purge", "demo", "--db",
    ] {
        assert!(help.contains(command), "{command} missing from --help");
    }
}

#[test]
fn the_demo_leaves_a_file_that_status_can_read() {
    let cli = Cli::new();
    let out = cli.expect(
        0,
        &[
            "demo",
            "--operations",
            "300",
            "--days",
            "9",
            "--purge-every",
            "10ms",
        ],
    );
    assert!(out.contains("Every row matches"), "{out}");
    assert!(out.contains("operations per second"), "{out}");
    let id = out
        .lines()
        .find_map(|line| line.trim().strip_prefix("id: "))
        .expect("the demo prints a sample operation");
    assert_eq!(cli.status_json(id)["status"], "delivered");
}

#[test]
fn status_never_writes_to_the_file_it_reads() {
    let cli = Cli::new();
    std::fs::write(cli.db(), b"").unwrap();
    assert_eq!(
        cli.expect(0, &["status", "--id", ID, "--json"]).trim(),
        "null"
    );
    assert_eq!(
        std::fs::metadata(cli.db()).unwrap().len(),
        0,
        "no table was created"
    );

    // Another program's SQLite file gains no table either.
    let other = cli.dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE readings (value REAL)")
        .unwrap();
    drop(conn);
    let out = run_with_db(&other, &["status", "--id", ID, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let conn = rusqlite::Connection::open(&other).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);
}

#[test]
fn purge_bounds_past_the_year_9999_are_accepted_and_printed_as_milliseconds() {
    let cli = Cli::new();
    enqueue(&cli);
    cli.expect(0, &["terminal", "--id", ID, "--status", "parked"]);
    let out = cli.expect(0, &["purge", "--older-than", "9223372036854775807"]);
    assert_eq!(
        out.trim(),
        "purged 1 terminal rows older than 9223372036854775807 ms since the Unix epoch"
    );
}

#[test]
fn demo_refuses_zero_days() {
    let cli = Cli::new();
    cli.expect(2, &["demo", "--operations", "10", "--days", "0"]);
}

#[test]
fn status_escapes_control_characters_in_stored_text() {
    let cli = Cli::new();
    enqueue(&cli);
    let error = "line1\nFAKE     status: delivered\u{1b}[31m";
    cli.expect(
        0,
        &[
            "attempt",
            "--id",
            ID,
            "--status",
            "retrying",
            "--retry-count",
            "1",
            "--error",
            error,
        ],
    );
    let out = cli.expect(0, &["status", "--id", ID]);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(out.contains(r"line1\nFAKE"), "{out}");
    let status_lines = out
        .lines()
        .filter(|l| l.trim_start().starts_with("status:"))
        .count();
    assert_eq!(status_lines, 1, "no line was faked: {out}");
    assert_eq!(
        cli.status_json(ID)["last_error"],
        error,
        "the stored text is unchanged"
    );
}
