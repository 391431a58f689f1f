//! Every listener (the API, the gateway, the SSH door) holds up against a hostile client
//! (docs/contracts.md#limits, issue 24 holes 5 and 9): one address gets only its share of
//! connections, a client that logs in or sends its body too slowly is cut off, and a flood up to
//! the coordinator's descriptor limit does not close the door for the clients that come after.
//!
//! Floods come from many loopback source addresses (127.0.0.2, 127.0.0.3, …: all of 127/8
//! is this machine), so the per-address cap does not stop them before the descriptor limit,
//! which the test lowers to [`DESCRIPTOR_LIMIT`] on the running coordinator.

use gpuspot_e2e::billing::running_instance;
use gpuspot_e2e::deploy::{Deployments, regular_spec};
use gpuspot_e2e::exec::{SshLogin, ssh_port};
use gpuspot_e2e::{Cluster, SOON, TEST_CONFIG, cluster, holds, s, wait_until};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The coordinator's descriptor limit during a flood.
const DESCRIPTOR_LIMIT: u64 = 256;
/// Connections per source address in a flood (the configured per-client cap), and how many
/// addresses: more connections in all than descriptors.
const PER_ADDRESS: usize = 4;
const FLOOD_ADDRESSES: usize = 80;
/// `login_timeout` and `body_timeout` in these tests, and the slack allowed past them.
const CUT_OFF: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(3);

const SSH: &str = "[ssh]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_client = 4\n\
                   login_timeout = \"2s\"\n";

/// Loopback source address number `n` (from 127.0.0.2).
fn loopback(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, (n / 250) as u8, 2 + (n % 250) as u8)
}

/// `per_source` TCP connections to `to` from each of `sources`.
fn connections(
    to: SocketAddr,
    sources: impl IntoIterator<Item = Ipv4Addr>,
    per_source: usize,
) -> Vec<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut open = Vec::new();
        for source in sources {
            for _ in 0..per_source {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind(SocketAddr::new(source.into(), 0)).expect("bind a loopback source");
                let connected = tokio::time::timeout(Duration::from_secs(5), socket.connect(to));
                let stream = connected.await.expect("connect in time").expect("connect");
                let stream = stream.into_std().expect("a std stream");
                stream.set_nonblocking(false).expect("blocking");
                open.push(stream);
            }
        }
        open
    })
}

/// What `stream` sends within `within`: the text, and whether it closed (else time ran
/// out, or `enough` held for the text).
fn read_for(stream: &mut TcpStream, within: Duration, enough: &str) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
    let deadline = Instant::now() + within;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if !enough.is_empty() && String::from_utf8_lossy(&text).contains(enough) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&text).into_owned(), true),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&text).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&text).into_owned(), false)
}

/// Sends `head`, then `piece` every two seconds, as a client trickling its body would, until
/// the server closes the connection or `limit` passes: (what came back, when it closed).
fn trickle(to: &str, head: &str, piece: &str, limit: Duration) -> (String, Option<Duration>) {
    let mut stream = TcpStream::connect(to).expect("connect");
    stream.write_all(head.as_bytes()).expect("send the head");
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < limit {
        if stream.write_all(piece.as_bytes()).is_err() {
            return (answer, Some(started.elapsed()));
        }
        // The two seconds a slow client waits between bytes, spent reading.
        let (text, closed) = read_for(&mut stream, Duration::from_secs(2), "");
        answer.push_str(&text);
        if closed {
            return (answer, Some(started.elapsed()));
        }
    }
    (answer, None)
}

fn wait_for_descriptor_shortage(c: &Cluster) {
    wait_until(SOON, "the coordinator to run out of descriptors", || {
        let open = c.coordinator.open_descriptors();
        holds(open as u64 >= DESCRIPTOR_LIMIT - 4, || format!("{open} descriptors open"))
    });
}

fn ssh_door(c: &Cluster) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, ssh_port(&c.coordinator)))
}

#[test]
fn the_ssh_door_holds_an_address_to_its_share_and_closes_a_client_that_does_not_log_in() {
    let c = cluster!(&format!("{TEST_CONFIG}\n{SSH}"));
    let door = ssh_door(&c);
    let mut held = connections(door, [loopback(0)], 4);
    let connected = Instant::now();
    for stream in &mut held {
        let (banner, _) = read_for(stream, SOON, "\n");
        assert!(banner.starts_with("SSH-2.0-"), "admitted: {banner:?}");
    }
    let mut fifth = connections(door, [loopback(0)], 1).remove(0);
    let (text, closed) = read_for(&mut fifth, SOON, "\n");
    assert!(closed && text.is_empty(), "a fifth from one address is closed at once: {text:?}");
    let mut other = connections(door, [loopback(1)], 1).remove(0);
    let (banner, _) = read_for(&mut other, SOON, "\n");
    assert!(banner.starts_with("SSH-2.0-"), "another address still gets in: {banner:?}");

    // None of them logs in: each is closed after the login timeout, not before.
    let (_, closed) = read_for(&mut held[0], CUT_OFF + SLACK, "");
    let after = connected.elapsed();
    assert!(closed, "a client silent for {after:?} is still connected");
    eprintln!("a client that did not log in was closed after {after:?}");
    assert!(after >= CUT_OFF - Duration::from_millis(300), "closed after only {after:?}");
    for stream in &mut held[1..] {
        assert!(read_for(stream, SLACK, "").1, "every silent client is closed");
    }
    let mut again = connections(door, [loopback(0)], 1).remove(0);
    let (banner, _) = read_for(&mut again, SOON, "\n");
    assert!(banner.starts_with("SSH-2.0-"), "closed connections give their places back");
    drop((again, other, fifth, held));

    // A logged-in session outlives the login timeout.
    let _host = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "patient");
    let token = owner.api.token.clone().expect("the owner's token");
    let login = SshLogin { port: ssh_port(&c.coordinator), user: &id, password: &token };
    let output = login.command(c.dir(), "sleep 3; echo still here");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "still here\n", "{output:?}");
}

#[test]
fn the_ssh_door_lets_users_in_again_after_a_flood_to_the_descriptor_limit() {
    // A login timeout long enough that the flood's silent connections are all still held
    // when the descriptors run out, however slowly a loaded machine accepts them.
    let ssh = SSH.replace("login_timeout = \"2s\"", "login_timeout = \"60s\"");
    let c = cluster!(&format!("{TEST_CONFIG}\n{ssh}"));
    let _host = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "flooded");
    let token = owner.api.token.clone().expect("the owner's token");
    let login = SshLogin { port: ssh_port(&c.coordinator), user: &id, password: &token };
    c.coordinator.limit_descriptors(DESCRIPTOR_LIMIT);
    let flood = connections(ssh_door(&c), (0..FLOOD_ADDRESSES).map(loopback), PER_ADDRESS);
    wait_for_descriptor_shortage(&c);
    drop(flood);
    let output = wait_until(SOON, "a login after the flood", || {
        let output = login.command(c.dir(), "echo back");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        holds(text == "back\n", || format!("{output:?}")).map(|()| output)
    });
    assert!(output.status.success(), "{output:?}");
}

/// A replica that reads request bodies to their end before answering.
const SINK: &str = r#"import http.server, os
class H(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read()
        self.send_response(200)
        self.end_headers()
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn the_gateway_cuts_off_a_body_sent_a_byte_every_two_seconds() {
    let gateway = "[gateway]\nlisten = \"127.0.0.1:0\"\nbody_timeout = \"2s\"\n";
    let c = cluster!(&format!("{TEST_CONFIG}\n{gateway}"));
    let address = c.gateway().expect("the gateway's address");
    let _host = c.agent(&c.write_profile("serve", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "sink", "mode": "replicaset", "replicas": 1, "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "command": ["python3", "-c", SINK],
                      "readiness": { "http_path": "/", "interval": "200ms" } },
    }));
    let id = s(&created, "id").to_owned();
    deps.wait(&id, SOON, "a ready replica", |_| {
        let endpoints = deps.endpoints(&id);
        holds(endpoints.iter().any(|e| e["ready"] == true), || format!("{endpoints:?}"))
    });
    for (what, framing, piece) in [
        ("a body of known length (buffered)", "content-length: 1000", "x"),
        ("a chunked body (streamed)", "transfer-encoding: chunked", "1\r\nx\r\n"),
    ] {
        let head = format!("POST /d/sink/upload HTTP/1.1\r\nhost: gateway\r\n{framing}\r\n\r\n");
        let (answer, closed) = trickle(&address, &head, piece, CUT_OFF + SLACK);
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open: {answer:?}"));
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer:?} after {closed:?}");
        assert!(answer.contains("request_timeout"), "{what}: the API's error shape: {answer}");
        eprintln!("gateway, {what}: 408 and closed after {closed:?}");
    }
}

/// `GET /healthz` on a kept-alive connection; the answer's head.
fn healthz(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: api\r\n\r\n").expect("send");
    read_for(stream, SOON, "\r\n\r\n").0
}

#[test]
fn the_api_caps_an_address_cuts_off_slow_bodies_and_survives_a_descriptor_flood() {
    // The head timeout is long so that the flood's silent connections are all still held
    // when the descriptors run out, however slowly a loaded machine accepts them.
    let api = "[api]\nmax_connections_per_client = 4\nbody_timeout = \"2s\"\n\
               header_timeout = \"60s\"\n";
    let c = cluster!(&format!("{TEST_CONFIG}\n{api}"));
    let http = c.coordinator.http;
    // Each answers before the next opens: connections reach actix's two workers in any order.
    let mut held = connections(http, [loopback(200)], 4);
    for stream in &mut held {
        assert!(healthz(stream).starts_with("HTTP/1.1 200"), "admitted");
    }
    let mut fifth = connections(http, [loopback(200)], 1).remove(0);
    let (answer, closed) = read_for(&mut fifth, SOON, "");
    assert!(closed && answer.starts_with("HTTP/1.1 429"), "a fifth is refused: {answer:?}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    for stream in &mut held {
        let answer = healthz(stream);
        assert!(answer.starts_with("HTTP/1.1 200"), "the admitted ones still work: {answer:?}");
    }
    drop(held);

    let head = format!(
        "POST /v1/accounts HTTP/1.1\r\nhost: api\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n",
        c.coordinator.admin_token
    );
    let (answer, closed) = trickle(&http.to_string(), &head, " ", CUT_OFF + SLACK);
    let closed =
        closed.unwrap_or_else(|| panic!("a trickled body is still being read: {answer:?}"));
    eprintln!("API: a trickled body got its answer and was closed after {closed:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer}");

    c.coordinator.limit_descriptors(DESCRIPTOR_LIMIT);
    let flood = connections(http, (0..FLOOD_ADDRESSES).map(loopback), PER_ADDRESS);
    wait_for_descriptor_shortage(&c);
    drop(flood);
    wait_until(SOON, "the API to answer after the flood", || match c.api.try_get("/healthz") {
        Ok((200, _)) => Ok(()),
        other => Err(format!("{other:?}")),
    });
}
