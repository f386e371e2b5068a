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
//! as the stream lasts. So once the thread is short of the end by no more
//! than about the latest commit, the writer's next commit copies the rest
//! itself, in line, and the write after it starts the log afresh.
//! Reports from the thread are numbered by the log they are about, so that
//! one about a log that has since started again is never taken for news.

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
pub(crate) const CHECKPOINT_PAGES: i32 = 1_000;

/// Pages the thread may be short of the log's end for the writer to copy
/// the rest in line, ending the log so that it can start again; or twice
/// the pages of the commit just made, when that is more. The copy in line
/// then costs about what the commit itself wrote, once per log.
pub(crate) const CATCH_UP_PAGES: i32 = 256;

/// Pages of log at which the writer copies it in line however far behind
/// the thread is (a slow disk, a failing thread): the bound that SQLite's
/// own automatic checkpoint gave, at ten times its threshold.
pub(crate) const MAX_LOG_PAGES: i32 = 10 * CHECKPOINT_PAGES;

/// Bytes the log's file is cut back to whenever the log starts again, so
/// that one large transaction (a purge's reclaim) does not leave a file of
/// its size behind.
pub(crate) const LOG_FILE_LIMIT_BYTES: i64 = 8 << 20;

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
    /// Held by the thread while it checkpoints, and by the writer while it
    /// empties the log (see [`Checkpointer::hold`]).
    pass: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> u32 {
        self.log_generation.load(Ordering::Acquire)
    }

    /// Marks every report so far as one about an earlier log: the log has
    /// started again, or will at the next write.
    fn new_log(&self) {
        self.log_generation.fetch_add(1, Ordering::AcqRel);
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
        // The log's pages after the previous commit.
        let mut before = 0;
        // When the log is this long, the writer copies it in line even with
        // the thread far behind; the bound then moves on by that much, so a
        // reader that holds every copy back costs one try per step.
        let mut forced_at = MAX_LOG_PAGES;
        move |wal, logged| {
            if logged < before {
                // The log started again.
                shared.new_log();
                forced_at = MAX_LOG_PAGES;
            }
            let older_than_this_commit = before;
            before = logged;
            if logged < CHECKPOINT_PAGES {
                return Ok(());
            }
            // The thread is short of the end by no more than a few pages,
            // or than two commits like this one: it lags by about a commit,
            // since commits go on while it copies.
            let this_commit = logged - older_than_this_commit;
            let within = CATCH_UP_PAGES.max(this_commit.saturating_mul(2));
            let caught_up = shared
                .copied_of(shared.generation())
                .is_some_and(|copied| logged - copied <= within);
            let forced = logged >= forced_at;

            if !caught_up && !forced {
                shared.lock().wanted = true;
                shared.wake.notify_one();
                return Ok(());
            }
            if forced {
                forced_at = logged.saturating_add(MAX_LOG_PAGES);
            }
            // A busy answer means the thread is running; later commits
            // ask again.
            match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                Ok((log, copied)) => {
                    debug!(log, copied, forced, "checkpoint in line");
                    if copied == log {
                        // The next write starts the log again, so what the
                        // thread last said is about the old one.
                        shared.new_log();
                    }
                }
                Err(error) if is_busy(&error) => {}
                Err(error) => warn!(%error, "checkpoint in line failed"),
            }
            Ok(())
        }
    }
}

impl Checkpointer {
    /// Waits for the thread to finish a checkpoint under way, and keeps it
    /// from starting another while the guard lives.
    ///
    /// Emptying the log (`TRUNCATE`) needs SQLite's checkpoint lock, which
    /// fails at once, without waiting, while the thread copies; the log
    /// then stays, and with it a file that a purge shrank keeps its old
    /// size until a later checkpoint ends the log.
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        self.shared.pass.lock().unwrap_or_else(|p| p.into_inner())
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
        let generation = shared.generation();
        let _pass = shared.pass.lock().unwrap_or_else(|p| p.into_inner());
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
