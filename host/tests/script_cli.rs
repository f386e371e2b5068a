//! `tracking script run`: what it prints and how it exits, for a script
//! that answers, fails, is stopped, or is refused. The scripts are built by
//! `make scripts`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ID: &str = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";
const UNKNOWN: &str = "5d1c3b2a-0000-4000-8000-000000000000";

fn target(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(path)
}

fn wasm(name: &str) -> PathBuf {
    target(&format!("wasm32-wasip2/release/{name}.wasm"))
}

fn tracking(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracking"))
        .arg("--db")
        .arg(db)
        .args(args)
        // Compiled code shared with the other tests' runs of the same
        // components.
        .env("TRACKING_CACHE_DIR", target("script-cache"))
        .output()
        .expect("run tracking")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A store file holding one delivered operation, [`ID`].
fn site() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracking.db");
    let kind = "ExternalSystem.CachedCall";
    assert!(
        tracking(&db, &["enqueue", "--id", ID, "--kind", kind])
            .status
            .success()
    );
    let done = [
        "terminal",
        "--id",
        ID,
        "--status",
        "delivered",
        "--http",
        "200",
    ];
    assert!(tracking(&db, &done).status.success());
    (dir, db)
}

fn script_run(db: &Path, script: &Path, flags: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["script", "run", script.to_str().unwrap()];
    all.extend_from_slice(flags);
    all.push("--");
    all.extend_from_slice(args);
    tracking(db, &all)
}

#[test]
fn script_run_prints_the_scripts_output_then_its_result_and_exits_0() {
    let (_dir, db) = site();
    let out = script_run(&db, &wasm("status_summary_rs"), &[], &[ID, UNKNOWN]);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{ID} delivered retries=0 http=200\n{UNKNOWN} unknown\n2 ids: 1 delivered, 1 unknown\n"
        )
    );
}

#[test]
fn script_run_of_the_javascript_example_prints_its_result() {
    let (_dir, db) = site();
    let out = script_run(&db, &target("scripts/status-summary-js.wasm"), &[], &[ID]);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{ID} delivered retries=0 http=200\n1 ids: 1 delivered\n")
    );
}

#[test]
fn script_run_exits_1_with_the_scripts_reason_when_it_fails() {
    let (_dir, db) = site();
    let out = script_run(&db, &wasm("status_summary_rs"), &[], &["not-a-uuid"]);

    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: the script failed: \"not-a-uuid\": invalid id"),
        "{stderr}"
    );
}

#[test]
fn script_run_exits_1_naming_the_deadline_the_memory_cap_or_the_trap() {
    let (_dir, db) = site();
    let rogue = wasm("script_rogue_misbehave");
    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["--timeout", "200ms"],
            "loop",
            "error: the script was stopped at its deadline of 200ms\n",
        ),
        (
            &["--memory", "8MiB"],
            "alloc",
            "error: the script was stopped at its memory cap of 8388608 bytes\n",
        ),
        (&[], "panic", "error: the script trapped: "),
    ];
    for (flags, request, reason) in cases {
        let out = script_run(&db, &rogue, flags, &[request]);
        assert_eq!(out.status.code(), Some(1), "{request}");
        assert!(
            text(&out.stderr).contains(reason),
            "{request}: {}",
            text(&out.stderr)
        );
    }

    // The panic message the script wrote is passed on with the trap.
    let out = script_run(&db, &rogue, &[], &["panic"]);
    assert!(text(&out.stderr).contains("the rogue script panics on request"));
}

#[test]
fn script_run_refuses_a_script_that_imports_the_filesystem_naming_the_import() {
    let (_dir, db) = site();
    let out = script_run(&db, &wasm("script_rogue_filesystem"), &[], &[]);

    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: the script was refused: it imports `wasi:filesystem/"),
        "{stderr}"
    );
}

#[test]
fn script_run_exits_2_for_invalid_flags() {
    let (_dir, db) = site();
    let script = wasm("status_summary_rs");
    for flags in [
        &["--memory", "lots"][..],
        &["--memory", "0"],
        &["--timeout", "soon"],
        &["--timeout", "0s"],
    ] {
        let out = script_run(&db, &script, flags, &[ID]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(flags[0]),
            "{flags:?}: the error names the flag: {}",
            text(&out.stderr)
        );
    }
    let out = script_run(&db, &script, &["--timeout", "0s"], &[ID]);
    assert!(
        text(&out.stderr).contains("the timeout must be above zero"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn script_run_on_a_missing_file_fails_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let out = script_run(&db, &wasm("status_summary_rs"), &[], &[ID]);

    assert_eq!(out.status.code(), Some(1));
    assert!(!db.exists());
}
