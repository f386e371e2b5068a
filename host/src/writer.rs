//! The single writer: one write connection and its component instance,
//! and the group commit that shares each durable commit among callers.
//!
//! A durable commit costs a disk flush, so committing each operation alone
//! caps the store at the disk's flush rate. Instead, callers queue their
//! operations; the first caller to find no commit under way becomes the
//! leader: it takes every operation waiting (up to
//! [`StoreConfig::max_batch`]), runs them in arrival order in one
//! transaction, each inside a savepoint of its own so that one operation's
//! error or trap undoes that operation only, commits once, and only then
//! hands each caller its answer. It goes on leading until its own operation
//! is answered, then passes the lead to a caller still waiting. A lone
//! caller thus runs its operation on its own thread, with no hand-off, and
//! every caller gets exactly the answer it would have got alone.
//!
//! A caller may also queue a write without waiting ([`WriterHandle::queue`]):
//! it gets a future of the answer instead, and cannot lead, since its
//! thread must not block. Writes queued that way are led by the relay, a
//! thread of the writer's own that leads whenever the write at the front of
//! the queue has no caller waiting to lead it. So one thread can have many
//! writes in one commit.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use tracing::{debug, info_span, warn};

use crate::checkpoint::Checkpointer;
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
    /// Checkpoint the log and give up to this many free pages back; runs
    /// between group commits, outside any transaction.
    Reclaim {
        max_pages: u32,
    },
}

impl WriteOp {
    /// The pages of a reclaim step, which runs alone and outside any
    /// transaction; `None` for an operation that joins a group commit.
    fn reclaim_pages(&self) -> Option<u32> {
        match *self {
            WriteOp::Reclaim { max_pages } => Some(max_pages),
            _ => None,
        }
    }
}

/// What a write answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Changed(bool),
    Deleted(u64),
    Reclaimed {
        freed_pages: i64,
        free_pages_left: i64,
    },
}

/// One queued operation and, once committed, its answer.
pub(crate) struct Slot {
    op: WriteOp,
    /// Whether the caller blocks, and so can take the lead; a caller
    /// holding a [`Queued`] future cannot.
    can_lead: bool,
    parked: Mutex<Parked>,
    /// Wakes the one blocking caller waiting on this slot: for its answer,
    /// or for the lead.
    wake: Condvar,
}

/// A slot's state, and whether its caller is asleep on [`Slot::wake`] or
/// waits through a waker. A leader answers its own operation too, and a
/// notification nobody waits for still costs a system call, so only a
/// sleeping caller is woken.
struct Parked {
    state: SlotState,
    asleep: bool,
    waker: Option<Waker>,
}

enum SlotState {
    Waiting,
    /// The previous leader handed the lead to this slot's caller.
    Lead,
    Answered(Result<Answer, Error>),
    /// The answer was handed to the caller.
    Taken,
}

impl Slot {
    fn new(op: WriteOp, can_lead: bool) -> Self {
        Slot {
            op,
            can_lead,
            parked: Mutex::new(Parked {
                state: SlotState::Waiting,
                asleep: false,
                waker: None,
            }),
            wake: Condvar::new(),
        }
    }

    fn answered(&self) -> bool {
        matches!(
            lock(&self.parked).state,
            SlotState::Answered(_) | SlotState::Taken
        )
    }

    fn set(&self, answer: Result<Answer, Error>) {
        let mut parked = lock(&self.parked);
        parked.state = SlotState::Answered(answer);
        if parked.asleep {
            self.wake.notify_one();
        }
        let waker = parked.waker.take();
        drop(parked);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn hand_lead(&self) {
        let mut parked = lock(&self.parked);
        if matches!(parked.state, SlotState::Waiting) {
            parked.state = SlotState::Lead;
        }
        if parked.asleep {
            self.wake.notify_one();
        }
    }

    /// Blocks until the slot is answered (`Some`) or its caller must lead
    /// (`None`).
    fn wait(&self) -> Option<Result<Answer, Error>> {
        let mut parked = lock(&self.parked);
        loop {
            match std::mem::replace(&mut parked.state, SlotState::Taken) {
                SlotState::Answered(answer) => return Some(answer),
                SlotState::Lead => {
                    // Still to be committed, now by its own caller.
                    parked.state = SlotState::Waiting;
                    return None;
                }
                waiting => parked.state = waiting,
            }
            parked.asleep = true;
            parked = self.wake.wait(parked).unwrap_or_else(|p| p.into_inner());
            parked.asleep = false;
        }
    }

    /// The answer if it is in; otherwise `cx` is woken when it is.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<Answer, Error>> {
        let mut parked = lock(&self.parked);
        match std::mem::replace(&mut parked.state, SlotState::Taken) {
            SlotState::Answered(answer) => Poll::Ready(answer),
            SlotState::Taken => panic!("a queued write's future was polled after it completed"),
            waiting => {
                parked.state = waiting;
                match &mut parked.waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    none => *none = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    fn take(&self) -> Result<Answer, Error> {
        match std::mem::replace(&mut lock(&self.parked).state, SlotState::Taken) {
            SlotState::Answered(answer) => answer,
            _ => unreachable!("taken once, after it was answered"),
        }
    }
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

struct Queue {
    waiting: VecDeque<Arc<Slot>>,
    /// Whether some caller is leading a commit now.
    leading: bool,
}

struct Writer {
    /// Declared first so that it stops before the write connection closes.
    checkpointer: Checkpointer,
    queue: Mutex<Queue>,
    /// Locked only by the leader, so never contended.
    instance: Mutex<Instance>,
    max_batch: usize,
    counters: Arc<Mutex<WriterCounters>>,
    relay: Relay,
}

/// The callers' side of the writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    writer: Arc<Writer>,
}

impl WriterHandle {
    /// Opens the write connection, instantiates the component over it and
    /// brings the schema up to date.
    pub(crate) fn open(
        recipe: Recipe,
        config: &StoreConfig,
        counters: Arc<Mutex<WriterCounters>>,
    ) -> Result<Self, Error> {
        let mut db = Database::open(config)?;
        let checkpointer = Checkpointer::start(&config.path, config.busy_timeout)?;
        db.set_commit_hook(checkpointer.commit_hook())
            .map_err(|e| Error::Open {
                path: config.path.display().to_string(),
                reason: e.to_string(),
            })?;
        let mut instance = Instance::new(recipe, db)?;
        bring_schema_up_to_date(&mut instance)?;
        let writer = Writer {
            checkpointer,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                leading: false,
            }),
            instance: Mutex::new(instance),
            max_batch: config.max_batch.max(1),
            counters,
            relay: Relay::default(),
        };
        Ok(WriterHandle {
            writer: Arc::new(writer),
        })
    }

    /// Queues `op` and returns once it is committed (or has failed).
    pub(crate) fn submit(&self, op: WriteOp) -> Result<Answer, Error> {
        let writer = &*self.writer;
        let slot = Arc::new(Slot::new(op, true));
        let mut queue = lock(&writer.queue);
        queue.waiting.push_back(Arc::clone(&slot));
        if queue.leading {
            // Wait alone on this slot: the leader wakes exactly the callers
            // it answered, and the one it hands the lead to.
            drop(queue);
            if let Some(answer) = slot.wait() {
                return answer;
            }
            queue = lock(&writer.queue);
        }

        queue.leading = true;
        let lead = Lead { writer };
        while !slot.answered() {
            let batch = next_batch(&mut queue.waiting, writer.max_batch);
            drop(queue);
            lead.commit(&batch);
            queue = lock(&writer.queue);
        }
        drop(queue);
        drop(lead);
        slot.take()
    }

    /// Lets the relay commit every write queued so far, and stops it. Called
    /// as the last store handle goes, so that a store dropped with writes
    /// still queued has committed them by the time the drop returns.
    pub(crate) fn close(&self) {
        self.writer.relay.stop();
    }

    /// Queues `op` now, behind the writes already queued, and returns a
    /// future of its answer, which is ready once the write is committed.
    /// Dropping the future does not withdraw the write.
    pub(crate) fn queue(&self, op: WriteOp) -> Result<Queued, Error> {
        let writer = &*self.writer;
        writer.relay.start(Arc::downgrade(&self.writer))?;
        let slot = Arc::new(Slot::new(op, false));
        let mut queue = lock(&writer.queue);
        queue.waiting.push_back(Arc::clone(&slot));
        if !queue.leading {
            queue.leading = true;
            writer.relay.call();
        }
        Ok(Queued { slot })
    }
}

/// The answer of a write queued with [`WriterHandle::queue`].
pub(crate) struct Queued {
    slot: Arc<Slot>,
}

impl Future for Queued {
    type Output = Result<Answer, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.poll(cx)
    }
}

/// The thread that leads for writes whose callers cannot: it is called
/// when such a write reaches the front of the queue with nobody leading,
/// and leads until the queue is empty. Started by the first queued write.
#[derive(Default)]
struct Relay {
    called: Arc<(Mutex<RelayCall>, Condvar)>,
    /// Set once the thread runs, so that queueing a write does not take
    /// [`Relay::thread`]'s lock each time.
    running: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct RelayCall {
    wanted: bool,
    stop: bool,
}

impl Relay {
    fn start(&self, writer: Weak<Writer>) -> Result<(), Error> {
        if self.running.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut thread = lock(&self.thread);
        if thread.is_none() {
            let called = Arc::clone(&self.called);
            let spawned = std::thread::Builder::new()
                .name("tracking-relay".into())
                .spawn(move || relay(&called, &writer))
                .map_err(|e| {
                    Error::Plugin(format!("cannot start the writer's relay thread: {e}"))
                })?;
            *thread = Some(spawned);
            self.running.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Asks the thread to lead. The caller has set [`Queue::leading`] or
    /// is handing over the lead it holds.
    fn call(&self) {
        let (call, wake) = &*self.called;
        lock(call).wanted = true;
        wake.notify_one();
    }

    /// Stops the thread once it has led every write it was called for,
    /// and waits for it, unless this is that thread.
    fn stop(&self) {
        let (call, wake) = &*self.called;
        lock(call).stop = true;
        wake.notify_one();
        let thread = lock(&self.thread).take();
        // The thread itself may drop the writer, if it held the last
        // reference when it finished leading; it then ends by itself.
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

fn relay(called: &(Mutex<RelayCall>, Condvar), writer: &Weak<Writer>) {
    let (call, wake) = called;
    loop {
        {
            let mut call = lock(call);
            while !call.wanted && !call.stop {
                call = wake.wait(call).unwrap_or_else(|p| p.into_inner());
            }
            if !call.wanted {
                return;
            }
            call.wanted = false;
        }
        // Once the last handle is gone, the writer commits what is left as
        // it is dropped.
        let Some(writer) = writer.upgrade() else {
            return;
        };
        // A panic while leading has answered its batch (and handed the
        // lead on); the relay must outlive it, or queued writes would wait
        // for ever.
        let led = std::panic::catch_unwind(AssertUnwindSafe(|| writer.lead_until_empty()));
        if led.is_err() {
            warn!("the relay's commit panicked; its writes were answered with an error");
        }
    }
}

impl Writer {
    /// Commits what is queued until nothing is. The caller holds the lead.
    fn lead_until_empty(&self) {
        let lead = Lead { writer: self };
        loop {
            let batch = next_batch(&mut lock(&self.queue).waiting, self.max_batch);
            if batch.is_empty() {
                break;
            }
            lead.commit(&batch);
        }
    }
}

impl Drop for Writer {
    /// Commits the writes still queued: with no handle left, nobody waits
    /// to lead them, but their futures may still be awaited. A panic while
    /// leading has answered its batch, so each try leaves fewer queued.
    fn drop(&mut self) {
        while std::panic::catch_unwind(AssertUnwindSafe(|| self.lead_until_empty())).is_err() {}
        self.relay.stop();
    }
}

/// The operations the leader runs next, in arrival order: the writes at the
/// front of the queue, up to `max_batch` and up to the first reclaim step;
/// or that step alone, when it is at the front. A reclaim step runs outside
/// any transaction, so it cannot share a commit; and a caller whose write
/// is answered returns without waiting for a reclaim queued behind it.
fn next_batch(waiting: &mut VecDeque<Arc<Slot>>, max_batch: usize) -> Vec<Arc<Slot>> {
    let is_reclaim = |slot: &Arc<Slot>| slot.op.reclaim_pages().is_some();
    let take = match waiting.front() {
        Some(front) if is_reclaim(front) => 1,
        _ => waiting
            .iter()
            .take(max_batch)
            .take_while(|slot| !is_reclaim(slot))
            .count(),
    };
    waiting.drain(..take).collect()
}

/// The lead, held while a caller commits for others. Giving it up (also on
/// a panic) hands it to a waiting caller.
struct Lead<'a> {
    writer: &'a Writer,
}

impl Lead<'_> {
    fn commit(&self, batch: &[Arc<Slot>]) {
        let _unanswered = AnswerOnDrop(batch);
        let mut instance = lock(&self.writer.instance);
        let (answers, writes) = match batch {
            [step] if let Some(max_pages) = step.op.reclaim_pages() => (
                vec![reclaim(&instance, &self.writer.checkpointer, max_pages)],
                0,
            ),
            group => (commit_group(&mut instance, group), group.len()),
        };

        // Counted before anyone is answered, so that a caller who has its
        // answer sees its write in the store's stats.
        let mut counters = lock(&self.writer.counters);
        counters.commits += u64::from(writes > 0);
        counters.operations += writes as u64;
        counters.largest_batch = counters.largest_batch.max(writes);
        counters.traps = instance.traps;
        counters.guest_memory = instance.memory();
        drop(counters);
        // A woken future's executor may run code on this thread; none of it
        // may find the instance locked.
        drop(instance);
        for (slot, answer) in batch.iter().zip(answers) {
            slot.set(answer);
        }
    }
}

/// Answers whatever a group commit left unanswered, when it panicked, so
/// that no caller waits for ever.
struct AnswerOnDrop<'a>(&'a [Arc<Slot>]);

impl Drop for AnswerOnDrop<'_> {
    fn drop(&mut self) {
        for slot in self.0.iter().filter(|slot| !slot.answered()) {
            slot.set(Err(Error::Plugin("the writer failed to answer".into())));
        }
    }
}

impl Drop for Lead<'_> {
    /// Hands the lead to the oldest waiting caller, or to the relay when
    /// that caller cannot lead.
    fn drop(&mut self) {
        let mut queue = lock(&self.writer.queue);
        match queue.waiting.front() {
            Some(next) if next.can_lead => next.hand_lead(),
            Some(_) => self.writer.relay.call(),
            None => queue.leading = false,
        }
    }
}

/// The writer's state stays consistent across a panic: slots are answered
/// whole, counters only grow, and the instance rolls back what it had open.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

/// Runs `group` in one transaction, one savepoint per operation, and
/// returns each operation's answer once the transaction is committed; or,
/// when it could not be, the reason for every one of them.
fn commit_group(instance: &mut Instance, group: &[Arc<Slot>]) -> Vec<Result<Answer, Error>> {
    let _span = info_span!("commit", operations = group.len()).entered();
    let db = match instance.db() {
        Ok(db) => db,
        Err(error) => return all_failed(group, &error),
    };
    // A leader that panicked part-way may have left its transaction open;
    // it was never committed, so it is rolled back before this group.
    db.rollback();
    if let Err(error) = db.begin(Access::Write) {
        return all_failed(group, &Error::from(error));
    }

    let mut answers = Vec::with_capacity(group.len());
    for slot in group {
        match isolated(instance, &slot.op) {
            Ok(answer) => answers.push(answer),
            Err(error) => {
                if let Ok(db) = instance.db() {
                    db.rollback();
                }
                warn!(%error, "a savepoint failed; the whole group is rolled back");
                return all_failed(group, &error);
            }
        }
    }

    let committed = instance
        .db()
        .and_then(|db| db.commit().map_err(Error::from));
    if let Err(error) = committed {
        if let Ok(db) = instance.db() {
            db.rollback();
        }
        warn!(%error, "group commit failed; every operation in it is reported failed");
        return all_failed(group, &error);
    }
    debug!("committed");
    answers
}

/// One operation inside the open transaction, undone alone if it fails.
///
/// The outer error means the savepoint itself failed, so the operation's
/// writes may still be in the transaction: the whole group must be rolled
/// back rather than committed.
fn isolated(instance: &mut Instance, op: &WriteOp) -> Result<Result<Answer, Error>, Error> {
    instance.db()?.savepoint()?;
    let result = apply(instance, op);
    let db = instance.db()?;
    match &result {
        Ok(_) => db.release()?,
        Err(_) => db.undo_operation()?,
    }
    Ok(result)
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
        WriteOp::Reclaim { .. } => unreachable!("reclaims run outside the group"),
    }
}

fn reclaim(
    instance: &Instance,
    checkpointer: &Checkpointer,
    max_pages: u32,
) -> Result<Answer, Error> {
    let db = instance.db()?;
    let (freed_pages, free_pages_left) = db.reclaim(max_pages)?;
    if free_pages_left == 0 || freed_pages == 0 {
        // The last step: the file takes its new size as the log is emptied,
        // which a copy by the checkpoint thread under way would prevent.
        let _no_copy = checkpointer.hold();
        db.empty_log()?;
    }
    Ok(Answer::Reclaimed {
        freed_pages,
        free_pages_left,
    })
}

fn all_failed(group: &[Arc<Slot>], error: &Error) -> Vec<Result<Answer, Error>> {
    vec![Err(error.clone()); group.len()]
}
