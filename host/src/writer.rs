//! The single writer: one thread that owns the write connection and its
//! component instance, and commits many callers' operations at once.
//!
//! A durable commit costs a disk flush, so committing each operation alone
//! caps the store at the disk's flush rate. The writer instead takes every
//! operation that is waiting (up to [`StoreConfig::max_batch`]), runs them
//! in arrival order in one transaction, each inside a savepoint of its own
//! so that one operation's error or trap undoes that operation only,
//! commits once, and only then answers each caller. Every caller gets
//! exactly the answer it would have got alone.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::{debug, info_span, warn};

use crate::config::StoreConfig;
use crate::database::{Access, Database};
use crate::error::Error;
use crate::session::{Instance, Recipe};
use crate::types::OperationStatus;

/// One write a caller asks for.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Enqueue {
        id: String,
        kind: String,
        target_summary: Option<String>,
        source_instance_id: Option<String>,
        source_script: Option<String>,
        source_node: Option<String>,
    },
    Attempt {
        id: String,
        status: OperationStatus,
        retry_count: u32,
        last_error: Option<String>,
        http_status: Option<u16>,
    },
    Terminal {
        id: String,
        status: OperationStatus,
        last_error: Option<String>,
        http_status: Option<u16>,
    },
    Purge {
        older_than: i64,
    },
    PurgeBatch {
        older_than: i64,
        max_rows: u32,
    },
    /// Checkpoint the log and give freed pages back; run between batches,
    /// outside any transaction.
    Reclaim,
}

/// What a write answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Changed(bool),
    Deleted(u64),
    Reclaimed {
        checkpointed_pages: i64,
        freed_pages: i64,
    },
}

struct Request {
    op: WriteOp,
    reply: SyncSender<Result<Answer, Error>>,
}

/// What the writer has done, for [`crate::StoreStats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriterCounters {
    pub(crate) commits: u64,
    pub(crate) operations: u64,
    pub(crate) largest_batch: usize,
    pub(crate) traps: u64,
    pub(crate) guest_memory: usize,
}

/// The callers' side of the writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    queue: Sender<Request>,
}

impl WriterHandle {
    /// Queues `op` and waits until it is committed (or has failed).
    pub(crate) fn submit(&self, op: WriteOp) -> Result<Answer, Error> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.queue
            .send(Request { op, reply })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// The writer thread.
pub(crate) struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    /// Opens the write connection, instantiates the component over it, and
    /// starts the thread.
    pub(crate) fn start(
        recipe: Recipe,
        config: &StoreConfig,
        counters: Arc<Mutex<WriterCounters>>,
    ) -> Result<(Writer, WriterHandle), Error> {
        let db = Database::open(config)?;
        let mut instance = Instance::new(recipe, db)?;
        bring_schema_up_to_date(&mut instance)?;

        let (queue, requests) = mpsc::channel();
        let max_batch = config.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("tracking-writer".into())
            .spawn(move || run(instance, &requests, max_batch, &counters))
            .map_err(|e| Error::Plugin(format!("cannot start the writer thread: {e}")))?;
        Ok((Writer { thread }, WriterHandle { queue }))
    }

    /// Waits for the thread, which ends once every handle is dropped and
    /// the queue is drained.
    pub(crate) fn join(self) {
        if self.thread.join().is_err() {
            warn!("the writer thread panicked");
        }
    }
}

/// A purge of nothing runs the schema migration, so that the file is
/// current (and a file from a newer release is refused) before any reader
/// opens it.
fn bring_schema_up_to_date(instance: &mut Instance) -> Result<(), Error> {
    let db = instance.db()?;
    db.begin(Access::Write)?;
    let result = instance.call(|exports, store| {
        exports
            .scadalink_tracking_store()
            .call_purge_terminal(store, i64::MIN)
    });
    let db = instance.db()?;
    match result {
        Ok(_) => db.commit().map_err(Error::from),
        Err(error) => {
            db.rollback();
            Err(error)
        }
    }
}

fn run(
    mut instance: Instance,
    requests: &Receiver<Request>,
    max_batch: usize,
    counters: &Mutex<WriterCounters>,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }

        let (reclaims, writes): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| matches!(r.op, WriteOp::Reclaim));
        let size = writes.len();
        if !writes.is_empty() {
            commit_group(&mut instance, writes);
        }
        for request in reclaims {
            let _ = request.reply.send(reclaim(&instance));
        }

        let mut counters = counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.commits += u64::from(size > 0);
        counters.operations += size as u64;
        counters.largest_batch = counters.largest_batch.max(size);
        counters.traps = instance.traps;
        counters.guest_memory = instance.memory();
    }
}

/// Runs `group` in one transaction, one savepoint per operation, and
/// answers each caller after the commit.
fn commit_group(instance: &mut Instance, group: Vec<Request>) {
    let _span = info_span!("commit", operations = group.len()).entered();
    let db = match instance.db() {
        Ok(db) => db,
        Err(error) => return answer_all(group, &error),
    };
    if let Err(error) = db.begin(Access::Write) {
        return answer_all(group, &Error::from(error));
    }

    let mut answers = Vec::with_capacity(group.len());
    for request in &group {
        answers.push(isolated(instance, &request.op));
    }

    let committed = instance
        .db()
        .and_then(|db| db.commit().map_err(Error::from));
    if let Err(error) = committed {
        if let Ok(db) = instance.db() {
            db.rollback();
        }
        warn!(%error, "group commit failed; every operation in it is reported failed");
        return answer_all(group, &error);
    }
    debug!("committed");
    for (request, answer) in group.into_iter().zip(answers) {
        let _ = request.reply.send(answer);
    }
}

/// One operation inside the open transaction, undone alone if it fails.
fn isolated(instance: &mut Instance, op: &WriteOp) -> Result<Answer, Error> {
    instance.db()?.savepoint()?;
    let result = apply(instance, op);
    let db = instance.db()?;
    match &result {
        Ok(_) => db.release()?,
        Err(_) => db.undo_operation()?,
    }
    result
}

fn apply(instance: &mut Instance, op: &WriteOp) -> Result<Answer, Error> {
    match op {
        WriteOp::Enqueue {
            id,
            kind,
            target_summary,
            source_instance_id,
            source_script,
            source_node,
        } => instance
            .call(|exports, store| {
                exports.scadalink_tracking_store().call_record_enqueue(
                    store,
                    id,
                    kind,
                    target_summary.as_deref(),
                    source_instance_id.as_deref(),
                    source_script.as_deref(),
                    source_node.as_deref(),
                )
            })
            .map(Answer::Changed),
        WriteOp::Attempt {
            id,
            status,
            retry_count,
            last_error,
            http_status,
        } => instance
            .call(|exports, store| {
                exports.scadalink_tracking_store().call_record_attempt(
                    store,
                    id,
                    (*status).into(),
                    *retry_count,
                    last_error.as_deref(),
                    *http_status,
                )
            })
            .map(Answer::Changed),
        WriteOp::Terminal {
            id,
            status,
            last_error,
            http_status,
        } => instance
            .call(|exports, store| {
                exports.scadalink_tracking_store().call_record_terminal(
                    store,
                    id,
                    (*status).into(),
                    last_error.as_deref(),
                    *http_status,
                )
            })
            .map(Answer::Changed),
        WriteOp::Purge { older_than } => instance
            .call(|exports, store| {
                exports
                    .scadalink_tracking_store()
                    .call_purge_terminal(store, *older_than)
            })
            .map(Answer::Deleted),
        WriteOp::PurgeBatch {
            older_than,
            max_rows,
        } => instance
            .call(|exports, store| {
                exports
                    .scadalink_tracking_maintenance()
                    .call_purge_terminal_batch(store, *older_than, *max_rows)
            })
            .map(Answer::Deleted),
        WriteOp::Reclaim => unreachable!("reclaims run outside the group"),
    }
}

fn reclaim(instance: &Instance) -> Result<Answer, Error> {
    let (checkpointed_pages, freed_pages) = instance.db()?.reclaim()?;
    Ok(Answer::Reclaimed {
        checkpointed_pages,
        freed_pages,
    })
}

fn answer_all(group: Vec<Request>, error: &Error) {
    for request in group {
        let _ = request.reply.send(Err(error.clone()));
    }
}

fn stopped() -> Error {
    Error::Plugin("the writer thread has stopped".into())
}
