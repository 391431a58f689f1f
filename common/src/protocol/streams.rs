//! The first frames and the replies of the streams beside a session's control stream:
//! commands run in an instance (exec) and snapshot transfers.

use super::SnapshotRef;
use crate::InstanceId;
use serde::{Deserialize, Serialize};

/// First frame on an exec stream, a bidirectional stream the coordinator opens to the agent
/// (docs/contracts.md#guests "Getting in"). The agent answers with [`ExecOutput`] frames ending in
/// `Exit` or `Error`; the coordinator may send [`ExecInput`] frames while it runs. Closing the
/// stream (either side) ends the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub instance_id: InstanceId,
    /// argv; must not be empty.
    pub command: Vec<String>,
    /// Allocate a terminal (interactive sessions); stdout and stderr are merged either way.
    pub tty: bool,
    /// Terminal size (columns, rows) when `tty`.
    pub size: Option<(u16, u16)>,
    /// Whether stdin frames follow; without it the command's stdin is empty.
    pub stdin: bool,
    /// The agent kills the command after this long.
    pub timeout_ms: u64,
}

/// Agent → coordinator on an exec stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecOutput {
    /// Output bytes (stdout and stderr merged, in order of arrival).
    Data(Vec<u8>),
    /// The command ended; `code` is None when a signal or the timeout ended it.
    Exit { code: Option<i32>, timed_out: bool },
    /// The command could not run (unknown instance, not running, bad command).
    Error { reason: String },
}

/// Coordinator → agent on an exec stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    /// No more stdin.
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
}

/// First frame on a snapshot stream (a bidirectional stream the agent opens next to its
/// control stream). An upload's raw bytes follow the frame; the coordinator answers with
/// one [`SnapshotStreamReply`]. A download's reply is followed by the raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStreamRequest {
    Upload { instance_id: InstanceId, sha256: String, size: u64 },
    Download { snapshot_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStreamReply {
    /// Upload stored and its checksum verified.
    Stored(SnapshotRef),
    /// Download follows: exactly `size` bytes.
    Sending(SnapshotRef),
    Rejected {
        reason: String,
    },
}
