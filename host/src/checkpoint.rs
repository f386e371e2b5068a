//! Checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit finds the
//! write-ahead log past its threshold, so one caller's write waits while a
//! thousand pages are copied into the file and flushed. Here the writer's
//! connection has no automatic checkpoint. Instead, a hook on its commits
//! wakes a thread of its own, which checkpoints on its own connection in
//! `PASSIVE` mode: it copies what no reader still needs and takes no lock
//! that a writer waits for, so commits go on meanwhile.
//!
//! SQLite starts the log again from its beginning only when a write begins
//! with every page of the log copied, and under a steady stream of commits
//! the thread rarely finishes in such a gap: the log would grow for as long
//! as the stream lasts. So once the thread has copied all but the last few
//! pages, the writer's next commit copies those few itself, in line, and
//! the write after it starts the log afresh.

use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};
use tracing::{debug, warn};

use crate::error::Error;

/// Pages in the write-ahead log past which a commit asks for a checkpoint:
/// SQLite's own threshold for its automatic checkpoint (4 MiB of the
/// default page size).
pub const CHECKPOINT_PAGES: i32 = 1_000;

/// Pages left to copy at most for the writer to copy them in line, ending
/// the log so that it can start again. A purge batch writes about a
/// hundred; copying this many costs the commit about one flush of the file.
pub const CATCH_UP_PAGES: i32 = 256;

#[derive(Default)]
struct State {
    wanted: bool,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Counts the times the log started again, as the writer saw them.
    log_generation: AtomicU32,
    /// What the thread last did: the log generation it read before it
    /// started (high half) and the pages of the log it had copied when it
    /// finished (low half). A report from an earlier generation counts
    /// pages of a log that is gone.
    report: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pages the thread copied of the current log, if it reported on it.
    fn copied_of(&self, generation: u32) -> Option<i32> {
        let report = self.report.load(Ordering::Acquire);
        let copied = report as u32 as i32;
        ((report >> 32) as u32 == generation).then_some(copied)
    }
}

/// The checkpoint thread. Dropping it stops the thread once a checkpoint
/// under way has finished.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path`, which the writer has already
    /// opened in write-ahead-log mode, and starts the thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, Error> {
        let open_error = |reason: String| Error::Open {
            path: path.display().to_string(),
            reason: format!("cannot open the checkpoint connection: {reason}"),
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| open_error(e.to_string()))?;
        // A connection takes up the log only once it has read the file;
        // until then a checkpoint through it does nothing.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| open_error(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(format!("journal_mode is {mode}, not wal")));
        }

        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tracking-checkpoint".into())
                .spawn(move || run(&conn, &shared))
                .map_err(|e| Error::Plugin(format!("cannot start the checkpoint thread: {e}")))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// What the writer's connection runs after each commit, with the pages
    /// now in the log (see [`rusqlite::Connection::wal_hook`]).
    pub(crate) fn commit_hook(
        &self,
    ) -> impl FnMut(&mut Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let mut last_logged = 0;
        move |wal, logged| {
            if logged < last_logged {
                shared.log_generation.fetch_add(1, Ordering::AcqRel);
            }
            last_logged = logged;
            if logged < CHECKPOINT_PAGES {
                return Ok(());
            }
            let generation = shared.log_generation.load(Ordering::Acquire);
            let behind = shared.copied_of(generation).map(|copied| logged - copied);
            if behind.is_some_and(|pages| (0..=CATCH_UP_PAGES).contains(&pages)) {
                // A busy answer means the thread is running again; this
                // commit's successors will ask again.
                match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                    Ok((log, copied)) => debug!(log, copied, "checkpoint in line"),
                    Err(error) if is_busy(&error) => {}
                    Err(error) => warn!(%error, "checkpoint in line failed"),
                }
            } else {
                shared.lock().wanted = true;
                shared.wake.notify_one();
            }
            Ok(())
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the checkpoint thread panicked");
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.wanted && !state.stopping {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stopping {
                return;
            }
            state.wanted = false;
        }
        let generation = shared.log_generation.load(Ordering::Acquire);
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((log, copied)) => {
                debug!(log, copied, "checkpoint");
                let report = u64::from(generation) << 32 | u64::from(copied.max(0) as u32);
                shared.report.store(report, Ordering::Release);
            }
            // Another checkpoint (the writer's, or a purge's reclaim) is
            // running; the next commit asks again.
            Err(error) if is_busy(&error) => debug!("checkpoint held back: another is running"),
            Err(error) => warn!(%error, "checkpoint failed; the next commit asks again"),
        }
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}
