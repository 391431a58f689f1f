//! Bounded workload logs (docs/contracts.md#limits): a log file keeps absolute offsets, so the
//! agent's offset-based shipping and the coordinator's idempotent writes stay as they are, but it
//! holds at most `max_bytes` on disk. Older bytes are punched out of the file
//! (`FALLOC_FL_PUNCH_HOLE`), leaving it sparse: its length still counts every byte ever written,
//! its allocated blocks only the newest `max_bytes` (plus one partial block).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Default for `[logs] max_bytes` on the agent and the coordinator: 64 MiB per instance.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// `[logs]` in the agent's and the coordinator's config files.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    /// Bytes of output each instance keeps on disk; older output is dropped
    /// (docs/contracts.md#limits).
    pub max_bytes: Option<u64>,
}

/// The first offset still kept in a log of `len` bytes capped at `max_bytes`.
pub fn first_kept(len: u64, max_bytes: u64) -> u64 {
    len.saturating_sub(max_bytes)
}

/// Frees the disk blocks of everything before [`first_kept`]; returns that offset. Reads
/// below it return zeros, so readers start at it. Punching an existing hole again is cheap.
pub fn drop_head(file: &File, max_bytes: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let keep_from = first_kept(len, max_bytes);
    if keep_from == 0 {
        return Ok(0);
    }
    let length = libc::off_t::try_from(keep_from)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "log offset beyond off_t"))?;
    // SAFETY: fallocate on a file descriptor we own for the call's duration; no memory is
    // passed to the kernel.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            length,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(keep_from)
}

/// Bytes the file really occupies on disk.
pub fn allocated_bytes(file: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.blocks() * 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn the_head_is_freed_and_the_tail_and_length_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).read(true).open(&path).unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..8 {
            file.write_all(&chunk).unwrap();
        }
        file.write_all(b"the end\n").unwrap();
        let max = 256 * 1024;
        let kept = drop_head(&file, max).unwrap();
        let len = 8 * (1 << 20) + 8;
        assert_eq!(kept, len - max);
        assert_eq!(file.metadata().unwrap().len(), len);
        assert!(allocated_bytes(&file).unwrap() <= max + 8192, "head not freed");
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(kept)).unwrap();
        file.read_to_end(&mut tail).unwrap();
        assert_eq!(tail.len() as u64, max);
        assert!(tail.ends_with(b"the end\n"));
        // Appending still works after a punch, and a small log is left alone.
        file.write_all(b"more\n").unwrap();
        assert_eq!(file.metadata().unwrap().len(), len + 5);
        assert_eq!(drop_head(&file, u64::MAX).unwrap(), 0);
    }
}
