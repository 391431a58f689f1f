//! Polling with a deadline instead of fixed sleeps: a condition is checked every 50 ms until
//! it holds; on timeout the test panics with what it waited for and the last state it saw
//! (the cluster then prints its logs, see [`crate::Cluster`]).

use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok(value)`; `Err(state)` describes what was observed
/// instead. Panics after `timeout` with `what` and the last observed state.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let last = match check() {
            Ok(value) => return value,
            Err(state) => state,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:.1?} waiting for {what}\n  last observed: {last}",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// `Ok(())` when `condition` holds, else `Err(state())`: a helper for [`wait_until`]
/// closures.
pub fn holds(condition: bool, state: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(state()) }
}
