use super::*;
use std::fs;

const MAX: u64 = 64 * 1024 * 1024;

fn fill(dir: &Path) {
    fs::create_dir_all(dir.join("checkpoints/epoch-1")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("top.txt"), b"top level\n").unwrap();
    fs::write(dir.join("checkpoints/latest"), b"epoch-1").unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let model: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(dir.join("checkpoints/epoch-1/model.pt"), &model).unwrap();
    fs::write(dir.join("checkpoints/train.log"), "step 100 loss 0.5\n".repeat(10_000)).unwrap();
    std::os::unix::fs::symlink("checkpoints/epoch-1", dir.join("current")).unwrap();
}

fn packed(dir: &Path, out: &Path) -> SnapshotRef {
    let (sha256, size) = pack(dir, out, MAX).unwrap();
    SnapshotRef { id: "s-0123456789abcdef".into(), sha256, size }
}

/// A packed archive built by hand, for entries `pack` never writes.
fn hand_made(out: &Path, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> SnapshotRef {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    fs::write(out, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    let size = fs::metadata(out).unwrap().len();
    SnapshotRef { id: "s-0000000000000000".into(), sha256: sha256_file(out).unwrap(), size }
}

fn raw_entry(kind: tar::EntryType, name: &[u8], link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    // set_path refuses `..`, so the name is written into the raw header.
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

fn is_empty(dir: &Path) -> bool {
    !dir.exists() || fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn a_directory_survives_a_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, dst) =
        (tmp.path().join("src"), tmp.path().join("s.tar.zst"), tmp.path().join("dst"));
    fill(&src);
    let snapshot = packed(&src, &out);
    assert_eq!(snapshot.size, fs::metadata(&out).unwrap().len());
    assert_eq!(snapshot.sha256, sha256_file(&out).unwrap());
    assert!(snapshot.size < 400_000, "zstd compresses the log: {}", snapshot.size);
    unpack(&out, &dst, &snapshot).unwrap();
    for file in
        ["top.txt", "checkpoints/latest", "checkpoints/train.log", "checkpoints/epoch-1/model.pt"]
    {
        assert_eq!(fs::read(src.join(file)).unwrap(), fs::read(dst.join(file)).unwrap(), "{file}");
    }
    assert!(dst.join("empty").is_dir());
    assert_eq!(fs::read_link(dst.join("current")).unwrap(), Path::new("checkpoints/epoch-1"));
    assert_eq!(fs::read(dst.join("current/model.pt")).unwrap().len(), 300_000);
}

#[test]
fn an_empty_directory_packs_and_a_missing_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("src")).unwrap();
    let snapshot = packed(&tmp.path().join("src"), &tmp.path().join("s"));
    unpack(&tmp.path().join("s"), &tmp.path().join("dst"), &snapshot).unwrap();
    assert!(is_empty(&tmp.path().join("dst")));
    let err = pack(&tmp.path().join("missing"), &tmp.path().join("m"), MAX).unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    assert!(!tmp.path().join("m").exists());
}

#[test]
fn a_checksum_mismatch_extracts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, dst) =
        (tmp.path().join("src"), tmp.path().join("s.tar.zst"), tmp.path().join("dst"));
    fill(&src);
    let mut snapshot = packed(&src, &out);
    snapshot.sha256 = "00".repeat(32);
    let err = unpack(&out, &dst, &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::ChecksumMismatch { .. }), "{err}");
    // Same size, one flipped byte: the declared checksum no longer matches.
    let snapshot = packed(&src, &out);
    let mut bytes = fs::read(&out).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&out, bytes).unwrap();
    let err = unpack(&out, &dst, &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::ChecksumMismatch { .. }), "{err}");
    assert!(is_empty(&dst));
}

#[test]
fn a_truncated_file_extracts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, dst) =
        (tmp.path().join("src"), tmp.path().join("s.tar.zst"), tmp.path().join("dst"));
    fill(&src);
    let snapshot = packed(&src, &out);
    let bytes = fs::read(&out).unwrap();
    fs::write(&out, &bytes[..bytes.len() / 2]).unwrap();
    let err = unpack(&out, &dst, &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::SizeMismatch { .. }), "{err}");
    // Even when the reference describes the truncated file, the archive itself is corrupt.
    let truncated = SnapshotRef {
        sha256: sha256_file(&out).unwrap(),
        size: bytes.len() as u64 / 2,
        ..snapshot
    };
    let err = unpack(&out, &dst, &truncated).unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt(_)), "{err}");
    assert!(is_empty(&dst));
}

#[test]
fn the_size_limit_is_enforced_while_packing() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("s.tar.zst"));
    fill(&src);
    let err = pack(&src, &out, 1000).unwrap_err();
    assert!(matches!(err, SnapshotError::TooLarge { max: 1000 }), "{err}");
    assert!(err.to_string().contains("1000 bytes"), "{err}");
    assert!(!out.exists(), "a refused snapshot leaves no file");
    let (_, size) = pack(&src, &out, MAX).unwrap();
    assert!(pack(&src, &out, size).is_ok(), "exactly the limit is accepted");
    assert!(matches!(pack(&src, &out, size - 1), Err(SnapshotError::TooLarge { .. })));
}

#[test]
fn path_traversal_entries_extract_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[u8], tar::EntryType, Option<&str>); 5] = [
        (b"../escaped.txt", tar::EntryType::Regular, None),
        (b"/tmp/absolute.txt", tar::EntryType::Regular, None),
        (b"up", tar::EntryType::Symlink, Some("../..")),
        (b"abs", tar::EntryType::Symlink, Some("/etc")),
        (b"dev", tar::EntryType::Char, None),
    ];
    for (i, (name, kind, link)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("bad-{i}.tar.zst"));
        let dst = tmp.path().join(format!("dst-{i}"));
        let snapshot = hand_made(&out, |b| {
            b.get_mut().extend(raw_entry(tar::EntryType::Regular, b"fine.txt", None, b"fine"));
            b.get_mut().extend(raw_entry(kind, name, link, b"bad"));
        });
        let err = unpack(&out, &dst, &snapshot).unwrap_err();
        assert!(matches!(err, SnapshotError::UnsafeEntry { .. }), "{i}: {err}");
        assert!(is_empty(&dst), "{i}: nothing is extracted, not even the safe entry");
    }
    assert!(!tmp.path().join("escaped.txt").exists());
}

#[test]
fn writing_through_a_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.tar.zst");
    let dst = tmp.path().join("dst");
    // `x/l` points at the root of the data dir; `x/l/..` would then be its parent.
    let snapshot = hand_made(&out, |b| {
        b.get_mut().extend(raw_entry(tar::EntryType::Directory, b"x", None, b""));
        b.get_mut().extend(raw_entry(tar::EntryType::Symlink, b"x/l", Some(".."), b""));
        b.get_mut().extend(raw_entry(tar::EntryType::Symlink, b"y", Some("x/l/.."), b""));
        b.get_mut().extend(raw_entry(tar::EntryType::Regular, b"x/l/z", None, b"z"));
    });
    let err = unpack(&out, &dst, &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::UnsafeEntry { .. }), "{err}");
    assert!(is_empty(&dst));
    let snapshot = hand_made(&out, |b| {
        b.get_mut().extend(raw_entry(tar::EntryType::Symlink, b"l", Some("."), b""));
        b.get_mut().extend(raw_entry(tar::EntryType::Regular, b"l/z", None, b"z"));
    });
    let err = unpack(&out, &dst, &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::UnsafeEntry { .. }), "{err}");
    assert!(is_empty(&dst));
}
