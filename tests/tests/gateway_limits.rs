//! The gateway bounds what one client holds open (`[gateway] max_connections_per_client`):
//! past it a connection is answered 429 `too_many_connections` and closed, other clients'
//! places are untouched, and a closed connection gives its place back.

use gpuspot_e2e::wait::{holds, wait_until};
use gpuspot_e2e::{SOON, TEST_CONFIG, cluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends one keep-alive request on `stream` and reads until the answer names an error code.
fn ask(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let request = "GET /d/nothing/ HTTP/1.1\r\nHost: gateway\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let text = String::from_utf8_lossy(&answer);
        if text.contains("unknown_deployment") || text.contains("too_many_connections") {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn one_client_cannot_hold_more_than_its_share_of_gateway_connections() {
    let limits = "[gateway]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_client = 2\n";
    let c = cluster!(&format!("{TEST_CONFIG}\n{limits}"));
    let gateway = c.gateway().expect("gateway");
    let connect = || TcpStream::connect(&gateway).expect("connect");
    let mut held = vec![connect(), connect()];
    for stream in &mut held {
        let answer = ask(stream);
        assert!(answer.starts_with("HTTP/1.1 404"), "admitted: {answer}");
    }
    let answer = ask(&mut connect());
    assert!(answer.starts_with("HTTP/1.1 429"), "a third is refused: {answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    let answer = ask(&mut held[0]);
    assert!(answer.starts_with("HTTP/1.1 404"), "held connections still work: {answer}");
    held.pop();
    wait_until(SOON, "the closed connection's place to come back", || {
        let answer = ask(&mut connect());
        holds(answer.starts_with("HTTP/1.1 404"), || answer.clone())
    });
}
