//! A guest's watcher and init as the agent binary afresh (docs/contracts.md#guests "Cost of a
//! start"): forked from the agent, each execs `/proc/self/exe` in a helper mode whose `main` does
//! only its waiting (see [`super::spawn`] and [`super::sandbox`]), so neither holds the agent's
//! memory. The agent's `main` calls [`helper_main`] first; a binary that does not (a test harness)
//! keeps them as plain forks.

use super::forked::{INIT_MODE, REEXEC, WATCH_MODE};

/// When this process is the agent binary re-exec'd as a guest's watcher or init (see
/// [`super::forked::reexec`]), runs that and never returns; otherwise returns at once. Call it first
/// thing in `main`: a helper needs nothing of the agent's set-up.
pub fn helper_main() {
    let mut args = std::env::args_os().skip(1);
    REEXEC.store(true, std::sync::atomic::Ordering::Relaxed);
    let Some(mode) = args.next() else { return };
    let is = |m: &std::ffi::CStr| mode.as_encoded_bytes() == m.to_bytes();
    if !is(WATCH_MODE) && !is(INIT_MODE) {
        return;
    }
    let mut number = || -> i32 { args.next().and_then(|a| a.to_str()?.parse().ok()).unwrap_or(-1) };
    let (a, b, c) = (number(), number(), number());
    // SAFETY: this process is the fresh image of a watcher or an init, holding the
    // descriptors and children its arguments name.
    unsafe {
        if is(WATCH_MODE) {
            libc::prctl(libc::PR_SET_NAME, c"gpuspot-watch".as_ptr());
            super::spawn::wait_and_record(a, b, c == 1)
        }
        libc::prctl(libc::PR_SET_NAME, c"gpuspot-init".as_ptr());
        let _ = c; // the network helper's end: held open, nothing to do with it
        super::sandbox::reap(a, b)
    }
}
