//! What the code between fork and exec may call (async-signal-safe, no allocation): closing
//! descriptors, writing a number, and re-exec'ing the agent binary as a guest's watcher or
//! init (see [`super::helper`]).

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

/// Whether this binary runs [`super::helper::helper_main`] first thing (the agent's does; a test
/// harness does not, and its guests' watchers and inits stay forks).
pub(super) static REEXEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Closes every descriptor but those in `keep`, ascending (close_range(2); the std error
/// pipe among them).
pub(super) unsafe fn close_all_but(keep: &[RawFd]) {
    let mut from: libc::c_uint = 0;
    // SAFETY: closing descriptors is always memory-safe.
    unsafe {
        for fd in keep.iter().filter(|fd| **fd >= 0).map(|fd| *fd as libc::c_uint) {
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
            }
            from = fd + 1;
        }
        if libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) == -1 {
            for fd in from..4096 {
                libc::close(fd as RawFd);
            }
        }
    }
}

/// `n` and a newline, formatted without allocating.
pub(super) unsafe fn write_number(fd: RawFd, n: i64) {
    let mut buf = [0u8; 24];
    let mut at = buf.len() - 1;
    buf[at] = b'\n';
    let negative = n < 0;
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    // SAFETY: the buffer outlives the call.
    unsafe {
        libc::write(fd, buf[at..].as_ptr().cast(), buf.len() - at);
    }
}
