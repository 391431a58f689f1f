//! A container's output, appended to the instance's log file (which the supervisor ships
//! and caps), across agent restarts without losing or repeating a line.
//!
//! The engine keeps the container's log; we follow it with timestamps. Podman stamps whole
//! seconds only, so the position is "the first `skip` frames of second `since`", saved
//! beside the log after every append together with the log's length. A new follower asks
//! for everything from `since` on, drops those `skip` frames, and drops as many further
//! bytes as the log grew past the saved length (an append that the agent made but could
//! not mark before it died). The log's length counts every byte ever written (capping
//! punches holes, see [`gpuspot_common::logcap`]), so the arithmetic holds.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures::StreamExt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Frames handled (and marked) together when the engine has many ready.
const BATCH: usize = 256;

/// How far the log file has followed the container's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Unix second of the last frame written.
    pub since: i64,
    /// Frames of second `since` written.
    pub skip: u64,
    /// The log file's length after them.
    pub len: u64,
}

impl Mark {
    /// The saved mark, or none yet (a mark that cannot be read counts as none).
    pub fn load(path: &Path) -> Mark {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Mark::parse(&text).unwrap_or_default()
    }

    fn parse(text: &str) -> Option<Mark> {
        let mut numbers = text.split_whitespace();
        let mut next = || numbers.next()?.parse::<i64>().ok();
        let (since, skip, len) = (next()?, next()?, next()?);
        Some(Mark { since, skip: u64::try_from(skip).ok()?, len: u64::try_from(len).ok()? })
    }

    /// Written whole or not at all (a torn mark would repeat the whole log).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let temporary = path.with_extension("mark.new");
        std::fs::write(&temporary, format!("{} {} {}\n", self.since, self.skip, self.len))?;
        std::fs::rename(&temporary, path)
    }

    /// Where a fresh container starts: after whatever the log already holds.
    pub fn fresh(log: &Path) -> Mark {
        let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        Mark { since: 0, skip: 0, len }
    }
}

/// `<log>.mark`, beside the log in the instance's dir.
pub fn mark_path(log: &Path) -> PathBuf {
    log.with_extension("mark")
}

/// Applies frames to the log: what to drop because it is already there, what to append.
struct Follower {
    mark: Mark,
    /// Frames of second `mark.since` that are already in the file.
    to_skip: u64,
    /// Bytes already in the file past `mark.len`.
    extra: u64,
}

impl Follower {
    fn new(mark: Mark, file_len: u64) -> Self {
        Follower { mark, to_skip: mark.skip, extra: file_len.saturating_sub(mark.len) }
    }

    /// The part of one frame (`second`, `payload`) not yet in the file.
    fn apply<'a>(&mut self, second: i64, payload: &'a [u8]) -> &'a [u8] {
        if second == self.mark.since && self.to_skip > 0 {
            self.to_skip -= 1;
            return &[];
        }
        self.to_skip = 0;
        let already = usize::try_from(self.extra).unwrap_or(usize::MAX).min(payload.len());
        self.extra -= already as u64;
        let new = &payload[already..];
        if second == self.mark.since {
            self.mark.skip += 1;
        } else {
            self.mark = Mark { since: second, skip: 1, len: self.mark.len };
        }
        self.mark.len += payload.len() as u64;
        new
    }
}

/// A frame `2026-12-02T06:22:04.123Z payload` as (unix second, payload). A frame without a
/// readable stamp counts as the current second.
fn split_stamp(frame: &[u8], current: i64) -> (i64, &[u8]) {
    let Some(space) = frame.iter().position(|b| *b == b' ') else {
        return (current, frame);
    };
    let stamp = std::str::from_utf8(&frame[..space]).ok();
    match stamp.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) {
        Some(time) => (time.timestamp(), &frame[space + 1..]),
        None => (current, frame),
    }
}

/// Follows the output of container `name` into `log` until the container ends (the stream
/// closes) or the engine fails. Errors are the engine's or the file's.
pub async fn follow(docker: &Docker, name: &str, log: &Path) -> Result<(), FollowError> {
    let marks = mark_path(log);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(FollowError::File)?;
    let file_len = file.metadata().map_err(FollowError::File)?.len();
    let mut follower = Follower::new(Mark::load(&marks), file_len);
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        since: i32::try_from(follower.mark.since).unwrap_or(0),
        until: 0,
        tail: "all".to_owned(),
    };
    let mut frames = docker.logs(name, Some(options)).ready_chunks(BATCH);
    while let Some(batch) = frames.next().await {
        let mut out = Vec::new();
        let mut failed = None;
        for frame in batch {
            match frame {
                Ok(frame) => append(&mut follower, &frame, &mut out),
                Err(error) => failed = Some(error),
            }
        }
        file.write_all(&out).map_err(FollowError::File)?;
        follower.mark.save(&marks).map_err(FollowError::File)?;
        if let Some(error) = failed {
            return Err(FollowError::Engine(error));
        }
    }
    Ok(())
}

fn append(follower: &mut Follower, frame: &LogOutput, out: &mut Vec<u8>) {
    let (second, payload) = split_stamp(frame.as_ref(), follower.mark.since);
    out.extend_from_slice(follower.apply(second, payload));
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot write the log: {0}")]
    File(#[source] std::io::Error),
    #[error("the engine stopped sending output: {0}")]
    Engine(#[source] bollard::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(follower: &mut Follower, frames: &[(i64, &str)]) -> String {
        let mut out = String::new();
        for (second, payload) in frames {
            out.push_str(std::str::from_utf8(follower.apply(*second, payload.as_bytes())).unwrap());
        }
        out
    }

    const FRAMES: [(i64, &str); 5] = [(5, "a\n"), (5, "b\n"), (6, "c\n"), (6, "d\n"), (7, "e\n")];

    #[test]
    fn a_resumed_follower_writes_each_frame_once() {
        let mut first = Follower::new(Mark::default(), 0);
        assert_eq!(run(&mut first, &FRAMES[..3]), "a\nb\nc\n");
        assert_eq!(first.mark, Mark { since: 6, skip: 1, len: 6 });
        // The engine resends from second 6 on.
        let mut second = Follower::new(first.mark, 6);
        assert_eq!(run(&mut second, &FRAMES[2..]), "d\ne\n");
        assert_eq!(second.mark, Mark { since: 7, skip: 1, len: 10 });
    }

    #[test]
    fn bytes_appended_but_not_marked_are_not_repeated() {
        let mut first = Follower::new(Mark::default(), 0);
        run(&mut first, &FRAMES[..2]);
        // "c\n" and half of "d\n" reached the file, the mark stayed at "b\n".
        let mut second = Follower::new(first.mark, first.mark.len + 3);
        assert_eq!(run(&mut second, &FRAMES), "\ne\n");
        assert_eq!(second.mark, Mark { since: 7, skip: 1, len: 10 });
    }

    #[test]
    fn stamps_are_read_to_the_second() {
        assert_eq!(split_stamp(b"1970-01-01T00:00:09Z hi\n", 0), (9, &b"hi\n"[..]));
        assert_eq!(split_stamp(b"1970-01-01T00:00:09.9Z hi", 0), (9, &b"hi"[..]));
        assert_eq!(split_stamp(b"garbage", 3), (3, &b"garbage"[..]));
    }

    #[test]
    fn marks_round_trip_and_a_bad_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let mark = Mark { since: 1_700_000_000, skip: 3, len: 42 };
        mark.save(&mark_path(&log)).unwrap();
        assert_eq!(Mark::load(&mark_path(&log)), mark);
        std::fs::write(mark_path(&log), "1 2").unwrap();
        assert_eq!(Mark::load(&mark_path(&log)), Mark::default());
    }
}
