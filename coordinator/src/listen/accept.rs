//! Accepting that never gives up: an error from `accept` (no descriptor left, no buffer
//! memory) pauses the listener for [`SHORTAGE_PAUSE`] and tries again, so the connections
//! waiting in the backlog are taken as soon as others close. A listener that returned the
//! error instead would vanish for good (issue 24: the SSH door after a flood).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long accepting pauses after a shortage.
pub const SHORTAGE_PAUSE: Duration = Duration::from_millis(100);

/// One listening socket and whether it is in a shortage now (logged once per shortage).
pub struct Acceptor {
    listener: TcpListener,
    /// Names the listener in logs: "API", "gateway", "SSH door".
    name: &'static str,
    /// Failed accepts since the last success.
    failures: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: &'static str) -> Self {
        Acceptor { listener, name, failures: 0 }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection; waits out every accept error.
    pub async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    if self.failures > 0 {
                        tracing::info!(
                            listener = self.name,
                            failures = self.failures,
                            "accepting connections again"
                        );
                        self.failures = 0;
                    }
                    return accepted;
                }
                Err(error) if client_left(&error) => {
                    tracing::debug!(listener = self.name, %error, "a client left before its connection was accepted");
                }
                Err(error) => {
                    if self.failures == 0 {
                        tracing::warn!(listener = self.name, %error,
                            "cannot accept connections; retrying every {SHORTAGE_PAUSE:?} until descriptors or memory free up");
                    }
                    self.failures += 1;
                    tokio::time::sleep(SHORTAGE_PAUSE).await;
                }
            }
        }
    }
}

/// Errors about one connection (it was reset while queued), after which the next accept
/// may go on at once; anything else is a shortage of this process or the machine.
fn client_left(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shortage_pauses_accepting() {
        let emfile = io::Error::from_raw_os_error(24);
        assert!(!client_left(&emfile), "EMFILE is a shortage");
        assert!(!client_left(&io::Error::from_raw_os_error(105)), "ENOBUFS is a shortage");
        assert!(client_left(&io::Error::from(io::ErrorKind::ConnectionAborted)));
    }
}
