//! Snapshots of an instance's data dir (docs/contracts.md#snapshots): [`pack`] streams the
//! directory's contents into a tar archive compressed with zstd and returns its sha256 and size;
//! [`unpack`] checks a packed file against its [`SnapshotRef`] (size, then sha256) before anything
//! is extracted, and refuses entries that would land outside the target directory. Nothing here
//! holds a whole snapshot in memory. [`transfer`] moves packed bytes over a stream.

#[cfg(test)]
mod tests;
pub mod transfer;

use crate::protocol::SnapshotRef;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// zstd level: fast, and most of the gain of higher levels on checkpoint data.
const ZSTD_LEVEL: i32 = 3;
const BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the packed snapshot exceeds the limit of {max} bytes")]
    TooLarge { max: u64 },
    #[error("snapshot is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("snapshot sha256 is {actual}, expected {expected}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("snapshot entry {entry:?} refused: {why}")]
    UnsafeEntry { entry: String, why: &'static str },
    #[error("snapshot archive is corrupt: {0}")]
    Corrupt(io::Error),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_owned(), source }
}

/// Packs the contents of `dir` into `out_file` (tar + zstd). Returns (sha256 hex, size).
/// Symbolic links are stored as links; sockets and other special files are skipped. When
/// the packed size would exceed `max_bytes`, stops with [`SnapshotError::TooLarge`] and
/// removes `out_file`.
pub fn pack(dir: &Path, out_file: &Path, max_bytes: u64) -> Result<(String, u64), SnapshotError> {
    let result = pack_into(dir, out_file, max_bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(out_file);
    }
    result
}

fn pack_into(dir: &Path, out_file: &Path, max_bytes: u64) -> Result<(String, u64), SnapshotError> {
    std::fs::metadata(dir).map_err(io_at(dir))?;
    let file = File::create(out_file).map_err(io_at(out_file))?;
    let exceeded = Rc::new(Cell::new(false));
    let sink = HashingWriter {
        inner: BufWriter::with_capacity(BUFFER, file),
        hasher: Sha256::new(),
        written: 0,
        max: max_bytes,
        exceeded: exceeded.clone(),
    };
    let too_large = |e: io::Error| match exceeded.get() {
        true => SnapshotError::TooLarge { max: max_bytes },
        false => SnapshotError::Io { path: out_file.to_owned(), source: e },
    };
    let encoder = zstd::Encoder::new(sink, ZSTD_LEVEL).map_err(too_large)?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    append_tree(&mut builder, dir, Path::new("")).map_err(|e| match e {
        SnapshotError::Io { source, .. } if exceeded.get() => too_large(source),
        other => other,
    })?;
    let encoder = builder.into_inner().map_err(too_large)?;
    let sink = encoder.finish().map_err(too_large)?;
    let HashingWriter { inner, hasher, written, .. } = sink;
    let file = inner.into_inner().map_err(|e| too_large(e.into_error()))?;
    file.sync_all().map_err(io_at(out_file))?;
    Ok((hex::encode(hasher.finalize()), written))
}

/// Appends the entries of `dir` under the archive name `prefix`, sorted, recursively.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &Path,
) -> Result<(), SnapshotError> {
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_at(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_at(dir))?;
    children.sort_by_key(|entry| entry.file_name());
    for child in children {
        let path = child.path();
        let name = prefix.join(child.file_name());
        let kind = child.file_type().map_err(io_at(&path))?;
        if kind.is_dir() {
            builder.append_path_with_name(&path, &name).map_err(io_at(&path))?;
            append_tree(builder, &path, &name)?;
        } else if kind.is_file() || kind.is_symlink() {
            builder.append_path_with_name(&path, &name).map_err(io_at(&path))?;
        }
    }
    Ok(())
}

/// Counts and hashes what passes through, and fails once more than `max` bytes were written.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    max: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.max {
            self.exceeded.set(true);
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "snapshot size limit"));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The sha256 of a file, hex, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String, SnapshotError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let n = file.read(&mut buffer).map_err(io_at(path))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// Checks `file` against `expected` (size, then sha256), then checks every entry and only
/// then extracts into `dir` (created if missing). Any mismatch, corruption or unsafe entry
/// (absolute path, `..`, a link pointing outside `dir`, a device) extracts nothing.
pub fn unpack(file: &Path, dir: &Path, expected: &SnapshotRef) -> Result<(), SnapshotError> {
    let actual = std::fs::metadata(file).map_err(io_at(file))?.len();
    if actual != expected.size {
        return Err(SnapshotError::SizeMismatch { expected: expected.size, actual });
    }
    let sha256 = sha256_file(file)?;
    if !sha256.eq_ignore_ascii_case(&expected.sha256) {
        return Err(SnapshotError::ChecksumMismatch {
            expected: expected.sha256.clone(),
            actual: sha256,
        });
    }
    walk_entries(file, None)?;
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    walk_entries(file, Some(dir))
}

/// Reads every entry of the packed `file`, checking it; extracts it into `dest` when given.
fn walk_entries(file: &Path, dest: Option<&Path>) -> Result<(), SnapshotError> {
    let reader = BufReader::with_capacity(BUFFER, File::open(file).map_err(io_at(file))?);
    let decoder = zstd::Decoder::new(reader).map_err(SnapshotError::Corrupt)?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    let mut links = BTreeSet::new();
    for entry in archive.entries().map_err(SnapshotError::Corrupt)? {
        let mut entry = entry.map_err(SnapshotError::Corrupt)?;
        check_entry(&entry, &mut links)?;
        match dest {
            Some(dir) => {
                let name = entry_name(&entry);
                if !entry.unpack_in(dir).map_err(io_at(&dir.join(&name)))? {
                    return Err(unsafe_entry(&entry, "outside the target directory"));
                }
            }
            None => drain(&mut entry)?,
        }
    }
    Ok(())
}

fn drain<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
    io::copy(entry, &mut io::sink()).map(drop).map_err(SnapshotError::Corrupt)
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).into_owned()
}

fn unsafe_entry<R: Read>(entry: &tar::Entry<'_, R>, why: &'static str) -> SnapshotError {
    SnapshotError::UnsafeEntry { entry: entry_name(entry), why }
}

/// Refuses paths outside the directory, paths through a link of this archive, links
/// pointing outside, and anything but files, directories and symbolic links.
fn check_entry<R: Read>(
    entry: &tar::Entry<'_, R>,
    links: &mut BTreeSet<PathBuf>,
) -> Result<(), SnapshotError> {
    let path = entry.path().map_err(SnapshotError::Corrupt)?;
    let Some(normal) = normalized(&path) else {
        return Err(unsafe_entry(entry, "absolute path or `..`"));
    };
    if normal.ancestors().any(|a| links.contains(a)) {
        return Err(unsafe_entry(entry, "path goes through a link"));
    }
    match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => Ok(()),
        tar::EntryType::Symlink => {
            let target = entry.link_name().map_err(SnapshotError::Corrupt)?;
            let parent = normal.parent().unwrap_or(Path::new(""));
            match target.filter(|t| link_stays_inside(parent, t)) {
                Some(_) => {
                    links.insert(normal);
                    Ok(())
                }
                None => Err(unsafe_entry(entry, "link points outside the directory")),
            }
        }
        _ => Err(unsafe_entry(entry, "only files, directories and symbolic links are restored")),
    }
}

/// The path's normal components; None when it is absolute or contains `..`.
fn normalized(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a relative link `target` placed in `parent` resolves inside the directory. `..`
/// may only lead the target ("../../a/b"), so the climb happens from real directories and
/// never through another link, which could otherwise point somewhere shallower.
fn link_stays_inside(parent: &Path, target: &Path) -> bool {
    let mut depth = parent.components().count();
    let mut descended = false;
    for component in target.components() {
        match component {
            Component::Normal(_) => descended = true,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 && !descended => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}
