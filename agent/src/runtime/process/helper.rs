//! A guest's watcher and init as the agent binary afresh (DESIGN §14 "Cost of a start"):
//! forked from the agent, each execs `/proc/self/exe` in a helper mode whose `main` does
//! only its waiting (see [`super::spawn`] and [`super::sandbox`]), so neither holds the
//! agent's memory. The agent's `main` calls [`helper_main`] first; a binary that does not
//! (a test harness) keeps them as plain forks.

use std::os::fd::RawFd;

/// argv[1] of the agent binary re-exec'd as a guest's watcher: `CHILD STATUS_FD INIT`.
pub(super) const WATCH_MODE: &std::ffi::CStr = c"__gpuspot-watch";
/// argv[1] of the agent binary re-exec'd as a guest's init: `WORKLOAD STATUS_FD NET_EXIT_FD`.
pub(super) const INIT_MODE: &std::ffi::CStr = c"__gpuspot-init";

/// In a forked child of the agent: execs the agent binary (`/proc/self/exe`, whatever
/// became of its path) in helper `mode` with `numbers` as arguments, an empty environment
/// and the descriptors among `numbers` kept (the others must be closed already). Returns
/// only when the exec failed; the caller then goes on in the fork.
pub(super) unsafe fn reexec(mode: &std::ffi::CStr, numbers: &[i64; 3]) {
    if !REEXEC.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut texts = [[0u8; 24]; 3];
    // SAFETY: async-signal-safe calls; every pointer is to this frame's memory.
    unsafe {
        for (n, text) in numbers.iter().zip(texts.iter_mut()) {
            format_number(*n, text);
            // Descriptors among the numbers survive the exec; the rest are not ours.
            if let Ok(fd) = RawFd::try_from(*n)
                && fd > 2
            {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
        }
        let argv = [
            c"gpuspot-helper".as_ptr(),
            mode.as_ptr(),
            texts[0].as_ptr().cast(),
            texts[1].as_ptr().cast(),
            texts[2].as_ptr().cast(),
            std::ptr::null(),
        ];
        let envp = [std::ptr::null::<libc::c_char>()];
        libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
}

/// `n` in decimal, NUL-terminated, at the start of `buf`, without allocating.
fn format_number(n: i64, buf: &mut [u8; 24]) {
    let mut digits = [0u8; 20];
    let mut rest = n.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut at = 0;
    if n < 0 {
        buf[0] = b'-';
        at = 1;
    }
    for i in 0..len {
        buf[at + i] = digits[len - 1 - i];
    }
    buf[at + len] = 0;
}

/// Whether this binary runs [`helper_main`] first thing (the agent's does; a test
/// harness does not, and its guests' watchers and inits stay forks).
static REEXEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// When this process is the agent binary re-exec'd as a guest's watcher or init (see
/// [`reexec`]), runs that and never returns; otherwise returns at once. Call it first
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
