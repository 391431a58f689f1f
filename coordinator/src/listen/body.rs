//! A request body must arrive in time: within `body_timeout`, extended by one second per
//! [`MIN_RATE`] bytes received (Apache's `mod_reqtimeout` rule). A client trickling its body
//! (a byte every two seconds) is cut off, while an upload at any usable speed is not.
//! [`Deadlined`] wraps a hyper body (the gateway) or a byte stream (the API's payload) and
//! ends it with [`BodyTimedOut`] when the deadline passes; [`Expired`] tells the server so
//! it can answer 408.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// The slowest a body may come once its timeout is spent, in bytes per second.
pub const MIN_RATE: u64 = 1024;

/// When a body that began at `start` must be complete, given what has come so far.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline {
    start: Instant,
    timeout: Duration,
    received: u64,
}

impl BodyDeadline {
    pub fn new(start: Instant, timeout: Duration) -> Self {
        BodyDeadline { start, timeout, received: 0 }
    }

    pub fn received(&mut self, bytes: usize) {
        self.received = self.received.saturating_add(bytes as u64);
    }

    pub fn at(&self) -> Instant {
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / MIN_RATE);
        self.start + self.timeout + earned
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// What the 408 answer says.
pub fn too_slow(timeout: Duration) -> String {
    format!(
        "the request body did not arrive within {} (plus 1s per {MIN_RATE} bytes received)",
        humantime::format_duration(timeout)
    )
}

/// Whether a [`Deadlined`] body ran out of time.
#[derive(Clone, Debug, Default)]
pub struct Expired(Arc<AtomicBool>);

impl Expired {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `inner` with a [`BodyDeadline`].
pub struct Deadlined<B> {
    inner: B,
    deadline: BodyDeadline,
    timer: Pin<Box<Sleep>>,
    expired: Expired,
}

impl<B> Deadlined<B> {
    /// `inner`, which must be complete within `timeout` (as extended) from now.
    pub fn new(inner: B, timeout: Duration) -> (Self, Expired) {
        let deadline = BodyDeadline::new(Instant::now(), timeout);
        let timer = Box::pin(tokio::time::sleep_until(deadline.at().into()));
        let expired = Expired::default();
        (Deadlined { inner, deadline, timer, expired: expired.clone() }, expired)
    }

    fn got(&mut self, bytes: usize) {
        self.deadline.received(bytes);
        self.timer.as_mut().reset(self.deadline.at().into());
    }

    /// Ready once the deadline passed (the waker is registered until then).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<BodyTimedOut> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired.0.store(true, Ordering::Relaxed);
                Poll::Ready(BodyTimedOut)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> hyper::body::Body for Deadlined<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.got(frame.data_ref().map_or(0, Bytes::len));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => this.poll_deadline(cx).map(|e| Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, E> futures::Stream for Deadlined<S>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: From<std::io::Error>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.got(bytes.len());
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => this
                .poll_deadline(cx)
                .map(|e| Some(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, e).into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_what_arrives_at_the_minimum_rate() {
        let start = Instant::now();
        let mut deadline = BodyDeadline::new(start, Duration::from_secs(2));
        assert_eq!(deadline.at(), start + Duration::from_secs(2));
        deadline.received(1);
        assert!(deadline.at() < start + Duration::from_millis(2010), "a byte earns ~1 ms");
        deadline.received(10 * 1024 - 1);
        assert_eq!(deadline.at(), start + Duration::from_secs(12), "10 KiB earn 10 s");
    }

    #[tokio::test]
    async fn a_trickled_body_ends_in_an_error_and_is_marked_expired() {
        let trickle = futures::stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let (mut body, expired) = Deadlined::new(Box::pin(trickle), Duration::from_millis(500));
        use futures::StreamExt as _;
        assert!(body.next().await.expect("a byte").is_ok());
        assert!(!expired.get());
        let error = body.next().await.expect("an item").expect_err("past the deadline");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(expired.get());
    }
}
