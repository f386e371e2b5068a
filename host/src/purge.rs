//! The scheduled purge: a background thread that deletes terminal rows
//! older than the retention window, once when the store opens and then
//! every interval, until the store is dropped.
//!
//! A purge goes through the writer in batches of [`PURGE_BATCH_ROWS`], each
//! its own write, so the callers' writes interleave with it instead of
//! waiting for the whole backlog. After a purge that deleted anything the
//! freed pages are given back to the file system in steps, and the
//! write-ahead log is emptied, so the file does not grow without bound
//! under churn. (The log is checkpointed all along, beside the writer:
//! see `checkpoint`.)

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::PurgeSchedule;
use crate::writer::{Answer, WriteOp, WriterHandle};

/// One scheduled purge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeReport {
    /// The clock's time when the purge ran, in milliseconds since the epoch.
    pub ran_at: i64,
    /// Rows that became terminal before this time were deleted.
    pub older_than: i64,
    /// How many rows were deleted.
    pub deleted: u64,
    /// How long deleting them took.
    pub took: Duration,
    /// Pages of the file given back to the file system afterwards.
    pub reclaimed_pages: i64,
    /// How long giving them back took.
    pub reclaim_took: Duration,
}

/// What the scheduled purge has done since the store opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Purges that completed.
    pub runs: u64,
    /// Purges that failed part-way (each is logged at WARN; the rows it did
    /// delete are counted in `deleted`).
    pub failures: u64,
    /// Rows deleted by all of them.
    pub deleted: u64,
    /// The latest completed purge.
    pub last: Option<PurgeReport>,
}

/// Rows one purge transaction deletes at most. It bounds how long a writer
/// can wait behind a purge, however many rows are due: a few milliseconds
/// of deleting per batch on an ordinary disk.
pub const PURGE_BATCH_ROWS: u32 = 2_000;

/// The handle of the purge thread.
pub(crate) struct PurgeScheduler {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl PurgeScheduler {
    /// Starts the thread.
    pub(crate) fn start(
        writer: WriterHandle,
        clock: Arc<dyn Clock>,
        schedule: PurgeSchedule,
        stats: Arc<Mutex<PurgeStats>>,
    ) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tracking-purge".into())
            .spawn(move || {
                let purge = Purge {
                    writer,
                    clock,
                    stats,
                    stop: signal,
                };
                purge.run(schedule)
            })
            .expect("the OS refused to start the purge thread");
        PurgeScheduler { stop, thread }
    }

    /// Asks the thread to stop and waits for it; a batch under way finishes
    /// first, the rest of that purge is left for the next time.
    pub(crate) fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if self.thread.join().is_err() {
            warn!("the purge thread panicked");
        }
    }
}

struct Purge {
    writer: WriterHandle,
    clock: Arc<dyn Clock>,
    stats: Arc<Mutex<PurgeStats>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Purge {
    fn run(&self, schedule: PurgeSchedule) {
        let retention = i64::try_from(schedule.retention.as_millis()).unwrap_or(i64::MAX);
        loop {
            self.once(retention);

            let (stopped, wake) = &*self.stop;
            let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, schedule.interval, |stopped| !*stopped)
                .unwrap_or_else(|p| p.into_inner());
            if *guard {
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes every row past retention, batch by batch, then reclaims the
    /// space they held.
    fn once(&self, retention_ms: i64) {
        let started = Instant::now();
        let ran_at = self.clock.now_ms();
        let older_than = ran_at.saturating_sub(retention_ms);

        let mut deleted = 0;
        let outcome = loop {
            let batch = WriteOp::PurgeBatch {
                older_than,
                max_rows: PURGE_BATCH_ROWS,
            };
            match self.writer.submit(batch) {
                Ok(Answer::Deleted(count)) => {
                    deleted += count;
                    if count < u64::from(PURGE_BATCH_ROWS) || self.stopping() {
                        break Ok(());
                    }
                }
                Ok(other) => unreachable!("a purge batch answered {other:?}"),
                Err(error) => break Err(error),
            }
        };
        let took = started.elapsed();
        let reclaim_started = Instant::now();
        let reclaimed_pages = if deleted > 0 {
            reclaim(&self.writer, || self.stopping())
        } else {
            0
        };
        let reclaim_took = reclaim_started.elapsed();

        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.deleted += deleted;
        match outcome {
            Ok(()) => {
                let report = PurgeReport {
                    ran_at,
                    older_than,
                    deleted,
                    took,
                    reclaimed_pages,
                    reclaim_took,
                };
                info!(
                    deleted,
                    older_than = %format_ms(older_than),
                    took_ms = took.as_millis() as u64,
                    reclaimed_pages,
                    reclaim_took_ms = reclaim_took.as_millis() as u64,
                    "scheduled purge"
                );
                stats.runs += 1;
                stats.last = Some(report);
            }
            Err(error) => {
                stats.failures += 1;
                warn!(%error, deleted, "scheduled purge failed; it will be tried again next interval");
            }
        }
    }
}

/// Pages one reclaim step gives back at most (2 MiB of the default page
/// size): like [`PURGE_BATCH_ROWS`], it keeps each step short. Measured on
/// a million purged rows, a step of 512 took about 20 ms and one of 1024
/// about 35 ms, with the whole reclaim taking the same time either way.
pub const RECLAIM_PAGES: u32 = 512;

/// Gives the space of purged rows back in steps of [`RECLAIM_PAGES`], until
/// none is left or `stop` says so; returns the pages given back.
pub(crate) fn reclaim(writer: &WriterHandle, stop: impl Fn() -> bool) -> i64 {
    let mut freed = 0;
    loop {
        match writer.submit(WriteOp::Reclaim {
            max_pages: RECLAIM_PAGES,
        }) {
            Ok(Answer::Reclaimed {
                freed_pages,
                free_pages_left,
            }) => {
                freed += freed_pages;
                if free_pages_left == 0 || freed_pages == 0 || stop() {
                    break;
                }
            }
            Ok(other) => unreachable!("a reclaim answered {other:?}"),
            Err(error) => {
                warn!(%error, "giving the space of purged rows back failed");
                break;
            }
        }
    }
    debug!(freed_pages = freed, "gave the space of purged rows back");
    freed
}

/// A timestamp as RFC 3339, for logs and the CLI.
///
/// RFC 3339 covers the years 0000 to 9999 and this formatter starts at
/// 1970, so a time outside 1970..=9999 is written as milliseconds instead.
pub fn format_ms(ms: i64) -> String {
    /// 9999-12-31T23:59:59.999Z.
    const LAST_RFC3339_MS: u64 = 253_402_300_799_999;
    match u64::try_from(ms) {
        Ok(ms) if ms <= LAST_RFC3339_MS => {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                .to_string()
        }
        _ => format!("{ms} ms since the Unix epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn times_outside_rfc3339_are_written_as_milliseconds_not_a_panic() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_ms(253_402_300_800_000),
            "253402300800000 ms since the Unix epoch"
        );
        assert_eq!(
            format_ms(i64::MAX),
            format!("{} ms since the Unix epoch", i64::MAX)
        );
        assert_eq!(format_ms(-1), "-1 ms since the Unix epoch");
    }
}
