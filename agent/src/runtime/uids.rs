//! One unprivileged uid/gid per process guest (docs/contracts.md#guests), from `[process]
//! uid_range`.
//!
//! Several agents may share one machine (`gpuspot dev` runs many hosts in one process, CI
//! runs many tests at once, all with the default range), so a uid is claimed machine-wide:
//! a file `<claims>/<uid>` (default `/run/gpuspot-uids`) naming the guest's data dir, created
//! under an exclusive `flock` of `<claims>/.lock`. A claim is stale, and may be taken over,
//! once its data dir is gone (the agent deletes it when the instance is over,
//! docs/contracts.md#guests "Data") and no process runs under the uid. Uids are handed out
//! round-robin (a cursor in `<claims>/.next`), so a uid comes back only after the whole range was
//! used.
//!
//! A claim costs a few file operations, whatever runs on the machine (docs/contracts.md#guests
//! "Cost of a start"): which uids processes run under is read from `/proc` once per pool, at its
//! first claim, and the uids in use then that no live claim explains (a host user inside the range,
//! a leftover of a crashed agent) are never handed out by that pool. Later guests' processes need
//! no scan: an agent kills every process of a guest's uid before it deletes the guest's data dir,
//! so a claim whose data dir is gone has none left.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

/// Which uids the machine's processes run under (a seam: tests give a fake).
pub trait UidsInUse: Send + Sync + std::fmt::Debug + 'static {
    /// Every uid (real, effective, saved or filesystem) some process runs under.
    fn uids_in_use(&self) -> HashSet<u32>;
}

/// The machine's processes, read from `/proc`.
#[derive(Debug)]
pub struct ProcUids;

impl UidsInUse for ProcUids {
    fn uids_in_use(&self) -> HashSet<u32> {
        super::procfs::uids_in_use()
    }
}

/// Where claims live unless told otherwise: tmpfs, so a reboot frees every claim.
pub const CLAIMS_DIR: &str = "/run/gpuspot-uids";

#[derive(Debug, thiserror::Error)]
pub enum UidError {
    #[error("cannot claim a guest uid in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("every guest uid of {first}-{last} is in use ([process] uid_range)")]
    Exhausted { first: u32, last: u32 },
}

/// Who a process guest runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestIds {
    pub uid: u32,
    pub gid: u32,
}

/// How process guests are separated from each other and from the agent.
#[derive(Clone, Debug)]
pub enum Isolation {
    /// Each guest gets its own uid/gid from the pool (the agent is root).
    Uids(UidPool),
    /// Guests run as the agent's own user: not isolated (said once at start).
    Shared,
}

static SHARED_LOGGED: Once = Once::new();

impl Isolation {
    /// Own uids when the agent is root, otherwise shared (and says so, once per process).
    pub fn detect(range: (u32, u32)) -> Self {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return Isolation::Uids(UidPool::new(range, PathBuf::from(CLAIMS_DIR)));
        }
        SHARED_LOGGED.call_once(|| {
            tracing::warn!(
                "the agent is not root: process guests run as the agent's own user and are NOT isolated from each other"
            );
        });
        Isolation::Shared
    }

    /// The ids for a new guest whose data dir is `data_dir` (which must exist); `None` when
    /// guests are not isolated.
    pub fn claim(&self, data_dir: &Path) -> Result<Option<GuestIds>, UidError> {
        match self {
            Isolation::Uids(pool) => {
                pool.claim(data_dir).map(|uid| Some(GuestIds { uid, gid: uid }))
            }
            Isolation::Shared => Ok(None),
        }
    }
}

impl Isolation {
    /// Takes `uid` back for the guest owning `data_dir` after an agent restart: true when
    /// the claim is (now) ours, false when another guest holds it (after a reboot emptied
    /// the claims, say) or guests are not isolated. Only then may the agent act as that uid.
    pub fn reclaim(&self, uid: u32, data_dir: &Path) -> bool {
        match self {
            Isolation::Uids(pool) => pool.reclaim(uid, data_dir).unwrap_or(false),
            Isolation::Shared => false,
        }
    }
}

/// The machine-wide pool of guest uids.
#[derive(Clone, Debug)]
pub struct UidPool {
    first: u32,
    last: u32,
    claims: PathBuf,
    processes: Arc<dyn UidsInUse>,
    /// Uids of the range that processes ran under at the first claim without a live claim.
    foreign: Arc<OnceLock<HashSet<u32>>>,
}

impl UidPool {
    pub fn new(range: (u32, u32), claims: PathBuf) -> Self {
        Self::with_processes(range, claims, Arc::new(ProcUids))
    }

    /// A pool that learns which uids processes run under from `processes`.
    pub fn with_processes(
        (first, last): (u32, u32),
        claims: PathBuf,
        processes: Arc<dyn UidsInUse>,
    ) -> Self {
        Self { first, last, claims, processes, foreign: Arc::default() }
    }

    /// Read once: the range's uids in use by processes that no live claim explains.
    fn foreign(&self) -> &HashSet<u32> {
        self.foreign.get_or_init(|| {
            let range = self.first..=self.last;
            let live = |uid: &u32| {
                read_claim(&self.claims.join(uid.to_string())).is_some_and(|dir| dir.exists())
            };
            self.processes
                .uids_in_use()
                .into_iter()
                .filter(|uid| range.contains(uid) && !live(uid))
                .collect()
        })
    }

    /// Claims a free uid for the guest owning `data_dir`.
    pub fn claim(&self, data_dir: &Path) -> Result<u32, UidError> {
        let io = |source| UidError::Io { dir: self.claims.clone(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.claims).map_err(io)?;
        // Before the lock: the one scan of /proc is slow work no other claimer waits for.
        self.foreign();
        let _lock = self.lock().map_err(io)?;
        let size = u64::from(self.last - self.first) + 1;
        let start = self.cursor();
        for step in 0..size {
            let uid = self.first + ((u64::from(start - self.first) + step) % size) as u32;
            if self.try_claim(uid, data_dir).map_err(io)? {
                let _ =
                    std::fs::write(self.claims.join(".next"), uid.saturating_add(1).to_string());
                return Ok(uid);
            }
        }
        Err(UidError::Exhausted { first: self.first, last: self.last })
    }

    fn reclaim(&self, uid: u32, data_dir: &Path) -> std::io::Result<bool> {
        if !(self.first..=self.last).contains(&uid) {
            return Ok(false);
        }
        self.foreign();
        let _lock = self.lock()?;
        if read_claim(&self.claims.join(uid.to_string())).as_deref() == Some(data_dir) {
            return Ok(true);
        }
        self.try_claim(uid, data_dir)
    }

    /// Takes `uid` if it is free or its claim is stale (no stat of /proc: see the module doc).
    fn try_claim(&self, uid: u32, data_dir: &Path) -> std::io::Result<bool> {
        let path = self.claims.join(uid.to_string());
        if let Some(owner) = read_claim(&path)
            && owner.exists()
        {
            return Ok(false);
        }
        if self.foreign().contains(&uid) {
            return Ok(false);
        }
        // Free, or stale: we hold the lock, so nobody else is deciding about it now.
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
        writeln!(file, "{}", data_dir.display())?;
        Ok(true)
    }

    fn cursor(&self) -> u32 {
        std::fs::read_to_string(self.claims.join(".next"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|uid| (self.first..=self.last).contains(uid))
            .unwrap_or(self.first)
    }

    /// The pool's lock, held until the returned file is dropped. Blocks briefly: holders
    /// only read and write a few claim files.
    fn lock(&self) -> std::io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.claims.join(".lock"))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(file);
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// The data dir a claim names.
fn read_claim(path: &Path) -> Option<PathBuf> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| PathBuf::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, range: (u32, u32)) -> UidPool {
        UidPool::new(range, dir.join("claims"))
    }

    #[test]
    fn claims_are_exclusive_round_robin_and_stale_ones_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        // A private claims dir: this range is never used by real guests.
        let pool = pool(tmp.path(), (3_999_000_000, 3_999_000_002));
        let data = |n: u32| {
            let dir = tmp.path().join(format!("data-{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };
        let a = pool.claim(&data(1)).unwrap();
        let b = pool.claim(&data(2)).unwrap();
        let c = pool.claim(&data(3)).unwrap();
        assert_eq!([a, b, c], [3_999_000_000, 3_999_000_001, 3_999_000_002]);
        let err = pool.claim(&data(4)).unwrap_err();
        assert!(err.to_string().contains("every guest uid"), "{err}");

        // Instance 2 is over: its data dir is gone and nothing runs as its uid.
        std::fs::remove_dir_all(data(2)).unwrap();
        assert_eq!(pool.claim(&data(5)).unwrap(), b);
        let claim = std::fs::read_to_string(tmp.path().join("claims").join(b.to_string())).unwrap();
        assert_eq!(claim.trim(), data(5).display().to_string());

        // After a restart: our own claim is ours; another guest's is not; a lost one comes back.
        assert!(pool.reclaim(b, &data(5)).unwrap());
        assert!(!pool.reclaim(b, &data(1)).unwrap());
        std::fs::remove_file(tmp.path().join("claims").join(a.to_string())).unwrap();
        assert!(pool.reclaim(a, &data(1)).unwrap());
        assert!(!pool.reclaim(7, &data(1)).unwrap(), "outside the range");
    }

    #[test]
    fn a_uid_a_process_runs_under_is_never_claimed() {
        let tmp = tempfile::tempdir().unwrap();
        // SAFETY: getuid has no preconditions.
        let mine = unsafe { libc::getuid() };
        let pool = pool(tmp.path(), (mine, mine));
        let err = pool.claim(tmp.path()).unwrap_err();
        assert!(matches!(err, UidError::Exhausted { .. }), "{err}");
        let me = crate::runtime::procfs::process_uids(std::process::id() as i32).unwrap();
        assert!(me.contains(&mine));
    }

    #[test]
    fn concurrent_claimers_never_share_a_uid() {
        let tmp = tempfile::tempdir().unwrap();
        let range = (3_999_100_000, 3_999_100_063);
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (root, pool) = (tmp.path().to_owned(), pool(tmp.path(), range));
                std::thread::spawn(move || {
                    (0..8)
                        .map(|n| {
                            let dir = root.join(format!("d-{t}-{n}"));
                            std::fs::create_dir_all(&dir).unwrap();
                            pool.claim(&dir).unwrap()
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 64);
    }

    /// Processes run under a fixed set of uids; counts how often it is asked.
    #[derive(Debug, Default)]
    struct FakeProcesses {
        uids: HashSet<u32>,
        scans: std::sync::atomic::AtomicUsize,
    }

    impl UidsInUse for FakeProcesses {
        fn uids_in_use(&self) -> HashSet<u32> {
            self.scans.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.uids.clone()
        }
    }

    #[test]
    fn uids_of_unexplained_processes_are_never_claimed_and_processes_are_read_once() {
        let tmp = tempfile::tempdir().unwrap();
        let first = 3_999_200_000;
        let uids = HashSet::from([first, first + 1]);
        let processes = Arc::new(FakeProcesses { uids, ..Default::default() });
        let claims = tmp.path().join("claims");
        let pool = UidPool::with_processes((first, first + 3), claims.clone(), processes.clone());
        let data = |name: &str| {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };
        // `first` runs a live guest of an earlier agent (its claim explains its process).
        std::fs::create_dir_all(&claims).unwrap();
        std::fs::write(claims.join(first.to_string()), format!("{}\n", data("old").display()))
            .unwrap();
        assert_eq!(pool.claim(&data("a")).unwrap(), first + 2, "first+1 runs an unknown process");
        assert_eq!(pool.claim(&data("b")).unwrap(), first + 3);
        assert!(matches!(pool.claim(&data("c")), Err(UidError::Exhausted { .. })));
        assert!(!pool.reclaim(first + 1, &data("c")).unwrap(), "never an unexplained uid");
        // The earlier guest is over: its uid comes back although the scan saw it busy.
        std::fs::remove_dir_all(tmp.path().join("old")).unwrap();
        assert_eq!(pool.claim(&data("c")).unwrap(), first);
        assert_eq!(processes.scans.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
