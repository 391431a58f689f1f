//! The gateway bounds what one client holds open (`[gateway] max_connections_per_client`):
//! past it a connection is answered 429 `too_many_connections` and closed, other clients'
//! places are untouched, and a closed connection gives its place back. Names, which the
//! gateway routes by, cannot be taken from another tenant and must fit in a URL segment.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::wait::{holds, wait_until};
use gpuspot_e2e::{SOON, TEST_CONFIG, assert_error, cluster, s};
use serde_json::json;
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
    let body: serde_json::Value = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_default();
    assert_eq!(body["error"]["code"], "too_many_connections", "the API's error shape: {answer}");
    let answer = ask(&mut held[0]);
    assert!(answer.starts_with("HTTP/1.1 404"), "held connections still work: {answer}");
    held.pop();
    wait_until(SOON, "the closed connection's place to come back", || {
        let answer = ask(&mut connect());
        holds(answer.starts_with("HTTP/1.1 404"), || answer.clone())
    });
}

#[test]
fn a_tenant_cannot_take_a_name_another_tenant_serves_under() {
    let c = cluster!(&format!("{TEST_CONFIG}\n[gateway]\nlisten = \"127.0.0.1:0\"\n"));
    let (alice, mallory) = (create_account(&c.api, "alice"), create_account(&c.api, "mallory"));
    for account in [&alice, &mallory] {
        account.pay(&c.api, "50.00");
    }
    let body = |name: &str| {
        json!({ "name": name, "mode": "replicaset", "replicas": 1,
                "specs": [regular_spec(&["RTX 4090"], 1)], "template": { "command": ["true"] } })
    };
    let (status, first) = alice.api.post("/v1/deployments", &body("svc"));
    assert_eq!(status, 202, "{first}");
    let taken = mallory.api.post("/v1/deployments", &body("svc"));
    assert_error(&taken, 409, Some("name_taken"), "another tenant's name");
    let again = alice.api.post("/v1/deployments", &body("svc"));
    assert_error(&again, 409, Some("name_taken"), "its owner's too: a name is one deployment's");
    for bad in ["a/b", "with space", "..", &"x".repeat(64)] {
        let answer = mallory.api.post("/v1/deployments", &body(bad));
        assert_error(&answer, 400, None, &format!("name {bad:?}"));
    }
    let deleted = alice.api.delete(&format!("/v1/deployments/{}", s(&first, "id")));
    assert!(deleted.0 < 300, "{deleted:?}");
}
