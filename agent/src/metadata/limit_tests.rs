//! The socket's limits as a guest meets them (docs/contracts.md#limits), against real servers on
//! temp-dir sockets: the connection cap, the idle timeout, the request size limit and the
//! agent-wide budget.

use super::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const DEADLINE: Duration = Duration::from_secs(10);

struct Socket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    _sender: watch::Sender<GuestMetadata>,
    _server: MetadataServer,
}

fn socket(limits: SocketLimits) -> Socket {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i.sock");
    let metadata = GuestMetadata { instance_id: "i-0123".into(), ..GuestMetadata::default() };
    let (sender, receiver) = watch::channel(metadata);
    let server = MetadataServer::start_with(path.clone(), receiver, limits).expect("start");
    Socket { _dir: dir, path, _sender: sender, _server: server }
}

/// Default limits with a budget of their own, so parallel tests do not share one.
fn limits() -> SocketLimits {
    SocketLimits { budget: ConnectionBudget::new(10_000), ..SocketLimits::default() }
}

/// Reads one response (head and `content-length` body): its status and body.
async fn read_response(stream: &mut UnixStream) -> Option<(u16, String)> {
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok()
                    })
                    .unwrap_or(0usize);
                if body.len() >= length {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    return Some((status, body[..length].to_owned()));
                }
            }
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("an answer or a close before the deadline")
}

/// A keep-alive GET on an open connection.
async fn get_on(stream: &mut UnixStream, target: &str) -> Option<(u16, String)> {
    let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    read_response(stream).await
}

async fn get(path: &Path, target: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(path).await.ok()?;
    get_on(&mut stream, target).await
}

/// Waits until the server closes `stream`; how long that took.
async fn closed_after(stream: &mut UnixStream) -> Duration {
    let began = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(DEADLINE, async {
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    closed.await.expect("closed before the deadline");
    began.elapsed()
}

/// Opens `n` connections that each got one answer and stay open.
async fn hold(path: &Path, n: usize) -> Vec<UnixStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut stream = UnixStream::connect(path).await.expect("connect");
        let answer = get_on(&mut stream, "/vm/metadata?key=instance_id").await;
        assert_eq!(answer, Some((200, "\"i-0123\"".into())));
        held.push(stream);
    }
    held
}

/// Polls `path` until it answers 200, within the deadline.
async fn answers_again(path: &Path) -> bool {
    let began = Instant::now();
    while began.elapsed() < DEADLINE {
        if get(path, "/vm/metadata?key=instance_id").await.is_some_and(|(s, _)| s == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_guest_over_its_connection_cap_gets_503_and_other_sockets_still_answer() {
    let (a, b) = (socket(limits()), socket(limits()));
    let mut held = hold(&a.path, limits::MAX_CONNECTIONS).await;
    let mut extra = UnixStream::connect(&a.path).await.expect("connect");
    let refused = read_response(&mut extra).await;
    assert_eq!(refused, Some((503, "too many connections to this metadata socket\n".into())));
    assert!(closed_after(&mut extra).await < Duration::from_secs(1));

    let began = Instant::now();
    assert_eq!(get(&b.path, "/vm/metadata?key=instance_id").await.map(|r| r.0), Some(200));
    assert!(began.elapsed() < Duration::from_secs(1), "{:?}", began.elapsed());

    // A connection the guest closes gives its slot back.
    held.pop();
    assert!(answers_again(&a.path).await, "a freed slot was not reused");
}

#[tokio::test]
async fn idle_connections_are_closed_but_a_long_poll_is_not() {
    let idle = Duration::from_millis(300);
    let s = socket(SocketLimits { idle_timeout: idle, ..limits() });
    let mut silent = UnixStream::connect(&s.path).await.expect("connect");
    let took = closed_after(&mut silent).await;
    assert!(took >= idle - Duration::from_millis(50) && took < Duration::from_secs(5), "{took:?}");

    // After an answer the clock starts again; a head sent in pieces must still end in time.
    let mut answered = UnixStream::connect(&s.path).await.expect("connect");
    assert_eq!(get_on(&mut answered, "/vm/metadata").await.map(|r| r.0), Some(200));
    answered.write_all(b"GET /vm/meta").await.expect("write");
    assert!(closed_after(&mut answered).await < Duration::from_secs(5));

    let mut poll = UnixStream::connect(&s.path).await.expect("connect");
    let began = Instant::now();
    let answer = get_on(&mut poll, "/vm/events?wait=1").await;
    assert_eq!(answer.map(|r| r.0), Some(200), "the long-poll was cut short");
    assert!(began.elapsed() >= Duration::from_millis(900), "{:?}", began.elapsed());
}

#[tokio::test]
async fn request_heads_over_8_kib_and_bodies_are_refused() {
    let s = socket(limits());
    let head = |filler: usize| {
        format!(
            "GET /vm/metadata HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    let mut small = UnixStream::connect(&s.path).await.expect("connect");
    small.write_all(head(7 * 1024).as_bytes()).await.expect("write");
    assert_eq!(read_response(&mut small).await.map(|r| r.0), Some(200));

    let mut large = UnixStream::connect(&s.path).await.expect("connect");
    // The server may hang up before the whole head is written.
    let _ = large.write_all(head(limits::MAX_REQUEST_BYTES).as_bytes()).await;
    assert_eq!(read_response(&mut large).await.map(|r| r.0), Some(431));

    let mut body = UnixStream::connect(&s.path).await.expect("connect");
    let request = "GET /vm/metadata HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello";
    body.write_all(request.as_bytes()).await.expect("write");
    assert_eq!(read_response(&mut body).await.map(|r| r.0), Some(413));
    assert!(closed_after(&mut body).await < Duration::from_secs(1));
}

#[tokio::test]
async fn the_agent_wide_budget_bounds_every_socket_together() {
    let budget = ConnectionBudget::new(3);
    let shared = SocketLimits { budget: budget.clone(), ..SocketLimits::default() };
    let (a, b) = (socket(shared.clone()), socket(shared));
    let mut held = hold(&a.path, 3).await;
    assert_eq!(budget.available(), 0);
    let mut refused = UnixStream::connect(&b.path).await.expect("connect");
    assert_eq!(read_response(&mut refused).await.map(|r| r.0), Some(503));
    held.clear();
    assert!(answers_again(&b.path).await, "the budget was not given back");
}
