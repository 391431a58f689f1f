//! The metadata socket as a guest sees it: raw HTTP/1.1 over a real unix socket, and seed
//! 003's own curl command line and watcher script.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use gpuspot_common::{BillingMode, EndReason, Money};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const DEADLINE: Duration = Duration::from_secs(10);

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

async fn get(socket: &Path, target: &str) -> Response {
    request(socket, "GET", target).await
}

async fn request(socket: &Path, method: &str, target: &str) -> Response {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.expect("connect");
        let head =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .expect("no response before the deadline");
    parse(&raw)
}

fn parse(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status_line = lines.next().expect("status line");
    let status = status_line.split(' ').nth(1).expect("status").parse().expect("code");
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Response { status, headers, body: body.to_owned() }
}

fn termination() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 8, 5, 0, 0).single().expect("time")
}

fn metadata() -> GuestMetadata {
    GuestMetadata {
        instance_id: "i-0123".into(),
        host_id: "h-42".into(),
        gpu_uuids: vec!["GPU-a".into(), "GPU-b".into()],
        billing_mode: Some(BillingMode::Spot),
        bid: Some(Money::from_micros(2_500_000)),
        price: Some(Money::from_micros(1_200_000)),
        ..GuestMetadata::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    sender: watch::Sender<GuestMetadata>,
    server: MetadataServer,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run").join("i-0123.sock");
    let (sender, receiver) = watch::channel(metadata());
    let server = MetadataServer::start(socket.clone(), receiver).expect("start");
    Fixture { _dir: dir, socket, sender, server }
}

fn schedule_termination(sender: &watch::Sender<GuestMetadata>) {
    sender.send_modify(|m| {
        m.spot_termination_time = Some(termination());
        m.termination_reason = Some(EndReason::ReclaimedPrice);
    });
}

#[tokio::test]
async fn termination_time_is_404_until_scheduled_then_the_quoted_time() {
    let f = fixture();
    let before = get(&f.socket, "/vm/metadata?key=spot_termination_time").await;
    assert_eq!((before.status, before.body.as_str()), (404, "404 page not found"));
    assert_eq!(before.headers.get("content-length").map(String::as_str), Some("18"));

    schedule_termination(&f.sender);
    let after = get(&f.socket, "/vm/metadata?key=spot_termination_time").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, "\"2026-04-08T05:00:00+00:00\"");
    assert_eq!(after.headers.get("content-type").map(String::as_str), Some("application/json"));
    assert_eq!(after.headers.get("content-length").map(String::as_str), Some("27"));
    let reason = get(&f.socket, "/vm/metadata?key=termination_reason").await;
    assert_eq!(reason.body, "\"reclaimed_price\"");
}

#[tokio::test]
async fn each_key_is_a_json_value_and_absent_or_unknown_keys_are_404() {
    let f = fixture();
    let cases = [
        ("instance_id", "\"i-0123\""),
        ("host_id", "\"h-42\""),
        ("gpu_uuids", "[\"GPU-a\",\"GPU-b\"]"),
        ("billing_mode", "\"spot\""),
        ("bid", "\"2.50\""),
        ("price", "\"1.20\""),
    ];
    for (key, body) in cases {
        let reply = get(&f.socket, &format!("/vm/metadata?key={key}")).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, body), "{key}");
    }
    for key in ["deployment_id", "hold_until", "no_such_key", ""] {
        let reply = get(&f.socket, &format!("/vm/metadata?key={key}")).await;
        assert_eq!((reply.status, reply.body.as_str()), (404, "404 page not found"), "{key}");
    }
}

#[tokio::test]
async fn whole_metadata_has_every_key_with_null_when_absent() {
    let f = fixture();
    let reply = get(&f.socket, "/vm/metadata").await;
    assert_eq!(reply.status, 200);
    let object: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
    let object = object.as_object().expect("object");
    for key in render::KEYS {
        assert!(object.contains_key(key), "missing {key}");
    }
    assert_eq!(object.len(), render::KEYS.len());
    assert_eq!(object["price"], "1.20");
    assert!(object["spot_termination_time"].is_null());
}

#[tokio::test]
async fn long_poll_wakes_on_a_change_made_while_it_waits() {
    let f = fixture();
    let socket = f.socket.clone();
    let poll = tokio::spawn(async move { get(&socket, "/vm/events?wait=30").await });
    // Keep changing the price until the poll answers: whichever change lands after the
    // request arrived must wake it, long before its 30 s are up.
    let began = Instant::now();
    let mut micros = 1_300_000;
    while !poll.is_finished() && began.elapsed() < DEADLINE {
        f.sender.send_modify(|m| m.price = Some(Money::from_micros(micros)));
        micros += 100_000;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = poll.await.expect("poll task");
    assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("x-gpuspot-changed").map(String::as_str), Some("true"));
    let object: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
    assert_ne!(object["price"], "1.20");
}

#[tokio::test]
async fn long_poll_times_out_unchanged_and_rejects_a_bad_wait() {
    let f = fixture();
    // Re-sending an identical value is not a change.
    f.sender.send_replace(metadata());
    let began = Instant::now();
    let reply = get(&f.socket, "/vm/events?wait=1").await;
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("x-gpuspot-changed").map(String::as_str), Some("false"));
    assert!(reply.body.contains("\"instance_id\":\"i-0123\""));

    let bad = get(&f.socket, "/vm/events?wait=soon").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn aws_instance_action_both_ways() {
    let f = fixture();
    let path = "/latest/meta-data/spot/instance-action";
    let before = get(&f.socket, path).await;
    assert_eq!((before.status, before.body.as_str()), (404, "404 page not found"));
    schedule_termination(&f.sender);
    let after = get(&f.socket, path).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, r#"{"action":"terminate","time":"2026-04-08T05:00:00Z"}"#);
}

#[tokio::test]
async fn other_methods_and_paths_are_refused() {
    let f = fixture();
    let post = request(&f.socket, "POST", "/vm/metadata").await;
    assert_eq!(post.status, 405);
    let unknown = get(&f.socket, "/computeMetadata/v1/").await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, "404 page not found"));
}

#[tokio::test]
async fn socket_is_private_replaces_a_stale_one_and_goes_away_on_drop() {
    let f = fixture();
    let mode = std::fs::metadata(&f.socket).expect("socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // An agent restart finds its old socket file and takes its place.
    let (_sender, receiver) = watch::channel(metadata());
    drop(f.server);
    let stale = std::os::unix::net::UnixListener::bind(&f.socket).expect("stale socket");
    drop(stale);
    let server = MetadataServer::start(f.socket.clone(), receiver).expect("restart");
    assert_eq!(get(&f.socket, "/vm/metadata?key=host_id").await.body, "\"h-42\"");

    server.shutdown();
    assert!(!f.socket.exists());
    assert!(UnixStream::connect(&f.socket).await.is_err());
}

/// Root only (chown): a process guest's socket dir (root's, 0710, the guest's group) makes
/// the socket the guest's, also when it is re-created after an agent restart.
#[tokio::test]
async fn a_socket_in_a_guest_socket_dir_belongs_to_that_guest() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("i-1");
    std::fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::lchown(&dir, Some(0), Some(3_999_300_001)).expect("chown");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710)).expect("chmod");
    let socket = dir.join("metadata.sock");
    let (_sender, receiver) = watch::channel(metadata());
    let _server = MetadataServer::start(socket.clone(), receiver).expect("start");
    let meta = std::fs::metadata(&socket).expect("socket");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (3_999_300_001, 3_999_300_001, 0o600)
    );
    // Anywhere else the socket stays the agent's.
    let (_sender, receiver) = watch::channel(metadata());
    let plain = tmp.path().join("plain.sock");
    let _other = MetadataServer::start(plain.clone(), receiver).expect("start");
    assert_eq!(std::fs::metadata(&plain).expect("socket").uid(), 0);
}

#[tokio::test]
async fn refuses_to_replace_a_regular_file_or_bind_an_overlong_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("precious.txt");
    std::fs::write(&file, "keep me").expect("write");
    let (_sender, receiver) = watch::channel(metadata());
    let error = MetadataServer::start(file.clone(), receiver.clone()).err();
    assert!(matches!(error, Some(MetadataError::NotASocket(_))), "{error:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me");

    let long = dir.path().join("x".repeat(MAX_SOCKET_PATH));
    let error = MetadataServer::start(long, receiver).err();
    assert!(matches!(error, Some(MetadataError::PathTooLong { .. })), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_watcher_works_with_only_the_socket_path_changed() {
    let has = |tool: &str| {
        std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
    };
    if !has("curl") || !has("bash") {
        println!("skipped: curl or bash is not installed on this machine");
        return;
    }
    let f = fixture();
    let dir = f.socket.parent().expect("parent").to_owned();
    let curl = format!(
        "curl -s -o {out} -w \"%{{http_code}}\" --unix-socket {sock} \
         http://localhost/vm/metadata?key=spot_termination_time",
        out = dir.join("spot_response").display(),
        sock = f.socket.display()
    );
    let run = |script: String| tokio::process::Command::new("bash").arg("-c").arg(script).output();
    let code = run(curl.clone()).await.expect("curl");
    assert_eq!(String::from_utf8_lossy(&code.stdout), "404");
    let body = std::fs::read_to_string(dir.join("spot_response")).expect("response");
    assert_eq!(body, "404 page not found");

    schedule_termination(&f.sender);
    // The seed's loop, with its checkpoint script replaced by an echo.
    let watcher = format!(
        "while true; do HTTP_CODE=$({curl}); if [ \"$HTTP_CODE\" -eq 200 ]; then \
         echo \"Reclamation scheduled: $(cat {out})\"; echo checkpoint-called; break; fi; \
         sleep 5; done",
        out = dir.join("spot_response").display()
    );
    let output = tokio::time::timeout(DEADLINE, run(watcher))
        .await
        .expect("watcher finished")
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Reclamation scheduled: \"2026-04-08T05:00:00+00:00\""), "{stdout}");
    assert!(stdout.contains("checkpoint-called"), "{stdout}");
}
