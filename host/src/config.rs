//! How a store is opened: the database file, its durability, and the purge
//! schedule.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// How hard a commit works to survive a crash.
///
/// Both settings use SQLite's write-ahead log; neither can corrupt the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: the log is flushed to disk at every commit, so an
    /// acknowledged write survives a crash of the process and a loss of
    /// power. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: an acknowledged write survives a crash of the
    /// process, but the last commits before a power loss may be lost.
    Normal,
}

impl Durability {
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// When the host purges terminal rows by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeSchedule {
    /// Terminal rows are kept this long after they became terminal.
    pub retention: Duration,
    /// Time between two purges. The first runs as soon as the store opens.
    pub interval: Duration,
}

impl PurgeSchedule {
    /// The default retention: 7 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// The default interval: 1 hour.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60 * 60);
}

impl Default for PurgeSchedule {
    fn default() -> Self {
        PurgeSchedule {
            retention: Self::DEFAULT_RETENTION,
            interval: Self::DEFAULT_INTERVAL,
        }
    }
}

/// Everything [`crate::TrackingStore::open`] needs besides the component.
///
/// ```
/// use std::time::Duration;
/// use tracking_host::{Durability, PurgeSchedule, StoreConfig};
///
/// let config = StoreConfig::new("var/tracking.db")
///     .durability(Durability::Full)
///     .purge(Some(PurgeSchedule {
///         retention: Duration::from_secs(3 * 24 * 3600),
///         interval: Duration::from_secs(600),
///     }));
/// assert_eq!(config.busy_timeout, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    /// The SQLite database file. Its directory must exist.
    pub path: PathBuf,
    /// Whether a missing file is created (the default) or is an error.
    pub create: bool,
    /// Opens the file for reading only: `get_status` works, every write
    /// fails with [`crate::Error::ReadOnly`], and nothing is written to the
    /// file — no table is created, no schema migrated, no purge scheduled.
    /// The file must exist. Off by default.
    pub read_only: bool,
    /// How hard each commit works to survive a crash.
    pub durability: Durability,
    /// How long a statement waits for another connection's lock before it
    /// fails with "database is locked".
    pub busy_timeout: Duration,
    /// The scheduled purge, or `None` for none.
    pub purge: Option<PurgeSchedule>,
    /// The clock rows are stamped with and retention is measured by.
    pub clock: Arc<dyn Clock>,
    /// The most linear memory one component instance may grow to, in bytes.
    /// It protects the host from a guest bug that allocates without end.
    pub guest_memory_limit: usize,
    /// Read-only instances serving `get_status`: how many status queries
    /// run at once.
    pub readers: usize,
    /// The most write operations one commit holds. Larger batches share a
    /// disk flush among more callers; 1 commits every operation alone.
    pub max_batch: usize,
}

impl StoreConfig {
    /// The default busy timeout: 5 seconds.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default guest memory limit: 64 MiB.
    pub const DEFAULT_GUEST_MEMORY_LIMIT: usize = 64 << 20;
    /// The default number of readers.
    pub const DEFAULT_READERS: usize = 2;
    /// The default largest batch of one commit.
    pub const DEFAULT_MAX_BATCH: usize = 256;

    /// The defaults for the file at `path`: created if missing, durable
    /// commits, the default purge schedule, the system clock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            create: true,
            read_only: false,
            durability: Durability::default(),
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            purge: Some(PurgeSchedule::default()),
            clock: Arc::new(SystemClock),
            guest_memory_limit: Self::DEFAULT_GUEST_MEMORY_LIMIT,
            readers: Self::DEFAULT_READERS,
            max_batch: Self::DEFAULT_MAX_BATCH,
        }
    }

    /// Sets [`StoreConfig::readers`].
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// Sets [`StoreConfig::max_batch`].
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`StoreConfig::create`].
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Sets [`StoreConfig::read_only`].
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets [`StoreConfig::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`StoreConfig::busy_timeout`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`StoreConfig::purge`].
    pub fn purge(mut self, schedule: Option<PurgeSchedule>) -> Self {
        self.purge = schedule;
        self
    }

    /// Sets [`StoreConfig::clock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets [`StoreConfig::guest_memory_limit`].
    pub fn guest_memory_limit(mut self, bytes: usize) -> Self {
        self.guest_memory_limit = bytes;
        self
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("create", &self.create)
            .field("read_only", &self.read_only)
            .field("durability", &self.durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("purge", &self.purge)
            .field("guest_memory_limit", &self.guest_memory_limit)
            .field("readers", &self.readers)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}
