//! The standalone component (`make standalone`: the guest composed with the
//! SQLite storage plug) driven through the official wasmtime CLI, one
//! process per call, as someone trying the component without our host
//! would; the file it keeps shared with the native host both ways; and the
//! built guest's world checked against `wit/`.
//!
//! The tools are the pinned ones `make tools` installs into `.tools/bin`
//! (or `$TRACKING_TOOLS/bin`); a missing one fails the test, naming the
//! command that installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;
use tracking_host::OperationStatus::{Delivered, Retrying};
use tracking_host::{ManualClock, StoreConfig, TrackingStore};
use tracking_tests::{T0, new_id, plugin};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const STANDALONE: &str = "target/standalone/tracking-standalone.wasm";
const GUEST: &str = "target/wasm32-wasip2/release/tracking_guest.wasm";
const TRACKING_CLI: &str = "target/release/tracking";
const KIND: &str = "ExternalSystem.CachedCall";

fn workspace_file(relative: &str, made_by: &str) -> PathBuf {
    let path = Path::new(WORKSPACE).join(relative);
    assert!(
        path.is_file(),
        "{} is missing; `{made_by}` builds it",
        path.display()
    );
    path
}

/// A pinned tool, at its project-local path.
fn tool(name: &str) -> PathBuf {
    let root = std::env::var_os("TRACKING_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(WORKSPACE).join(".tools"));
    let path = root.join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing; `make tools` installs it (`make test` does too)",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A data directory the standalone component is run on, `--dir DATA::/`.
struct Standalone {
    data: TempDir,
}

impl Standalone {
    fn new() -> Self {
        warm_compilation_cache();
        Standalone {
            data: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Runs `wasmtime run --dir DATA::/ --invoke CALL` in a process of its
    /// own and returns what it printed: the call's result in WAVE.
    fn invoke(&self, call: &str) -> String {
        invoke_in(self.data.path(), call)
    }

    fn path(&self) -> PathBuf {
        self.data.path().join("tracking.db")
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.data.path())
            .expect("read the data directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    fn enqueue(&self, id: &str) -> String {
        self.invoke(&format!(
            r#"record-enqueue("{id}", "{KIND}", some("POST /orders"), some("Pump-07"), none, none)"#
        ))
    }

    fn status(&self, id: &str) -> String {
        self.invoke(&format!(r#"get-status("{id}")"#))
    }

    /// A store of the native host on the same file.
    fn native(&self) -> TrackingStore {
        let config = StoreConfig::new(self.path())
            .clock(ManualClock::new(T0))
            .purge(None);
        TrackingStore::open(plugin(), config).expect("the native host opens the file")
    }
}

fn invoke_in(data: &Path, call: &str) -> String {
    let mut dir = data.as_os_str().to_owned();
    dir.push("::/");
    let standalone = workspace_file(STANDALONE, "make standalone");
    let printed = run(Command::new(tool("wasmtime"))
        .arg("run")
        .arg("--dir")
        .arg(dir)
        .arg("--invoke")
        .arg(call)
        .arg(standalone));
    printed.trim_end().to_owned()
}

/// The wasmtime CLI caches what Cranelift compiles; compiling the
/// standalone component (SQLite inside) once before the tests run in
/// parallel keeps them from all compiling it at the same time.
fn warm_compilation_cache() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let data = tempfile::tempdir().expect("a temporary directory");
        let printed = invoke_in(data.path(), &format!(r#"get-status("{}")"#, new_id()));
        assert_eq!(printed, "ok(none)");
    });
}

/// The text of `name`'s value in a printed WAVE record, e.g. `status` in
/// `ok(some({id: "…", status: delivered, …}))`; `None` when the record
/// leaves the field out (WAVE omits fields that are `none`).
fn field(printed: &str, name: &str) -> Option<String> {
    let start = printed.find(&format!("{name}: "))? + name.len() + 2;
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for (i, c) in printed[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' if depth > 0 => depth -= 1,
            ',' | ')' | '}' | ']' if depth == 0 => {
                return Some(printed[start..start + i].to_owned());
            }
            _ => {}
        }
    }
    None
}

fn timestamp(printed: &str, name: &str) -> i64 {
    let text = field(printed, name).unwrap_or_else(|| panic!("no {name} in {printed}"));
    let digits = text.trim_start_matches("some(").trim_end_matches(')');
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a timestamp: {text}"))
}

// --- every operation of the contract, one process per call ---------------

#[test]
fn enqueue_then_get_status_in_a_second_process_finds_the_row() {
    let s = Standalone::new();
    let id = new_id();
    assert_eq!(s.enqueue(&id), "ok(true)");

    let row = s.status(&id);
    assert!(row.starts_with("ok(some({"), "{row}");
    assert_eq!(field(&row, "id"), Some(format!("\"{id}\"")));
    assert_eq!(field(&row, "kind"), Some(format!("\"{KIND}\"")));
    assert_eq!(
        field(&row, "target-summary").as_deref(),
        Some(r#"some("POST /orders")"#)
    );
    assert_eq!(
        field(&row, "source-instance-id").as_deref(),
        Some(r#"some("Pump-07")"#)
    );
    assert_eq!(field(&row, "source-script"), None);
    assert_eq!(field(&row, "status").as_deref(), Some("submitted"));
    assert_eq!(field(&row, "retry-count").as_deref(), Some("0"));
    assert_eq!(field(&row, "terminal-at"), None);
    assert_eq!(timestamp(&row, "created-at"), timestamp(&row, "updated-at"));
}

#[test]
fn the_standalone_component_leaves_only_the_database_file_behind() {
    let s = Standalone::new();
    s.enqueue(&new_id());
    // Checkpointed and unlocked: no `-wal` for the next process to replay
    // and no `.lock` directory to block it.
    assert_eq!(s.files(), ["tracking.db"]);
}

#[test]
fn ids_are_printed_in_canonical_lowercase_whatever_their_spelling() {
    let s = Standalone::new();
    let id = new_id();
    assert_eq!(s.enqueue(&id.to_uppercase()), "ok(true)");
    assert_eq!(field(&s.status(&id), "id"), Some(format!("\"{id}\"")));
}

#[test]
fn unknown_id_reads_as_none() {
    let s = Standalone::new();
    s.enqueue(&new_id());
    assert_eq!(s.status(&new_id()), "ok(none)");
}

#[test]
fn duplicate_enqueue_is_ignored_and_leaves_the_row_untouched() {
    let s = Standalone::new();
    let id = new_id();
    assert_eq!(s.enqueue(&id), "ok(true)");
    let before = s.status(&id);

    let again = format!(
        r#"record-enqueue("{id}", "Database.CachedWrite", some("other"), none, none, none)"#
    );
    assert_eq!(s.invoke(&again), "ok(false)");
    assert_eq!(s.status(&id), before);
}

#[test]
fn attempt_updates_a_row_in_flight_and_late_telemetry_is_ignored() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);

    let attempt = format!(
        r#"record-attempt("{id}", retrying, 2, some("503 Service Unavailable"), some(503))"#
    );
    assert_eq!(s.invoke(&attempt), "ok(true)");
    let row = s.status(&id);
    assert_eq!(field(&row, "status").as_deref(), Some("retrying"));
    assert_eq!(field(&row, "retry-count").as_deref(), Some("2"));
    assert_eq!(
        field(&row, "last-error").as_deref(),
        Some(r#"some("503 Service Unavailable")"#)
    );
    assert_eq!(field(&row, "http-status").as_deref(), Some("some(503)"));

    // A lower retry-count is an older attempt arriving late.
    let late = format!(r#"record-attempt("{id}", submitted, 1, none, none)"#);
    assert_eq!(s.invoke(&late), "ok(false)");
    assert_eq!(s.status(&id), row);

    let unknown = format!(r#"record-attempt("{}", retrying, 1, none, none)"#, new_id());
    assert_eq!(s.invoke(&unknown), "ok(false)");
}

#[test]
fn first_terminal_write_wins() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);

    let delivered = format!(r#"record-terminal("{id}", delivered, none, some(200))"#);
    assert_eq!(s.invoke(&delivered), "ok(true)");
    let row = s.status(&id);
    assert_eq!(field(&row, "status").as_deref(), Some("delivered"));
    assert_eq!(field(&row, "http-status").as_deref(), Some("some(200)"));
    assert_eq!(
        timestamp(&row, "terminal-at"),
        timestamp(&row, "updated-at")
    );

    let failed = format!(r#"record-terminal("{id}", failed, some("too late"), some(500))"#);
    assert_eq!(s.invoke(&failed), "ok(false)");
    let attempt = format!(r#"record-attempt("{id}", retrying, 9, none, none)"#);
    assert_eq!(s.invoke(&attempt), "ok(false)");
    assert_eq!(s.status(&id), row, "a terminal row is final");

    let unknown = format!(r#"record-terminal("{}", parked, none, none)"#, new_id());
    assert_eq!(s.invoke(&unknown), "ok(false)");
}

#[test]
fn purge_deletes_terminal_rows_strictly_older_than_the_boundary() {
    let s = Standalone::new();
    let (done, in_flight) = (new_id(), new_id());
    s.enqueue(&done);
    s.enqueue(&in_flight);
    s.invoke(&format!(
        r#"record-terminal("{done}", discarded, none, none)"#
    ));
    let terminal_at = timestamp(&s.status(&done), "terminal-at");

    assert_eq!(s.invoke(&format!("purge-terminal({terminal_at})")), "ok(0)");
    assert!(
        s.status(&done).starts_with("ok(some("),
        "terminal-at == boundary stays"
    );

    assert_eq!(
        s.invoke(&format!("purge-terminal({})", terminal_at + 1)),
        "ok(1)"
    );
    assert_eq!(s.status(&done), "ok(none)");

    // Rows in flight stay, however old.
    assert_eq!(s.invoke(&format!("purge-terminal({})", i64::MAX)), "ok(0)");
    assert!(s.status(&in_flight).starts_with("ok(some("));
}

#[test]
fn bad_input_is_answered_with_the_invalid_input_variant_and_changes_nothing() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);
    let before = s.status(&id);
    let long = "x".repeat(129);

    let cases = [
        ("id", r#"get-status("not-a-uuid")"#.to_owned()),
        (
            "id",
            format!(r#"record-enqueue("42", "{KIND}", none, none, none, none)"#),
        ),
        (
            "kind",
            format!(
                r#"record-enqueue("{}", "", none, none, none, none)"#,
                new_id()
            ),
        ),
        (
            "kind",
            format!(
                r#"record-enqueue("{}", "{long}", none, none, none, none)"#,
                new_id()
            ),
        ),
        (
            "status",
            format!(r#"record-attempt("{id}", delivered, 1, none, none)"#),
        ),
        (
            "status",
            format!(r#"record-terminal("{id}", retrying, none, none)"#),
        ),
        (
            "http-status",
            format!(r#"record-attempt("{id}", retrying, 1, none, some(600))"#),
        ),
        (
            "http-status",
            format!(r#"record-terminal("{id}", failed, none, some(99))"#),
        ),
    ];
    for (field_name, call) in cases {
        let printed = s.invoke(&call);
        assert!(
            printed.starts_with(&format!(
                r#"err(invalid-input({{field: "{field_name}", rule: ""#
            )),
            "{call}\n printed {printed}"
        );
    }
    assert_eq!(s.status(&id), before);
}

#[test]
fn standalone_runs_at_the_same_time_take_turns_on_the_file() {
    let s = Standalone::new();
    let ids: Vec<String> = (0..6).map(|_| new_id()).collect();
    std::thread::scope(|scope| {
        for id in &ids {
            let s = &s;
            scope.spawn(move || assert_eq!(s.enqueue(id), "ok(true)"));
        }
    });
    for id in &ids {
        assert!(s.status(id).starts_with("ok(some("), "{id} was lost");
    }
    let conn = rusqlite::Connection::open(s.path()).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_lock_left_by_a_killed_run_is_answered_with_the_storage_variant() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);

    // What a run killed inside a statement leaves: SQLite's WASI lock.
    let lock = s.data.path().join("tracking.db.lock");
    std::fs::create_dir(&lock).unwrap();
    let printed = s.status(&id);
    assert!(
        printed.starts_with(r#"err(storage("database is locked"#),
        "{printed}"
    );

    std::fs::remove_dir(&lock).unwrap();
    assert!(s.status(&id).starts_with("ok(some("));
}

// --- one file format, both ways ---------------------------------------------

#[test]
fn a_file_written_by_the_standalone_component_is_read_by_the_native_host() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);
    s.invoke(&format!(
        r#"record-attempt("{id}", retrying, 3, some("timeout"), none)"#
    ));
    let printed = s.status(&id);

    let store = s.native();
    let row = store
        .get_status(&id)
        .unwrap()
        .expect("the host finds the row");
    assert_eq!(row.kind, KIND);
    assert_eq!(row.target_summary.as_deref(), Some("POST /orders"));
    assert_eq!(row.source_instance_id.as_deref(), Some("Pump-07"));
    assert_eq!((row.status, row.retry_count), (Retrying, 3));
    assert_eq!(row.last_error.as_deref(), Some("timeout"));
    assert_eq!(row.created_at, timestamp(&printed, "created-at"));
    assert_eq!(row.updated_at, timestamp(&printed, "updated-at"));

    // And the host can go on writing it.
    assert!(
        store
            .record_terminal(&id, Delivered, None, Some(200))
            .unwrap()
    );
}

#[test]
fn the_tracking_cli_reads_a_file_written_by_the_standalone_component() {
    let s = Standalone::new();
    let id = new_id();
    s.enqueue(&id);
    let printed = s.status(&id);

    let cli = workspace_file(TRACKING_CLI, "cargo build --release -p tracking-host");
    let json = run(Command::new(cli)
        .arg("--db")
        .arg(s.path())
        .args(["status", "--id", &id, "--json"]));
    let row: serde_json::Value = serde_json::from_str(&json).expect("status --json");
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["status"], "submitted");
    assert_eq!(row["source_instance_id"], "Pump-07");
    assert_eq!(row["created_at"], timestamp(&printed, "created-at"));
}

#[test]
fn a_file_written_by_the_native_host_is_read_and_written_by_the_standalone_component() {
    let s = Standalone::new();
    let id = new_id();
    {
        let store = s.native();
        store
            .record_enqueue(&id, KIND, Some("POST /orders"), None, None, Some("edge-a"))
            .unwrap();
        store
            .record_attempt(&id, Retrying, 1, Some("503"), Some(503))
            .unwrap();
    }

    let row = s.status(&id);
    assert_eq!(field(&row, "status").as_deref(), Some("retrying"));
    assert_eq!(
        field(&row, "source-node").as_deref(),
        Some(r#"some("edge-a")"#)
    );
    assert_eq!(field(&row, "http-status").as_deref(), Some("some(503)"));
    assert_eq!(timestamp(&row, "created-at"), T0);

    let terminal = format!(r#"record-terminal("{id}", delivered, none, some(200))"#);
    assert_eq!(s.invoke(&terminal), "ok(true)");
    let other = new_id();
    assert_eq!(s.enqueue(&other), "ok(true)");

    let store = s.native();
    let row = store.get_status(&id).unwrap().unwrap();
    assert_eq!((row.status, row.http_status), (Delivered, Some(200)));
    assert!(store.get_status(&other).unwrap().is_some());
}

#[test]
fn a_host_file_left_with_its_wal_is_read_by_the_standalone_component() {
    let s = Standalone::new();
    let id = new_id();
    let store = s.native();
    store
        .record_enqueue(&id, KIND, None, None, None, None)
        .unwrap();

    // While the host has the file open its last commits may be only in the
    // `-wal`, as after a crash. Run the standalone component on a copy.
    let copy = Standalone::new();
    for name in s.files() {
        if !name.ends_with("-shm") {
            std::fs::copy(s.data.path().join(&name), copy.data.path().join(&name)).unwrap();
        }
    }
    assert!(
        copy.status(&id).starts_with("ok(some("),
        "the row in the -wal is found"
    );
    drop(store);
}

// --- the built guest's world is the one in wit/ -----------------------------

/// `wasm-tools component wit` of a component.
fn printed_wit(component: &Path) -> String {
    run(Command::new(tool("wasm-tools"))
        .args(["component", "wit"])
        .arg(component))
}

/// The world of `wit/`, printed the same way: a placeholder component made
/// from the WIT alone has exactly its imports and exports.
fn expected_wit() -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (core, component) = (dir.path().join("core.wasm"), dir.path().join("wit.wasm"));
    run(Command::new(tool("wasm-tools"))
        .args(["component", "embed", "--dummy", "--world", "tracking-store"])
        .arg(Path::new(WORKSPACE).join("wit"))
        .arg("-o")
        .arg(&core));
    run(Command::new(tool("wasm-tools"))
        .args(["component", "new"])
        .arg(&core)
        .arg("-o")
        .arg(&component));
    printed_wit(&component)
}

/// The `import …;` and `export …;` lines of the printed world.
fn world_items(printed: &str) -> Vec<String> {
    let world = printed
        .split("world root {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .unwrap_or_else(|| panic!("no world in:\n{printed}"));
    let mut items: Vec<String> = world
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    items.sort();
    items
}

/// Each interface of `scadalink:tracking` as the sorted list of its items
/// (a type or a function, with its body): the printer orders items by
/// first use, which differs between a real component and a placeholder.
fn tracking_interfaces(printed: &str) -> BTreeMap<String, Vec<String>> {
    let package = printed
        .split("package scadalink:tracking@0.1.0 {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .unwrap_or_else(|| panic!("no scadalink:tracking package in:\n{printed}"));
    let mut interfaces = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in package.lines() {
        if let Some(name) = line.strip_prefix("  interface ") {
            current = Some((name.trim_end_matches(" {").to_owned(), Vec::new()));
        } else if line == "  }" {
            let (name, mut items) = current.take().expect("an interface to close");
            items.iter_mut().for_each(|i| *i = i.trim_end().to_owned());
            items.sort();
            interfaces.insert(name, items);
        } else if let Some((_, items)) = current.as_mut() {
            let starts_item = line.starts_with("    ") && !line.starts_with("     ");
            if starts_item && !line.trim_start().starts_with('}') {
                items.push(String::new());
            }
            if let Some(item) = items.last_mut() {
                item.push_str(line);
                item.push('\n');
            }
        }
    }
    interfaces
}

#[test]
fn the_built_guest_has_the_world_of_wit_plus_wasi_imports_only() {
    let guest = printed_wit(&workspace_file(GUEST, "make guest"));
    let expected = expected_wit();

    let (wasi, own): (Vec<String>, Vec<String>) = world_items(&guest)
        .into_iter()
        .partition(|item| item.starts_with("import wasi:"));
    assert_eq!(own, world_items(&expected), "the guest's world:\n{guest}");
    assert!(
        !wasi.is_empty(),
        "the guest's language runtime imports WASI"
    );
    assert!(own.contains(&"export scadalink:tracking/store@0.1.0;".to_owned()));
    assert!(own.contains(&"import scadalink:tracking/storage@0.1.0;".to_owned()));

    let interfaces = tracking_interfaces(&expected);
    for name in ["types", "storage", "store"] {
        assert!(
            interfaces.get(name).is_some_and(|items| !items.is_empty()),
            "no interface {name} read from:\n{expected}"
        );
    }
    assert_eq!(
        tracking_interfaces(&guest),
        interfaces,
        "the guest's scadalink:tracking interfaces differ from wit/"
    );
}

#[test]
fn the_standalone_component_imports_nothing_but_wasi_and_the_types() {
    let standalone = printed_wit(&workspace_file(STANDALONE, "make standalone"));
    let expected = expected_wit();

    let exports = |items: Vec<String>| -> Vec<String> {
        items
            .into_iter()
            .filter(|i| i.starts_with("export "))
            .collect()
    };
    let imports: Vec<String> = world_items(&standalone)
        .into_iter()
        .filter(|i| i.starts_with("import "))
        .collect();
    // The types interface holds only types, nothing to link.
    for import in &imports {
        assert!(
            import.starts_with("import wasi:")
                || import == "import scadalink:tracking/types@0.1.0;",
            "stray import {import} in:\n{standalone}"
        );
    }
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("import wasi:filesystem/"))
    );
    assert_eq!(
        exports(world_items(&standalone)),
        exports(world_items(&expected))
    );
}
