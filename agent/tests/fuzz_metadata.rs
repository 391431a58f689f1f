//! Fuzzing of the guest metadata socket's HTTP handling with proptest: a real
//! `MetadataServer` on a temp-dir unix socket gets arbitrary bytes, mutated valid requests and
//! odd request heads, sequentially and in parallel bursts. Whatever it answers must be HTTP
//! with a status under 500 (a refusal or a plain close is fine: the socket caps connections,
//! request sizes and idle time), nothing may panic, and after every case a well-formed
//! request must get the current metadata within a deadline. `PROPTEST_CASES` raises the
//! number of cases (see `scripts/fuzz.sh`).

use gpuspot_agent::metadata::MetadataServer;
use gpuspot_common::Money;
use gpuspot_common::protocol::GuestMetadata;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// How long a fuzz connection may take to answer before it is dropped: a mutated request
/// may legitimately be a long-poll (the metadata change that ends each case wakes it).
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// How long the server may take to answer a well-formed request after a case.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

thread_local! {
    /// Panics on this thread. The runtime is current-thread, so the server's tasks run on
    /// the test's own thread, and a connection task that panics (caught by tokio) is seen.
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.borrow_mut().push(info.to_string()));
            default(info);
        }));
    });
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok());
    // A hand-driven runner has no source file to keep regressions next to.
    ProptestConfig {
        cases: cases.unwrap_or(default_cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A metadata server with a known instance id and a price that each case changes.
struct Fixture {
    runtime: Runtime,
    socket: PathBuf,
    sender: watch::Sender<GuestMetadata>,
    micros: Cell<i64>,
    /// Fuzz connections that got an HTTP answer (not just a close): proof the inputs reach
    /// the HTTP layer rather than all being dropped unread.
    answered: Cell<u32>,
    _server: MetadataServer,
    // Dropped last: the server removes its socket first.
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        record_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("i-fuzz.sock");
        let metadata = GuestMetadata {
            instance_id: "i-fuzz".into(),
            host_id: "h-fuzz".into(),
            price: Some(Money::from_micros(1_000_000)),
            ..GuestMetadata::default()
        };
        let (sender, receiver) = watch::channel(metadata);
        let server = {
            let _context = runtime.enter();
            MetadataServer::start(socket.clone(), receiver).expect("metadata server")
        };
        Fixture {
            runtime,
            socket,
            sender,
            micros: Cell::new(1_000_000),
            answered: Cell::new(0),
            _server: server,
            _dir: dir,
        }
    }

    /// After a case: wakes long-polls it left behind by changing the price, then checks
    /// that a well-formed request sees the new price, and that nothing panicked.
    fn check_still_serving(&self) -> Result<(), TestCaseError> {
        self.micros.set(self.micros.get() + 1);
        let price = Money::from_micros(self.micros.get());
        self.sender.send_modify(|m| m.price = Some(price));
        let answer = self.runtime.block_on(probe(&self.socket, &price.to_string()));
        let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        prop_assert!(panics.is_empty(), "the server panicked: {:?}", panics);
        answer.map_err(TestCaseError::fail)
    }

    /// Runs the cases; returns how many fuzz connections got an HTTP answer.
    fn run(&self, default_cases: u32, inputs: impl Strategy<Value = Vec<Vec<u8>>>) -> u32 {
        let mut runner = TestRunner::new(config(default_cases));
        let outcome = runner.run(&inputs, |connections| {
            let answers = self.runtime.block_on(exchange_all(&self.socket, &connections));
            for answer in &answers {
                check_answer(answer)?;
                self.answered.set(self.answered.get() + u32::from(!answer.is_empty()));
            }
            self.check_still_serving()
        });
        if let Err(error) = outcome {
            panic!("{error}");
        }
        self.answered.get()
    }
}

/// Sends each input on its own connection, all at once, and collects what came back.
async fn exchange_all(socket: &Path, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let exchanges = inputs.iter().map(|input| exchange(socket, input));
    futures::future::join_all(exchanges).await
}

/// Writes `input`, half-closes, and reads until the server closes or [`ANSWER_WAIT`] ends.
/// Errors (reset, broken pipe, refused) count as a close: the server may hang up on garbage.
async fn exchange(socket: &Path, input: &[u8]) -> Vec<u8> {
    let mut answer = Vec::new();
    let Ok(mut stream) = UnixStream::connect(socket).await else {
        return answer;
    };
    let talk = async {
        if stream.write_all(input).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..n]);
        }
    };
    let _ = tokio::time::timeout(ANSWER_WAIT, talk).await;
    answer
}

/// An answer is empty (a close) or HTTP/1.x responses, none of them a server error.
fn check_answer(answer: &[u8]) -> Result<(), TestCaseError> {
    if answer.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(answer);
    prop_assert!(text.starts_with("HTTP/1."), "not an HTTP response: {:?}", text);
    for line in text.split("\r\n").filter(|l| l.starts_with("HTTP/1.")) {
        let status = line.get(9..12).and_then(|s| s.parse::<u16>().ok());
        prop_assert!(
            status.is_some_and(|s| (100..500).contains(&s)),
            "bad status line {:?} in {:?}",
            line,
            text
        );
    }
    Ok(())
}

/// `GET /vm/metadata` until it answers 200 with `price`, retried (the socket may refuse
/// while it winds down the connections a case left) until [`PROBE_DEADLINE`].
async fn probe(socket: &Path, price: &str) -> Result<(), String> {
    let request = b"GET /vm/metadata HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let began = Instant::now();
    loop {
        let answer = String::from_utf8_lossy(&exchange(socket, request).await).into_owned();
        let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("");
        let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200 ")
            && value["instance_id"] == "i-fuzz"
            && value["price"] == price
        {
            return Ok(());
        }
        if began.elapsed() > PROBE_DEADLINE {
            return Err(format!("no correct answer within {PROBE_DEADLINE:?}; last: {answer:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Valid requests the mutations start from: every route, methods, bodies, pipelining.
const SEEDS: [&str; 10] = [
    "GET /vm/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /vm/metadata?key=price HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /vm/metadata?key=spot_termination_time&key=x HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /vm/events?wait=0 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /latest/meta-data/spot/instance-action HTTP/1.0\r\n\r\n",
    "POST /vm/metadata HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "PUT /vm/metadata HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /vm/metadata HTTP/1.1\r\nHost: a\r\n\r\nGET /vm/metadata?key=host_id HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET http://localhost/vm/metadata HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\r\n",
    "HEAD /vm/metadata HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: curl/8\r\n\r\n",
];

/// Fragments that matter to an HTTP parser, inserted at random places.
const TOKENS: [&str; 14] = [
    "\r\n",
    "\r\n\r\n",
    "\n",
    " ",
    ":",
    "\0",
    "%",
    "%zz",
    "?",
    "HTTP/1.1",
    "Content-Length: 18446744073709551616\r\n",
    "Content-Length: 3\r\nContent-Length: 4\r\n",
    "Transfer-Encoding: chunked\r\n",
    "ffffffffffffffff\r\n",
];

#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Remove(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Edit::Flip(at, mask)),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Token(at, token)),
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Edit::Remove(at, len)),
        (any::<usize>(), 1usize..24, 1usize..64).prop_map(|(at, len, n)| Edit::Repeat(at, len, n)),
    ]
}

fn apply(input: &mut Vec<u8>, edit: &Edit) {
    let len = input.len().max(1);
    match edit {
        Edit::Flip(at, mask) if !input.is_empty() => input[at % len] ^= mask,
        Edit::Insert(at, bytes) => {
            let at = at % (input.len() + 1);
            input.splice(at..at, bytes.iter().copied());
        }
        Edit::Token(at, t) => {
            let at = at % (input.len() + 1);
            input.splice(at..at, TOKENS[*t].bytes());
        }
        Edit::Remove(at, n) if !input.is_empty() => {
            let at = at % len;
            input.drain(at..(at + n).min(input.len()));
        }
        Edit::Repeat(at, n, times) if !input.is_empty() => {
            let at = at % len;
            let piece = input[at..(at + n).min(input.len())].to_vec();
            let copies: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * times).collect();
            input.splice(at..at, copies);
        }
        _ => {}
    }
}

fn mutated_request() -> impl Strategy<Value = Vec<u8>> {
    (0..SEEDS.len(), vec(edit(), 1..6)).prop_map(|(seed, edits)| {
        let mut input = SEEDS[seed].as_bytes().to_vec();
        for edit in &edits {
            apply(&mut input, edit);
        }
        input
    })
}

/// A request head built from parts: any method, target and headers, sometimes huge.
fn odd_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![Just("GET".to_owned()), "[A-Z]{0,12}", "\\PC{0,8}"];
    let target = prop_oneof![
        "/vm/metadata\\?key=[a-z_]{0,20}",
        "/vm/events\\?wait=[0-9]{0,3}",
        "/[ -~]{0,64}",
        "\\PC{0,64}",
    ];
    let header = ("[!-9;-~]{0,16}", "[ -~]{0,64}").prop_map(|(k, v)| format!("{k}: {v}\r\n"));
    let headers = vec(header, 0..12);
    let padding = prop_oneof![4 => Just(0usize), 1 => 0usize..20_000];
    (method, target, headers, padding).prop_map(|(method, target, headers, padding)| {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
        headers.iter().for_each(|h| head.push_str(h));
        if padding > 0 {
            head.push_str(&format!("X-Pad: {}\r\n", "a".repeat(padding)));
        }
        head.push_str("\r\n");
        head.into_bytes()
    })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..1024), mutated_request(), odd_request(),]
}

#[test]
fn arbitrary_bytes_leave_the_socket_serving() {
    Fixture::start().run(128, vec(any::<u8>(), 0..2048).prop_map(|bytes| vec![bytes]));
}

#[test]
fn mutated_requests_leave_the_socket_serving() {
    let answered = Fixture::start().run(256, mutated_request().prop_map(|input| vec![input]));
    assert!(answered > 0, "no mutated request got an HTTP answer");
}

#[test]
fn odd_request_heads_leave_the_socket_serving() {
    let answered = Fixture::start().run(128, odd_request().prop_map(|input| vec![input]));
    assert!(answered > 0, "no request head got an HTTP answer");
}

/// Bursts of garbage on parallel connections, below the per-socket connection cap.
#[test]
fn parallel_bursts_of_garbage_leave_the_socket_serving() {
    Fixture::start().run(32, vec(any_input(), 2..16));
}
