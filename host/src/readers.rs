//! The readers: component instances on read-only connections that serve
//! `get-status` beside the writer.
//!
//! With a write-ahead log, a reader sees the last committed state and never
//! waits for the writer's transaction or its flush to disk, so a status
//! query is never stuck behind a group commit.

use std::sync::{Condvar, Mutex, MutexGuard};

use tracing::warn;

use crate::config::StoreConfig;
use crate::database::{Access, Database};
use crate::error::Error;
use crate::session::{Instance, Recipe};
use crate::types::OperationSnapshot;

/// A fixed set of reader instances; a caller borrows one per query.
pub(crate) struct Readers {
    pool: Mutex<Pool>,
    returned: Condvar,
    /// What a reader lost to a panic is rebuilt from.
    recipe: Recipe,
    config: StoreConfig,
}

struct Pool {
    idle: Vec<Instance>,
    /// Callers asleep on [`Readers::returned`]. A notification nobody waits
    /// for still costs a system call, so a reader given back wakes someone
    /// only when someone waits.
    waiting: usize,
    /// Readers idle or lent. One fewer only when a reader lost to a panic
    /// could not be rebuilt; at none, a query fails instead of waiting.
    live: usize,
}

impl Readers {
    /// Opens `config.readers` read-only connections, each with its own
    /// instance.
    pub(crate) fn open(recipe: &Recipe, config: &StoreConfig) -> Result<Self, Error> {
        let idle: Vec<Instance> = (0..config.readers.max(1))
            .map(|_| new_reader(recipe, config))
            .collect::<Result<_, Error>>()?;
        Ok(Readers {
            pool: Mutex::new(Pool {
                live: idle.len(),
                idle,
                waiting: 0,
            }),
            returned: Condvar::new(),
            recipe: recipe.clone(),
            config: config.clone(),
        })
    }

    /// The row's snapshot, read in a transaction of its own.
    pub(crate) fn get_status(&self, id: &str) -> Result<Option<OperationSnapshot>, Error> {
        self.with_reader(|reader| read(reader, id))
    }

    /// Runs `f` on a reader borrowed from the pool. A reader whose call
    /// panicked is not given back, since the panic may have left its
    /// instance part-way through a call: a fresh one takes its place.
    fn with_reader<R>(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut lent = Lent {
            readers: self,
            reader: Some(self.borrow()?),
        };
        f(lent.reader.as_mut().expect("lent until dropped"))
    }

    /// Bytes of linear memory all readers hold now (those not in use).
    pub(crate) fn memory(&self) -> usize {
        self.lock().idle.iter().map(Instance::memory).sum()
    }

    /// Traps the readers have recovered from (those not in use).
    pub(crate) fn traps(&self) -> u64 {
        self.lock().idle.iter().map(|r| r.traps).sum()
    }

    fn borrow(&self) -> Result<Instance, Error> {
        let mut pool = self.lock();
        loop {
            if let Some(reader) = pool.idle.pop() {
                return Ok(reader);
            }
            if pool.live == 0 {
                return Err(Error::Plugin(
                    "no reader is left: each was lost to a panic and could not be rebuilt".into(),
                ));
            }
            pool.waiting += 1;
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
            pool.waiting -= 1;
        }
    }

    fn give_back(&self, reader: Instance) {
        let mut pool = self.lock();
        pool.idle.push(reader);
        if pool.waiting > 0 {
            self.returned.notify_one();
        }
    }

    /// Puts a fresh reader in the place of one lost to a panic, or counts
    /// one reader fewer when that fails.
    fn replace_lost(&self) {
        match new_reader(&self.recipe, &self.config) {
            Ok(fresh) => self.give_back(fresh),
            Err(error) => {
                warn!(%error, "cannot rebuild a reader lost to a panic");
                let mut pool = self.lock();
                pool.live -= 1;
                // Waiters look again, and fail if none is left.
                self.returned.notify_all();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // The pool only changes under the lock, a step at a time; a panic
        // elsewhere cannot leave it half-changed.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reader lent to one call; dropping it gives it back, or replaces it
/// when the call panicked.
struct Lent<'a> {
    readers: &'a Readers,
    reader: Option<Instance>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        if std::thread::panicking() {
            drop(reader);
            self.readers.replace_lost();
        } else {
            self.readers.give_back(reader);
        }
    }
}

fn new_reader(recipe: &Recipe, config: &StoreConfig) -> Result<Instance, Error> {
    Instance::new(recipe.clone(), Database::open_reader(config)?)
}

fn read(reader: &mut Instance, id: &str) -> Result<Option<OperationSnapshot>, Error> {
    reader.db()?.begin(Access::Read)?;
    let result = reader.call(|exports, store| {
        exports
            .scadalink_tracking_store()
            .call_get_status(store, id)
    });
    // A read transaction has nothing to keep; ending it lets the log be
    // checkpointed past what it saw.
    if let Ok(db) = reader.db() {
        db.rollback();
    }
    Ok(result?.map(OperationSnapshot::from))
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::{BUILT_COMPONENT, Plugin, TrackingStore};

    const ID: &str = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";

    /// A pool of one reader over a file a store has written one row to.
    fn one_reader() -> (tempfile::TempDir, Readers) {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::load(BUILT_COMPONENT).expect("run `make guest` first");
        let config = StoreConfig::new(dir.path().join("tracking.db"))
            .purge(None)
            .readers(1);
        let store = TrackingStore::open(&plugin, config.clone()).unwrap();
        store
            .record_enqueue(ID, "ExternalSystem.CachedCall", None, None, None, None)
            .unwrap();
        drop(store);
        let recipe = Recipe::new(&plugin, &config);
        let readers = Readers::open(&recipe, &config).unwrap();
        (dir, readers)
    }

    #[test]
    fn a_reader_lent_to_a_call_that_panicked_is_replaced() {
        let (_dir, readers) = one_reader();
        for _ in 0..3 {
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                readers.with_reader(|_| -> Result<(), Error> { panic!("a bug in the host") })
            }));
            assert!(panicked.is_err());
        }
        // With one reader, a lost one would leave this waiting for ever.
        let row = readers.get_status(ID).unwrap().unwrap();
        assert_eq!(row.id, ID);
        assert_eq!(readers.lock().live, 1);
    }

    #[test]
    fn with_no_reader_left_a_query_fails_instead_of_waiting() {
        let (dir, readers) = one_reader();
        // The file is gone, so the lost reader cannot be rebuilt.
        drop(dir);
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            readers.with_reader(|_| -> Result<(), Error> { panic!("a bug in the host") })
        }));
        assert!(panicked.is_err());
        let error = readers.get_status(ID).unwrap_err();
        assert!(error.to_string().contains("no reader is left"), "{error}");
    }
}
