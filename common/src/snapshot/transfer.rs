//! Moving packed snapshot bytes between a file and a stream (both sides of the snapshot
//! streams use it): exactly `size` bytes, hashed on the way, with an inactivity timeout on
//! every read and write so a stalled peer cannot hold a transfer forever.

use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the stream ended after {copied} of {expected} bytes")]
    Ended { copied: u64, expected: u64 },
    #[error("no progress for {0:?}")]
    Stalled(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Copies exactly `size` bytes from `reader` to `writer` (then flushes it) and returns their
/// sha256, hex. Bytes after the first `size` are left unread.
pub async fn copy_exact<R, W>(
    reader: &mut R,
    writer: &mut W,
    size: u64,
    idle: Duration,
) -> Result<String, TransferError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK.min(size as usize).max(1)];
    let mut copied = 0u64;
    while copied < size {
        let want = buffer.len().min((size - copied) as usize);
        let n = within(idle, reader.read(&mut buffer[..want])).await?;
        if n == 0 {
            return Err(TransferError::Ended { copied, expected: size });
        }
        within(idle, writer.write_all(&buffer[..n])).await?;
        hasher.update(&buffer[..n]);
        copied += n as u64;
    }
    within(idle, writer.flush()).await?;
    Ok(hex::encode(hasher.finalize()))
}

/// Whether `reader` is at its end (waits at most `idle` for the answer).
pub async fn at_end<R: AsyncRead + Unpin>(
    reader: &mut R,
    idle: Duration,
) -> Result<bool, TransferError> {
    let mut probe = [0u8; 1];
    Ok(within(idle, reader.read(&mut probe)).await? == 0)
}

async fn within<T>(
    idle: Duration,
    operation: impl Future<Output = std::io::Result<T>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(idle, operation).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(TransferError::Stalled(idle)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn copies_exactly_and_hashes() {
        let data = vec![7u8; 600_000];
        let mut reader = &data[..];
        let mut out = Vec::new();
        let sha = copy_exact(&mut reader, &mut out, 500_000, IDLE).await.unwrap();
        assert_eq!(out.len(), 500_000);
        assert_eq!(sha, hex::encode(Sha256::digest(&data[..500_000])));
        let mut rest = Vec::new();
        copy_exact(&mut reader, &mut rest, 99_999, IDLE).await.unwrap();
        assert!(!at_end(&mut reader, IDLE).await.unwrap(), "one byte is left");
        assert!(at_end(&mut reader, IDLE).await.unwrap());
    }

    #[tokio::test]
    async fn a_short_stream_is_an_error() {
        let mut reader = &b"abc"[..];
        let err = copy_exact(&mut reader, &mut Vec::new(), 4, IDLE).await.unwrap_err();
        assert!(matches!(err, TransferError::Ended { copied: 3, expected: 4 }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_peer_stalls() {
        let (_keep, mut reader) = tokio::io::duplex(64);
        let idle = Duration::from_millis(50);
        let err = copy_exact(&mut reader, &mut Vec::new(), 4, idle).await.unwrap_err();
        assert!(matches!(err, TransferError::Stalled(_)), "{err}");
    }
}
