//! What one guest may hold of the agent through its metadata socket (docs/contracts.md#limits), and
//! the agent's descriptor budget. Per socket: at most [`MAX_CONNECTIONS`] connections (more are
//! answered `503` and closed at once), closed after [`IDLE_TIMEOUT`] without progress (a long-poll
//! in progress is not idle), request heads of at most [`MAX_REQUEST_BYTES`]. Agent-wide: the guests
//! of all sockets together hold at most half of the agent's descriptor limit, so the agent's own
//! files, links and workloads always have the rest.

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Concurrent connections one guest may hold on its socket.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection that moves no byte for this long, and is not waiting in a long-poll, is
/// closed; so is one that has not sent a whole request head this long after the last answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (request line and headers); nothing on the socket takes a body.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most guest connections of the whole process, whatever the descriptor limit says.
const MAX_BUDGET: u64 = 1 << 20;

/// The limits one socket enforces.
#[derive(Clone, Debug)]
pub struct SocketLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub max_request_bytes: usize,
    /// Shared by every socket of the process unless a test gives its own.
    pub budget: ConnectionBudget,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
            max_request_bytes: MAX_REQUEST_BYTES,
            budget: ConnectionBudget::process(),
        }
    }
}

/// Guest connections that may be open at once across many sockets.
#[derive(Clone, Debug)]
pub struct ConnectionBudget(Arc<Semaphore>, usize);

impl ConnectionBudget {
    pub fn new(connections: usize) -> Self {
        let connections = connections.min(Semaphore::MAX_PERMITS);
        Self(Arc::new(Semaphore::new(connections)), connections)
    }

    /// Guest connections open now.
    pub fn in_use(&self) -> usize {
        self.1.saturating_sub(self.0.available_permits())
    }

    /// The process-wide budget: half the descriptor limit in force at first use, which is
    /// why the agent raises its limit (see [`raise_fd_limit`]) before opening any socket.
    pub fn process() -> Self {
        static BUDGET: OnceLock<ConnectionBudget> = OnceLock::new();
        BUDGET.get_or_init(|| Self::new(guest_share(fd_limit().map_or(1024, |l| l.0)))).clone()
    }

    /// Connections still available.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }

    pub(super) fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Guests get half of `limit`, at least one full socket's worth.
fn guest_share(limit: u64) -> usize {
    usize::try_from((limit / 2).clamp(MAX_CONNECTIONS as u64, MAX_BUDGET))
        .unwrap_or(MAX_CONNECTIONS)
}

/// (soft, hard) RLIMIT_NOFILE.
fn fd_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft descriptor limit to the hard one (guests' sockets and workloads take
/// descriptors; the default soft limit is often 1024). Returns the soft limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let (soft, hard) = fd_limit().ok_or_else(std::io::Error::last_os_error)?;
    if soft >= hard {
        return Ok(soft);
    }
    let limit = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_get_half_the_descriptors_within_bounds() {
        assert_eq!(guest_share(1024), 512);
        assert_eq!(guest_share(20), MAX_CONNECTIONS);
        assert_eq!(guest_share(u64::MAX), MAX_BUDGET as usize);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = raise_fd_limit().expect("raise");
        let (soft, hard) = fd_limit().expect("limit");
        assert_eq!((raised, soft), (hard, hard));
    }

    #[test]
    fn a_budget_hands_out_at_most_its_size() {
        let budget = ConnectionBudget::new(2);
        let first = budget.try_take();
        let second = budget.try_take();
        assert!(first.is_some() && second.is_some());
        assert!(budget.try_take().is_none());
        drop(first);
        assert_eq!(budget.available(), 1);
    }
}
