//! Power-cut safety as far as a process can test it: a writer killed with
//! SIGKILL at random moments loses no acknowledged write and never leaves a
//! damaged file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tracking_host::OperationStatus::*;
use tracking_host::{StoreConfig, TrackingStore};
use tracking_tests::plugin;

const RESTARTS: usize = 6;

#[test]
fn acknowledged_writes_survive_sigkill_and_the_file_stays_sound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracking.db");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut acked: HashMap<String, char> = HashMap::new();

    for round in 0..RESTARTS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut out = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its newline was torn by the kill: not an ack.
            while out.read_line(&mut line).unwrap_or(0) > 0 {
                if line.ends_with('\n') {
                    lines.push(line.trim_end().to_owned());
                }
                line.clear();
            }
            lines
        });

        std::thread::sleep(Duration::from_millis(rng.u64(300..1_200)));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(
            !lines.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        let queued = lines
            .iter()
            .filter(|line| line.starts_with(|c: char| c.is_ascii_lowercase()))
            .count();
        assert!(
            queued > 0 && queued < lines.len(),
            "round {round}: both blocking and queued writes should be acknowledged"
        );
        for line in lines {
            let (stage, id) = line.split_once(' ').unwrap();
            let stage = stage.chars().next().unwrap().to_ascii_uppercase();
            acked.insert(id.to_owned(), stage);
        }

        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        drop(conn);

        let store = TrackingStore::open(plugin(), StoreConfig::new(&path).purge(None)).unwrap();
        for (id, stage) in &acked {
            let row = store
                .get_status(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: {id} lost"));
            match stage {
                'E' => {}
                'A' => assert!(row.retry_count >= 1, "round {round}: {id} lost its attempt"),
                'T' => assert_eq!(
                    row.status, Delivered,
                    "round {round}: {id} lost its outcome"
                ),
                other => panic!("unknown stage {other}"),
            }
        }
    }
    assert!(
        acked.len() > 100,
        "the child wrote too little to test: {}",
        acked.len()
    );
}
