//! What one tenant can never do to the others or to the operator (docs/contracts.md#limits), tried
//! the way a hostile tenant would: pay itself, overflow a balance, keep a stolen token, hold event
//! streams open without reading them, or print without end.

use gpuspot_e2e::billing::{Account, assert_ledger_adds_up, create_account};
use gpuspot_e2e::market::patch;
use gpuspot_e2e::values::money;
use gpuspot_e2e::{
    Api, Cluster, SOON, TEST_CONFIG, assert_error, cluster, holds, request, s, sh, wait_until,
};
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Every ledger entry of an account, as the admin reads it.
fn full_ledger(admin: &Api, account: &Account) -> Vec<serde_json::Value> {
    let body = admin.get_ok(&format!("/v1/accounts/{}/ledger?limit=100000", account.id));
    body.as_array().cloned().unwrap_or_default()
}

#[test]
fn payments_are_the_operators_and_a_balance_never_overflows() {
    let c = cluster!();
    let mallory = create_account(&c.api, "mallory");
    let own = format!("/v1/accounts/{}/payments", mallory.id);
    let answer = mallory.api.post(&own, &json!({ "amount": "1000.00" }));
    assert_error(&answer, 403, Some("forbidden"), "an account pays itself");
    assert_eq!(money(&mallory.show(), "balance"), 0, "the refused payment booked nothing");

    for bad in ["0", "-5.00", "1e3", "1.1234567", "+1", ".5", "1000000000.000001", "NaN"] {
        let answer = c.api.post(&own, &json!({ "amount": bad }));
        assert_error(&answer, 400, Some("invalid_request"), &format!("amount {bad:?}"));
    }
    assert_error(&c.api.post(&own, &json!({ "amount": 5 })), 400, None, "a number, not a string");

    // i64::MAX micro-units is 9,223,372,036,854.775807: 9,224 payments of the largest
    // amount pass it. Pay until refused; every refusal must be the overflow.
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..1200 {
                    let (status, body) = c.api.post(&own, &json!({ "amount": "1000000000" }));
                    if status == 400 {
                        let message = body["error"]["message"].as_str().unwrap_or_default();
                        assert!(message.contains("overflow"), "{body}");
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        assert_eq!(status, 201, "{body}");
                    }
                }
            });
        }
    });
    assert!(refused.into_inner() > 0, "9,600 payments of 10^9 must overflow an i64 balance");
    let balance = money(&mallory.show(), "balance");
    assert!(balance > i64::MAX - 1_000_000_000 * 1_000_000, "balance {balance}");
    assert_ledger_adds_up(&full_ledger(&c.api, &mallory), balance);
}

#[test]
fn a_rotated_token_replaces_the_old_one_and_a_disabled_account_is_shut_out() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (acme, other) = (create_account(&c.api, "acme"), create_account(&c.api, "other"));
    acme.pay(&c.api, "100.00");
    let me = format!("/v1/accounts/{}", acme.id);
    assert_error(&other.api.post(&format!("{me}/token"), &json!({})), 404, None, "foreign");

    let old_token = acme.api.token.clone().unwrap_or_default();
    let stolen = reading_stream(&c, &old_token);
    let (status, rotated) = acme.api.post(&format!("{me}/token"), &json!({}));
    assert_eq!(status, 201, "{rotated}");
    assert_error(&acme.api.get(&me), 401, Some("unauthorized"), "the old token");
    let seen = read_to_end(stolen, SOON);
    assert!(seen.contains("event: token_rotated"), "the stream saw the rotation: {seen}");
    let acme_new = Api::new(&c.api.base, Some(s(&rotated, "token")));
    assert_eq!(acme_new.get(&me).0, 200, "the new token");

    let job = request("busy", &["RTX 5090"], 1, &sh("exec sleep 120"));
    let id = s(&acme_new.create(&job), "id").to_owned();
    c.wait_state(&id, "running");
    let answer = patch(&acme_new, &me, &json!({ "disabled": true }));
    assert_error(&answer, 403, Some("forbidden"), "an account disables itself");
    let answer = patch(&c.api, &me, &json!({ "disabled": true, "colour": "red" }));
    assert_error(&answer, 400, None, "an unknown field");

    let (status, disabled) = patch(&c.api, &me, &json!({ "disabled": true }));
    assert_eq!((status, disabled["disabled"].as_bool()), (200, Some(true)), "{disabled}");
    assert_error(&acme_new.get(&me), 401, Some("unauthorized"), "a disabled account's token");
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    let for_acme = json!({ "account_id": acme.id, "name": "x", "gpu": { "models": ["RTX 5090"] },
        "billing": { "mode": "regular" }, "command": ["true"] });
    assert_error(&c.api.post("/v1/instances", &for_acme), 403, None, "work for a disabled account");

    assert_eq!(patch(&c.api, &me, &json!({ "disabled": false })).0, 200);
    assert_eq!(acme_new.get(&me).0, 200, "enabled again, the current token works");
}

/// Opens `GET /v1/events` from now, asking the server to close the connection when the
/// stream ends.
fn reading_stream(c: &Cluster, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(c.coordinator.http).expect("connect");
    let head = format!(
        "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send");
    let mut first = [0u8; 1];
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // The headers come at once: after them the stream is open and counted.
    std::io::Read::read_exact(&mut stream, &mut first).expect("the answer starts");
    stream
}

/// Everything `stream` sends until the server closes it; panics when it is still open
/// after `within`.
fn read_to_end(mut stream: TcpStream, within: Duration) -> String {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(Instant::now() < deadline, "the stream is still open: {text}");
    }
}

/// Opens `GET /v1/events` resuming from the start and never reads a byte of the answer.
fn silent_stream(c: &Cluster, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(c.coordinator.http).expect("connect");
    let head = format!(
        "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
}

/// The slowest of `GET /v1/pools`, timed a few times.
fn slowest_pools(api: &Api) -> Duration {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(api.get("/v1/pools").0, 200);
            started.elapsed()
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn event_streams_that_are_not_read_cost_a_bounded_amount() {
    // The 25 tenants here all connect from 127.0.0.1 (real ones come from addresses of
    // their own), so that one address may hold their 200 streams.
    let c = cluster!(&format!("{TEST_CONFIG}\n[api]\nmax_connections_per_client = 512\n"));
    let pid = c.coordinator.pid().expect("coordinator pid");
    let accounts: Vec<Account> =
        (0..25).map(|n| create_account(&c.api, &format!("tenant-{n}"))).collect();
    // A history to replay: 40 payments per account (1,000 events).
    std::thread::scope(|scope| {
        for account in &accounts {
            let admin = &c.api;
            scope.spawn(move || (0..40).for_each(|_| drop(account.pay(admin, "1.00"))));
        }
    });
    let before = rss_kib(pid);

    let tokens: Vec<String> = accounts.iter().map(|a| a.api.token.clone().unwrap()).collect();
    let streams: Vec<TcpStream> =
        tokens.iter().flat_map(|t| (0..8).map(|_| silent_stream(&c, t))).collect();
    assert_eq!(streams.len(), 200);
    wait_until(SOON, "a ninth stream of one token to be refused", || {
        let ninth = accounts[0].api.get("/v1/events");
        holds(ninth.0 == 429 && ninth.1["error"]["code"] == "too_many_streams", || {
            format!("{ninth:?}")
        })
    });
    assert!(status_line(silent_stream(&c, &c.api.token.clone().unwrap())).contains(" 200 "));
    // Live events while nobody reads: another 2,500 payments.
    std::thread::scope(|scope| {
        for account in &accounts {
            let admin = &c.api;
            scope.spawn(move || (0..100).for_each(|_| drop(account.pay(admin, "1.00"))));
        }
    });
    let slowest = slowest_pools(&c.api);
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!(
        "200 silent event streams: coordinator RSS +{grown} KiB, /v1/pools slowest {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "/v1/pools took {slowest:?}");
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB with 200 silent streams");

    drop(streams);
    wait_until(SOON, "closed streams to give their slots back", || {
        let status = status_line(silent_stream(&c, &tokens[0]));
        holds(status.contains(" 200 "), || status.clone())
    });
}

/// The status line of the answer on `stream` (the server sends its headers at once).
fn status_line(stream: TcpStream) -> String {
    use std::io::BufRead;
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stream).read_line(&mut line);
    line
}
