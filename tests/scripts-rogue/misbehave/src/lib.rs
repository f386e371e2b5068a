//! A script of the `status-script` world that misbehaves on request, so
//! that tests can check that the script runner contains it.
//!
//! `run(args)` does what `args[0]` names:
//!
//! - `echo`: prints `echo` on stdout and stderr, returns the other
//!   arguments joined by spaces;
//! - `status ID`: returns the status of `ID`, or `unknown`;
//! - `loop`: spins forever;
//! - `alloc`: allocates (and touches) memory until something stops it;
//! - `sleep`: sleeps for an hour in a blocking host call;
//! - `flood`: writes 8 MiB to stdout and to stderr, then returns `ok`;
//! - `panic`: panics;
//! - `fail`: returns `err("failed on request")`.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "status-script",
    path: "../../../wit",
});

use std::hint::black_box;
use std::io::Write;

use scadalink::tracking::status::get_status;

struct Misbehave;

export!(Misbehave);

impl Guest for Misbehave {
    fn run(args: Vec<String>) -> Result<String, String> {
        match args.first().map(String::as_str) {
            Some("echo") => {
                println!("echo");
                eprintln!("echo");
                Ok(args[1..].join(" "))
            }
            Some("status") => status(args.get(1).map_or("", String::as_str)),
            Some("loop") => spin(),
            Some("alloc") => allocate(),
            Some("sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok("woke up".into())
            }
            Some("flood") => flood(),
            Some("panic") => panic!("the rogue script panics on request"),
            Some("fail") => Err("failed on request".into()),
            other => Err(format!("unknown request {other:?}")),
        }
    }
}

fn status(id: &str) -> Result<String, String> {
    match get_status(id) {
        Ok(Some(s)) => Ok(format!("{} {:?} {}", s.id, s.status, s.retry_count)),
        Ok(None) => Ok("unknown".into()),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn spin() -> Result<String, String> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn allocate() -> Result<String, String> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page, so that the memory is really used.
        held.push(vec![0x5a; 1 << 20]);
        black_box(&held);
    }
}

fn flood() -> Result<String, String> {
    let chunk = vec![b'x'; 64 * 1024];
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for _ in 0..128 {
        // A capped stream drops what is past its cap; a write must not fail.
        out.write_all(&chunk).map_err(|e| format!("stdout: {e}"))?;
        err.write_all(&chunk).map_err(|e| format!("stderr: {e}"))?;
    }
    Ok("flooded".into())
}
