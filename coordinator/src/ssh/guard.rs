//! A client connection with two ends besides the client's own: its login deadline (a
//! connection not logged in within `[ssh] login_timeout` fails its next read or write, so
//! the session ends and the connection closes) and the door closing (every connection of a
//! dropped [`SshDoor`](super::SshDoor) ends). russh runs each session on a task of its own,
//! which only an error of its stream stops.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Sleep;

pub struct Guarded<S> {
    inner: S,
    /// Until the login: when it must have happened, and whether it has.
    login: Option<(Pin<Box<Sleep>>, Arc<AtomicBool>)>,
    /// Ready once the door closed.
    door_closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<S> Guarded<S> {
    pub fn new(
        inner: S,
        login_timeout: Duration,
        logged_in: Arc<AtomicBool>,
        mut door: watch::Receiver<()>,
    ) -> Self {
        let deadline = Box::pin(tokio::time::sleep(login_timeout));
        // The door sends nothing: `changed` fails when it is dropped.
        let door_closed = Box::pin(async move { while door.changed().await.is_ok() {} });
        Guarded { inner, login: Some((deadline, logged_in)), door_closed }
    }

    /// An error once the connection must end; registers the waker for both ends.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.door_closed.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the SSH door closed"));
        }
        if let Some((deadline, logged_in)) = &mut self.login {
            if logged_in.load(Ordering::Relaxed) {
                self.login = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no login in time"));
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    const LOGIN: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_silent_connection_fails_at_its_deadline_unless_logged_in() {
        let (_door, closed) = watch::channel(());
        let (_client, server) = tokio::io::duplex(64);
        let logged_in = Arc::new(AtomicBool::new(false));
        let mut guarded = Guarded::new(server, LOGIN, logged_in, closed.clone());
        let started = tokio::time::Instant::now();
        let error = guarded.read_u8().await.expect_err("the deadline passes");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LOGIN);

        let (_client, server) = tokio::io::duplex(64);
        let logged_in = Arc::new(AtomicBool::new(true));
        let mut guarded = Guarded::new(server, LOGIN, logged_in, closed);
        let read = tokio::time::timeout(LOGIN * 3, guarded.read_u8()).await;
        assert!(read.is_err(), "a logged-in connection waits on past the deadline");
    }

    #[tokio::test]
    async fn closing_the_door_ends_its_connections() {
        let (door, closed) = watch::channel(());
        let (_client, server) = tokio::io::duplex(64);
        let logged_in = Arc::new(AtomicBool::new(true));
        let mut guarded = Guarded::new(server, LOGIN, logged_in, closed);
        let reading = tokio::spawn(async move { guarded.read_u8().await });
        drop(door);
        let error = reading.await.unwrap().expect_err("the door closed");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }
}
