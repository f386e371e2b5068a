//! The scheduled purge: a background thread that deletes terminal rows
//! older than the retention window, once when the store opens and then
//! every interval, until the store is dropped.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::PurgeSchedule;
use crate::store::Shared;

/// One scheduled purge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeReport {
    /// The clock's time when the purge ran, in milliseconds since the epoch.
    pub ran_at: i64,
    /// Rows that became terminal before this time were deleted.
    pub older_than: i64,
    /// How many rows were deleted.
    pub deleted: u64,
    /// How long the purge took.
    pub took: Duration,
}

/// What the scheduled purge has done since the store opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Purges that completed.
    pub runs: u64,
    /// Purges that failed (each is logged at WARN).
    pub failures: u64,
    /// Rows deleted by all of them.
    pub deleted: u64,
    /// The latest completed purge.
    pub last: Option<PurgeReport>,
}

/// The handle of the purge thread.
pub(crate) struct PurgeScheduler {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl PurgeScheduler {
    /// Starts the thread. It holds the store weakly, so that dropping the
    /// store is never delayed by a reference cycle.
    pub(crate) fn start(store: Weak<Shared>, schedule: PurgeSchedule) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tracking-purge".into())
            .spawn(move || run(store, schedule, &signal))
            .expect("the OS refused to start the purge thread");
        PurgeScheduler { stop, thread }
    }

    /// Asks the thread to stop and waits for it; a purge under way finishes
    /// first.
    pub(crate) fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if self.thread.join().is_err() {
            warn!("the purge thread panicked");
        }
    }
}

fn run(store: Weak<Shared>, schedule: PurgeSchedule, stop: &(Mutex<bool>, Condvar)) {
    let retention = i64::try_from(schedule.retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let Some(shared) = store.upgrade() else {
            return;
        };
        purge_once(&shared, retention);
        drop(shared);

        let (stopped, wake) = stop;
        let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, schedule.interval, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        if *guard {
            return;
        }
    }
}

fn purge_once(shared: &Shared, retention_ms: i64) {
    let started = Instant::now();
    let ran_at = shared.now_ms();
    let older_than = ran_at.saturating_sub(retention_ms);
    let result = shared.purge_terminal(older_than);

    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(deleted) => {
            let report = PurgeReport {
                ran_at,
                older_than,
                deleted,
                took: started.elapsed(),
            };
            info!(
                deleted,
                older_than = %format_ms(older_than),
                took_ms = report.took.as_millis() as u64,
                "scheduled purge"
            );
            stats.runs += 1;
            stats.deleted += deleted;
            stats.last = Some(report);
        }
        Err(error) => {
            stats.failures += 1;
            warn!(%error, "scheduled purge failed; it will be tried again next interval");
        }
    }
}

/// A timestamp as RFC 3339, for logs and the CLI.
pub fn format_ms(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                .to_string()
        }
        Err(_) => format!("{ms} ms"),
    }
}
