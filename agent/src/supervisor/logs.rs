//! Workload output on the agent (docs/contracts.md#limits): each instance's log file keeps at most
//! `max_bytes` on disk. The oldest bytes are punched out of the file
//! ([`gpuspot_common::logcap`]), so offsets stay absolute and shipping by offset stays as it
//! is, and output that was dropped before it was shipped is skipped, never sent as the
//! zeros of the hole. While a workload runs, a task caps its log on a timer of its own, so
//! the cap holds even while the coordinator is unreachable; every read caps it too.

use gpuspot_common::logcap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Largest log chunk per frame.
pub(super) const LOG_CHUNK: usize = 64 * 1024;

/// One instance's output file and how much of it has been shipped.
pub(super) struct LogTail {
    file: Arc<CappedLog>,
    pub(super) sent: u64,
    /// The running workload's capping task, stopped when the tail is dropped or ends.
    capper: Option<Capper>,
}

impl LogTail {
    pub(super) fn new(path: PathBuf, max_bytes: u64, sent: u64) -> Self {
        let file = Arc::new(CappedLog {
            path,
            max_bytes,
            lock: Mutex::new(()),
            warned: AtomicBool::new(false),
        });
        Self { file, sent, capper: None }
    }

    /// Caps the file every `every` until [`LogTail::stop_capping`] or drop.
    pub(super) fn cap_every(&mut self, every: Duration) {
        let file = self.file.clone();
        self.capper = Some(Capper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                file.cap();
            }
        })));
    }

    /// The workload ended: one last cap, then only reads cap the file.
    pub(super) fn stop_capping(&mut self) {
        self.capper = None;
        self.file.cap();
    }

    /// The next chunk not yet shipped, from the oldest byte still kept.
    pub(super) fn read_chunk(&mut self) -> Option<(u64, Vec<u8>)> {
        let (offset, data) = self.file.read_from(self.sent)?;
        self.sent = offset + data.len() as u64;
        Some((offset, data))
    }
}

struct Capper(JoinHandle<()>);

impl Drop for Capper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct CappedLog {
    path: PathBuf,
    max_bytes: u64,
    /// Held across a cap and across a read, so a read never meets a hole punched under it.
    lock: Mutex<()>,
    /// A filesystem that cannot punch holes is reported once, not on every poll.
    warned: AtomicBool,
}

impl CappedLog {
    /// Drops the head of the file; the first offset still kept. Call with the lock held.
    fn cap_locked(&self, file: &File) -> u64 {
        match logcap::drop_head(file, self.max_bytes) {
            Ok(kept) => kept,
            Err(error) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %self.path.display(), %error,
                        "cannot free the head of a workload log; its disk use is not capped");
                }
                let len = file.metadata().map_or(0, |m| m.len());
                logcap::first_kept(len, self.max_bytes)
            }
        }
    }

    fn cap(&self) {
        let _locked = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(file) = open(&self.path) {
            self.cap_locked(&file);
        }
    }

    fn read_from(&self, sent: u64) -> Option<(u64, Vec<u8>)> {
        let _locked = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = open(&self.path).ok()?;
        let start = sent.max(self.cap_locked(&file));
        if file.metadata().ok()?.len() <= start {
            return None;
        }
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut data = vec![0u8; LOG_CHUNK];
        let n = file.read(&mut data).ok()?;
        if n == 0 {
            return None;
        }
        data.truncate(n);
        Some((start, data))
    }
}

/// Punching a hole needs the file open for writing; nothing is ever written through it.
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn log_of(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("output.log");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn a_small_log_is_shipped_whole_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut tail = LogTail::new(log_of(dir.path(), &text), 1 << 20, 0);
        let (first, data) = tail.read_chunk().expect("chunk");
        assert_eq!((first, data.len()), (0, LOG_CHUNK));
        let (second, rest) = tail.read_chunk().expect("chunk");
        assert_eq!(second, LOG_CHUNK as u64);
        assert_eq!([data, rest].concat(), text);
        assert_eq!(tail.read_chunk(), None);
    }

    #[test]
    fn dropped_output_is_skipped_and_the_real_tail_is_shipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 256 * 1024;
        let mut bytes = vec![b'x'; 4 << 20];
        bytes.extend_from_slice(b"the last line\n");
        let path = log_of(dir.path(), &bytes);
        let mut tail = LogTail::new(path.clone(), max, 1000);
        let mut shipped = Vec::new();
        let mut offsets = Vec::new();
        while let Some((offset, data)) = tail.read_chunk() {
            offsets.push(offset);
            shipped.extend(data);
        }
        let len = bytes.len() as u64;
        assert_eq!(offsets[0], len - max, "skips to the oldest byte kept");
        assert_eq!(shipped.len() as u64, max);
        assert!(shipped.iter().all(|&b| b != 0), "no zeros from the hole");
        assert!(shipped.ends_with(b"the last line\n"));
        let file = File::open(&path).expect("open");
        assert!(logcap::allocated_bytes(&file).expect("blocks") <= max + 8192);
        assert_eq!(file.metadata().expect("meta").len(), len, "offsets stay absolute");

        // Appending keeps working and is shipped from where the tail left off.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(b"more\n")
            .expect("write");
        assert_eq!(tail.read_chunk(), Some((len, b"more\n".to_vec())));
    }
}
