//! A script's stdout or stderr: kept in memory up to a cap, the rest
//! counted and dropped.
//!
//! wasmtime's own `MemoryOutputPipe` refuses a write past its capacity, and
//! a Rust script's `println!` panics on a refused write; a chatty script
//! should lose its excess output, not its run.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much a capped stream accepts in one write; a guest writes in chunks
/// of at most this.
const WRITE_BUDGET: usize = 64 * 1024;

/// One captured stream; clones share the buffer.
#[derive(Clone)]
pub(super) struct CappedOutput {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    cap: usize,
    kept: Vec<u8>,
    dropped: u64,
}

impl CappedOutput {
    pub(super) fn new(cap: usize) -> Self {
        CappedOutput {
            inner: Arc::new(Mutex::new(Inner {
                cap,
                kept: Vec::new(),
                dropped: 0,
            })),
        }
    }

    /// The bytes kept, and how many were dropped past the cap.
    pub(super) fn take(&self) -> (Vec<u8>, u64) {
        let mut inner = self.lock();
        (std::mem::take(&mut inner.kept), inner.dropped)
    }

    fn append(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = inner.cap.saturating_sub(inner.kept.len());
        let (keep, drop) = bytes.split_at(bytes.len().min(room));
        inner.kept.extend_from_slice(keep);
        inner.dropped += drop.len() as u64;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the buffer invalid.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
