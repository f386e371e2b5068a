//! [`TrackingStore`]: the handle a site runtime holds. Writes go to the
//! single writer (group commit), status reads to the readers, and a
//! background thread purges on schedule.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tracing::{debug, info_span};

use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::error::Error;
use crate::plugin::Plugin;
use crate::purge::{PurgeScheduler, PurgeStats};
use crate::readers::Readers;
use crate::session::Recipe;
use crate::types::{OperationSnapshot, OperationStatus};
use crate::writer::{Answer, Queued, WriteOp, WriterCounters, WriterHandle};

/// The operation tracking store of one site: a SQLite file driven by the
/// tracking-store component.
///
/// The handle is cheap to clone and `Send + Sync`; clones share one store.
/// Calls block until their answer is known, and a write's answer is known
/// only once it is committed; the `*_async` writes return a future of it
/// instead. Writes from all threads are committed
/// together by one writer (see [`StoreConfig::max_batch`]); `get_status`
/// is served beside it by read-only instances and never waits for a commit.
/// Dropping the last clone stops the purge thread, and the writer once the
/// writes still queued are committed.
///
/// ```no_run
/// use tracking_host::{OperationStatus, Plugin, StoreConfig, TrackingStore};
///
/// let plugin = Plugin::load("target/wasm32-wasip2/release/tracking_guest.wasm")?;
/// let store = TrackingStore::open(&plugin, StoreConfig::new("var/tracking.db"))?;
///
/// let id = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";
/// store.record_enqueue(id, "ExternalSystem.CachedCall", Some("POST /orders"), None, None, None)?;
/// store.record_attempt(id, OperationStatus::Retrying, 1, Some("503 Service Unavailable"), Some(503))?;
/// store.record_terminal(id, OperationStatus::Delivered, None, Some(200))?;
///
/// let snapshot = store.get_status(id)?.expect("just written");
/// assert_eq!(snapshot.status, OperationStatus::Delivered);
/// # Ok::<(), tracking_host::Error>(())
/// ```
#[derive(Clone)]
pub struct TrackingStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a store opened read-only.
    writer: Option<WriterHandle>,
    readers: Readers,
    purge: Option<PurgeScheduler>,
    counters: Arc<Mutex<WriterCounters>>,
    purge_stats: Arc<Mutex<PurgeStats>>,
    clock: Arc<dyn Clock>,
}

/// What a store has done since it opened.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    /// Transactions the writer committed (or tried to).
    pub commits: u64,
    /// Write operations those transactions held.
    pub operations: u64,
    /// The most operations one commit held.
    pub largest_batch: usize,
    /// Traps the writer and the idle readers recovered from.
    pub traps: u64,
    /// Linear memory of the writer's and the idle readers' instances, bytes.
    pub guest_memory: usize,
    /// The scheduled purge.
    pub purge: PurgeStats,
}

impl TrackingStore {
    /// Opens (or creates) the database of `config`: starts the writer,
    /// opens the readers, and starts the scheduled purge if one is
    /// configured.
    ///
    /// A configuration with no reader or a batch of no write is refused as
    /// [`Error::InvalidInput`], naming the setting.
    pub fn open(plugin: &Plugin, config: StoreConfig) -> Result<Self, Error> {
        for (field, value) in [("readers", config.readers), ("max_batch", config.max_batch)] {
            if value == 0 {
                return Err(Error::InvalidInput {
                    field: field.into(),
                    rule: "must be at least 1, got 0".into(),
                });
            }
        }
        let recipe = Recipe::new(plugin, &config);
        let counters = Arc::new(Mutex::new(WriterCounters::default()));
        let writer = match config.read_only {
            true => None,
            false => Some(WriterHandle::open(
                recipe.clone(),
                &config,
                Arc::clone(&counters),
            )?),
        };
        let readers = Readers::open(&recipe, &config)?;

        let purge_stats = Arc::new(Mutex::new(PurgeStats::default()));
        let purge = match (&writer, config.purge) {
            (Some(writer), Some(schedule)) => Some(PurgeScheduler::start(
                writer.clone(),
                Arc::clone(&config.clock),
                schedule,
                Arc::clone(&purge_stats),
            )),
            _ => None,
        };
        let inner = Inner {
            writer,
            readers,
            purge,
            counters,
            purge_stats,
            clock: config.clock,
        };
        Ok(TrackingStore {
            inner: Arc::new(inner),
        })
    }

    /// Records a new operation in `submitted`. Returns `false`, changing
    /// nothing, when the id is already recorded.
    pub fn record_enqueue(
        &self,
        id: &str,
        kind: &str,
        target_summary: Option<&str>,
        source_instance_id: Option<&str>,
        source_script: Option<&str>,
        source_node: Option<&str>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_enqueue", id, kind).entered();
        let op = enqueue(
            id,
            kind,
            target_summary,
            source_instance_id,
            source_script,
            source_node,
        );
        self.changed(op?)
    }

    /// Records an in-flight attempt. Returns `false`, changing nothing, for
    /// an unknown id, a terminal row, or a retry count below the stored one.
    pub fn record_attempt(
        &self,
        id: &str,
        status: OperationStatus,
        retry_count: u32,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_attempt", id, %status, retry_count).entered();
        self.changed(attempt(id, status, retry_count, last_error, http_status)?)
    }

    /// Flips an in-flight row to a terminal status. Returns `false`,
    /// changing nothing, for an unknown id or a row already terminal.
    pub fn record_terminal(
        &self,
        id: &str,
        status: OperationStatus,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Result<bool, Error> {
        let _span = info_span!("record_terminal", id, %status).entered();
        self.changed(terminal(id, status, last_error, http_status)?)
    }

    /// [`record_enqueue`](Self::record_enqueue) without blocking: the
    /// write is queued now, behind every write already queued, and the
    /// returned future gives its answer once it is committed.
    ///
    /// A thread can queue many writes before awaiting any, and they may
    /// share one commit. Dropping the future does not withdraw the write.
    pub fn record_enqueue_async(
        &self,
        id: &str,
        kind: &str,
        target_summary: Option<&str>,
        source_instance_id: Option<&str>,
        source_script: Option<&str>,
        source_node: Option<&str>,
    ) -> Pending<bool> {
        let _span = info_span!("record_enqueue_async", id, kind).entered();
        let op = enqueue(
            id,
            kind,
            target_summary,
            source_instance_id,
            source_script,
            source_node,
        );
        self.queue(op)
    }

    /// [`record_attempt`](Self::record_attempt) without blocking; queued
    /// now, answered by the future once committed, as
    /// [`record_enqueue_async`](Self::record_enqueue_async).
    pub fn record_attempt_async(
        &self,
        id: &str,
        status: OperationStatus,
        retry_count: u32,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Pending<bool> {
        let _span = info_span!("record_attempt_async", id, %status, retry_count).entered();
        self.queue(attempt(id, status, retry_count, last_error, http_status))
    }

    /// [`record_terminal`](Self::record_terminal) without blocking; queued
    /// now, answered by the future once committed, as
    /// [`record_enqueue_async`](Self::record_enqueue_async).
    pub fn record_terminal_async(
        &self,
        id: &str,
        status: OperationStatus,
        last_error: Option<&str>,
        http_status: Option<u16>,
    ) -> Pending<bool> {
        let _span = info_span!("record_terminal_async", id, %status).entered();
        self.queue(terminal(id, status, last_error, http_status))
    }

    /// The row's snapshot as last committed, or `None` when the id has no
    /// row.
    pub fn get_status(&self, id: &str) -> Result<Option<OperationSnapshot>, Error> {
        let _span = info_span!("get_status", id).entered();
        fits("id", id)?;
        self.inner.readers.get_status(id)
    }

    /// Deletes terminal rows whose terminal-at is strictly older than
    /// `older_than_ms`, in one transaction. Returns how many were deleted.
    ///
    /// The scheduled purge deletes in bounded batches instead; this call is
    /// all or nothing, and holds the writer for as long as it takes. Either
    /// way the space of the deleted rows is given back afterwards.
    pub fn purge_terminal(&self, older_than_ms: i64) -> Result<u64, Error> {
        let _span = info_span!("purge_terminal", older_than_ms).entered();
        let writer = self.writer()?;
        let deleted = match writer.submit(WriteOp::Purge {
            older_than: older_than_ms,
        })? {
            Answer::Deleted(count) => count,
            other => unreachable!("purge answered {other:?}"),
        };
        if deleted > 0 {
            // The rows are gone either way; failing to give their space
            // back only leaves the file larger until the next purge.
            crate::purge::reclaim(writer, || false);
        }
        Ok(deleted)
    }

    /// What the store has done since it opened.
    pub fn stats(&self) -> StoreStats {
        let counters = *self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        StoreStats {
            commits: counters.commits,
            operations: counters.operations,
            largest_batch: counters.largest_batch,
            traps: counters.traps + self.inner.readers.traps(),
            guest_memory: counters.guest_memory + self.inner.readers.memory(),
            purge: self.purge_stats(),
        }
    }

    /// What the scheduled purge has done since the store opened.
    pub fn purge_stats(&self) -> PurgeStats {
        self.inner
            .purge_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The clock this store stamps rows with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn changed(&self, op: WriteOp) -> Result<bool, Error> {
        self.writer()?.submit(op).map(changed)
    }

    fn queue(&self, op: Result<WriteOp, Error>) -> Pending<bool> {
        let queued = self
            .writer()
            .and_then(|writer| op.and_then(|op| writer.queue(op)));
        Pending {
            queued: queued.map_err(Some),
            answer: changed,
        }
    }
}

fn changed(answer: Answer) -> bool {
    match answer {
        Answer::Changed(changed) => changed,
        other => unreachable!("a row write answered {other:?}"),
    }
}

/// The most bytes of one text argument the host hands the component.
///
/// The component holds the store's own, far smaller limits (a kind of 128
/// bytes, an error text cut to 4,096); this one keeps a text that could not
/// even be copied into the component's memory from reaching it, where it
/// would exhaust [`StoreConfig::guest_memory_limit`] and trap. A longer
/// argument is refused naming its field, except an error text, which is
/// cut here as the component would cut it anyway.
pub const MAX_ARGUMENT_BYTES: usize = 1 << 20;

fn fits(field: &'static str, value: &str) -> Result<(), Error> {
    match value.len() {
        len if len > MAX_ARGUMENT_BYTES => Err(Error::InvalidInput {
            field: field.into(),
            rule: format!(
                "must be at most {MAX_ARGUMENT_BYTES} bytes to be handed to the component, got {len}"
            ),
        }),
        _ => Ok(()),
    }
}

fn fits_optional(field: &'static str, value: Option<&str>) -> Result<Option<String>, Error> {
    value
        .map(|value| fits(field, value).map(|()| value.to_owned()))
        .transpose()
}

/// An error text as handed to the component: cut, at a character boundary,
/// to [`MAX_ARGUMENT_BYTES`], which the component cuts shorter still.
fn error_text(value: Option<&str>) -> Option<String> {
    value.map(|text| {
        let mut end = text.len().min(MAX_ARGUMENT_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    })
}

fn enqueue(
    id: &str,
    kind: &str,
    target_summary: Option<&str>,
    source_instance_id: Option<&str>,
    source_script: Option<&str>,
    source_node: Option<&str>,
) -> Result<WriteOp, Error> {
    debug!(
        target_summary,
        source_instance_id, source_script, source_node, "arguments"
    );
    fits("id", id)?;
    fits("kind", kind)?;
    Ok(WriteOp::Enqueue {
        id: id.to_owned(),
        kind: kind.to_owned(),
        target_summary: fits_optional("target-summary", target_summary)?,
        source_instance_id: fits_optional("source-instance-id", source_instance_id)?,
        source_script: fits_optional("source-script", source_script)?,
        source_node: fits_optional("source-node", source_node)?,
    })
}

fn attempt(
    id: &str,
    status: OperationStatus,
    retry_count: u32,
    last_error: Option<&str>,
    http_status: Option<u16>,
) -> Result<WriteOp, Error> {
    debug!(last_error, http_status, "arguments");
    fits("id", id)?;
    Ok(WriteOp::Attempt {
        id: id.to_owned(),
        status,
        retry_count,
        last_error: error_text(last_error),
        http_status,
    })
}

fn terminal(
    id: &str,
    status: OperationStatus,
    last_error: Option<&str>,
    http_status: Option<u16>,
) -> Result<WriteOp, Error> {
    debug!(last_error, http_status, "arguments");
    fits("id", id)?;
    Ok(WriteOp::Terminal {
        id: id.to_owned(),
        status,
        last_error: error_text(last_error),
        http_status,
    })
}

/// The answer of a write queued by one of the `*_async` methods of
/// [`TrackingStore`]: ready once the write is committed (or has failed),
/// with what the blocking method would have returned.
///
/// It needs no particular async runtime. The write was queued when the
/// method was called, so dropping this does not withdraw it.
///
/// ```no_run
/// use tracking_host::{Error, OperationStatus, TrackingStore};
///
/// /// Records every id as delivered; the writes may share one commit.
/// async fn delivered(store: &TrackingStore, ids: &[&str]) -> Result<(), Error> {
///     let pending: Vec<_> = ids
///         .iter()
///         .map(|id| store.record_terminal_async(id, OperationStatus::Delivered, None, Some(200)))
///         .collect();
///     for write in pending {
///         write.await?;
///     }
///     Ok(())
/// }
/// ```
#[must_use = "the write is queued either way; await this for its answer"]
pub struct Pending<T> {
    /// The queued write, or why it could not be queued.
    queued: Result<Queued, Option<Error>>,
    answer: fn(Answer) -> T,
}

impl<T> Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = self.answer;
        match &mut self.queued {
            Ok(queued) => Pin::new(queued).poll(cx).map(|done| done.map(answer)),
            Err(refused) => Poll::Ready(Err(refused
                .take()
                .expect("a refused write's future was polled after it completed"))),
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("queued", &self.queued.is_ok())
            .finish()
    }
}

impl std::fmt::Debug for TrackingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackingStore")
            .field("read_only", &self.inner.writer.is_none())
            .field("scheduled_purge", &self.inner.purge.is_some())
            .finish_non_exhaustive()
    }
}

impl TrackingStore {
    fn writer(&self) -> Result<&WriterHandle, Error> {
        self.inner.writer.as_ref().ok_or(Error::ReadOnly)
    }
}

impl Drop for Inner {
    /// Stops the purge, then lets the writer commit what is still queued
    /// before its connection closes.
    fn drop(&mut self) {
        if let Some(purge) = self.purge.take() {
            purge.stop();
        }
        if let Some(writer) = &self.writer {
            writer.close();
        }
    }
}
