//! The readers: component instances on read-only connections that serve
//! `get-status` beside the writer.
//!
//! With a write-ahead log, a reader sees the last committed state and never
//! waits for the writer's transaction or its flush to disk, so a status
//! query is never stuck behind a group commit.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::config::StoreConfig;
use crate::database::{Access, Database};
use crate::error::Error;
use crate::session::{Instance, Recipe};
use crate::types::OperationSnapshot;

/// A fixed set of reader instances; a caller borrows one per query.
pub(crate) struct Readers {
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Instance>,
    /// Callers asleep on [`Readers::returned`]. A notification nobody waits
    /// for still costs a system call, so a reader given back wakes someone
    /// only when someone waits.
    waiting: usize,
}

impl Readers {
    /// Opens `config.readers` read-only connections, each with its own
    /// instance.
    pub(crate) fn open(recipe: &Recipe, config: &StoreConfig) -> Result<Self, Error> {
        let idle = (0..config.readers.max(1))
            .map(|_| Instance::new(recipe.clone(), Database::open_reader(config)?))
            .collect::<Result<_, Error>>()?;
        Ok(Readers {
            pool: Mutex::new(Pool { idle, waiting: 0 }),
            returned: Condvar::new(),
        })
    }

    /// The row's snapshot, read in a transaction of its own.
    pub(crate) fn get_status(&self, id: &str) -> Result<Option<OperationSnapshot>, Error> {
        let mut reader = self.borrow();
        let result = read(&mut reader, id);
        self.give_back(reader);
        result
    }

    /// Bytes of linear memory all readers hold now (those not in use).
    pub(crate) fn memory(&self) -> usize {
        self.lock().idle.iter().map(Instance::memory).sum()
    }

    /// Traps the readers have recovered from (those not in use).
    pub(crate) fn traps(&self) -> u64 {
        self.lock().idle.iter().map(|r| r.traps).sum()
    }

    fn borrow(&self) -> Instance {
        let mut pool = self.lock();
        loop {
            if let Some(reader) = pool.idle.pop() {
                return reader;
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

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // The pool only changes under the lock, a step at a time; a panic
        // elsewhere cannot leave it half-changed.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
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
