//! One guest connection under the socket's limits (see [`super::limits`]): admission against
//! the socket's slots and the agent-wide budget, the HTTP/1.1 settings that bound a request
//! head, and a watchdog that closes a connection moving no bytes (a long-poll in progress
//! excepted).

use super::limits::SocketLimits;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// hyper refuses a smaller read buffer; heads are capped separately, exactly.
const MIN_BUFFER: usize = 8192;
/// What a guest over its connection cap reads before the agent hangs up.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; \
    charset=utf-8\r\ncontent-length: 45\r\nconnection: close\r\n\r\n\
    too many connections to this metadata socket\n";

/// The slot and the budget share a connection holds until it closes.
pub(super) struct Admission {
    _slot: OwnedSemaphorePermit,
    _budget: OwnedSemaphorePermit,
}

/// A slot on this socket and a share of the agent's budget, or `None` when either is spent.
pub(super) fn admit(slots: &Arc<Semaphore>, limits: &SocketLimits) -> Option<Admission> {
    let slot = slots.clone().try_acquire_owned().ok()?;
    let budget = limits.budget.try_take()?;
    Some(Admission { _slot: slot, _budget: budget })
}

/// Tells the guest why and hangs up at once: the descriptor goes back before anything
/// else is accepted. Best effort, never waits for the guest.
pub(super) fn refuse(stream: UnixStream) {
    let _ = stream.try_write(TOO_MANY);
}

/// hyper settings: heads of at most `max_request_bytes` (431 beyond), and a head must
/// arrive within the idle timeout of the connection's start or of the last answer.
pub(super) fn http_builder(limits: &SocketLimits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(limits.max_request_bytes.max(MIN_BUFFER))
        .max_header_size(limits.max_request_bytes);
    builder
}

/// When a connection last moved a byte, and how many of its requests are being answered.
#[derive(Debug)]
pub(super) struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

/// Marks a request as in progress (a long-poll is not idle) while it lives.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        })
    }

    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now, Ordering::SeqCst);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
        self.origin.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has been quiet for `idle` with no request in progress.
    pub(super) async fn stalled(&self, idle: Duration) {
        loop {
            let quiet = self.quiet_for();
            let busy = self.busy.load(Ordering::SeqCst) > 0;
            if !busy && quiet >= idle {
                return;
            }
            let wait = if busy { idle } else { idle - quiet };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// The guest's stream, noting every byte that moves.
pub(super) struct Tracked {
    stream: UnixStream,
    activity: Arc<Activity>,
}

impl Tracked {
    pub(super) fn new(stream: UnixStream, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
