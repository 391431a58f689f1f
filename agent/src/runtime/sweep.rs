//! The end of an isolated guest: everything running under its uid is killed, whatever
//! session or process group it moved to (`setsid`, double forks), and what it left in the
//! machine's shared scratch dirs is removed, so nothing of it outlives its instance or
//! reaches the next guest given the same uid.

use super::procfs::{self, all_pids};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`kill_uid`] keeps killing before it gives up (a guest that forks faster than
/// it can be killed is still caught by its cgroup, where there is one).
const KILL_DEADLINE: Duration = Duration::from_secs(5);
/// Shared scratch dirs a guest can write to.
const SCRATCH_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Live (non-zombie) processes with `uid` among their uids.
pub fn processes_of(uid: u32) -> Vec<i32> {
    all_pids()
        .filter(|pid| procfs::process_uids(*pid).is_some_and(|ids| ids.contains(&uid)))
        .filter(|pid| super::group::process_alive(*pid as u32))
        .collect()
}

/// SIGKILLs every process of `uid` until none is left; returns whether none is. Blocking:
/// call it from a blocking thread. `uid` must be a guest's, never root's or the agent's.
pub fn kill_uid(uid: u32) -> bool {
    // SAFETY: getuid has no preconditions.
    if uid == 0 || uid == unsafe { libc::getuid() } {
        return false;
    }
    let deadline = Instant::now() + KILL_DEADLINE;
    loop {
        if processes_of(uid).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::warn!(uid, "processes of a guest uid survive SIGKILL");
            return false;
        }
        kill_all_as(uid);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kill(-1, SIGKILL)` from a child running as `uid`: the kernel signals every process of
/// that uid in one pass that no fork can slip through.
fn kill_all_as(uid: u32) {
    // SAFETY: the child only makes async-signal-safe calls (setgid, setuid, kill, _exit).
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if libc::setgid(uid) == 0 && libc::setuid(uid) == 0 {
                libc::kill(-1, libc::SIGKILL);
            }
            libc::_exit(0);
        }
        if pid > 0 {
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) == -1
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
        }
    }
}

/// Removes what `uid` owns at the top of the shared scratch dirs.
pub fn remove_scratch_of(uid: u32) {
    for dir in SCRATCH_DIRS {
        remove_owned_entries(Path::new(dir), uid);
    }
}

fn remove_owned_entries(dir: &Path, uid: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.uid() != uid {
            continue;
        }
        // remove_dir_all does not follow symlinks, so a planted link cannot redirect it.
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
        if let Err(error) = removed {
            tracing::warn!(path = %entry.path().display(), %error, "cannot remove a guest's scratch file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_uid_refuses_root_and_the_agent_itself() {
        assert!(!kill_uid(0));
        // SAFETY: getuid has no preconditions.
        assert!(!kill_uid(unsafe { libc::getuid() }));
        assert!(processes_of(std::process::id()).len() <= all_pids().count());
    }

    #[test]
    fn owned_entries_are_removed_and_others_kept() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let mine = std::fs::metadata(tmp.path()).unwrap().uid();
        std::fs::create_dir_all(tmp.path().join("d/e")).unwrap();
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        remove_owned_entries(tmp.path(), mine.wrapping_add(1));
        assert!(tmp.path().join("f").exists());
        remove_owned_entries(tmp.path(), mine);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
