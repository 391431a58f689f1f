//! Runs the built `gpuspot` binary against a tiny hand-written HTTP server on loopback:
//! tables from list answers, API error bodies, an unreachable coordinator, usage errors and
//! the event stream.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A canned answer: status line, content type, body.
type Answer = (&'static str, &'static str, String);

/// Serves `route(method_and_path)` to every connection; returns the base URL and the request
/// heads received so far.
fn serve(route: fn(&str) -> Answer) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // Logged before the answer goes out: the CLI may exit (and the test read the
            // log) as soon as it has its answer.
            answer(stream, route, |head| log.lock().expect("request log").push(head.to_owned()));
        }
    });
    (base, seen)
}

fn answer(stream: TcpStream, route: fn(&str) -> Answer, log: impl FnOnce(&str)) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    log(&head);
    let request_line = head.lines().next().unwrap_or("").to_owned();
    let (status, content_type, body) = route(&request_line);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

fn routes(request_line: &str) -> Answer {
    let json = "application/json";
    match request_line {
        l if l.starts_with("GET /v1/instances ") || l.starts_with("GET /v1/instances?") => {
            ("200 OK", json, instances_in(l))
        }
        l if l.starts_with("GET /v1/instances/i-abc ") => {
            ("200 OK", json, instances()[0].to_string())
        }
        l if l.starts_with("GET /v1/instances/i-missing ") => (
            "404 Not Found",
            json,
            r#"{"error":{"code":"not_found","message":"no instance i-missing"}}"#.to_owned(),
        ),
        l if l.starts_with("GET /v1/instances/i-hidden ") => (
            "403 Forbidden",
            json,
            r#"{"error":{"code":"forbidden","message":"not yours"}}"#.to_owned(),
        ),
        l if l.starts_with("GET /v1/events ") => ("200 OK", "text/event-stream", EVENTS.into()),
        _ => ("500 Internal Server Error", "text/plain", "unexpected".into()),
    }
}

/// The list answer for a request line, filtered by its `state=` as the coordinator does.
fn instances_in(request_line: &str) -> String {
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, query)| query);
    let states: Option<Vec<&str>> = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .map(|states| states.split("%2C").flat_map(|s| s.split(',')).collect());
    let shown: Vec<_> = instances()
        .into_iter()
        .filter(|i| states.as_ref().is_none_or(|s| s.contains(&i["state"].as_str().unwrap_or(""))))
        .collect();
    serde_json::to_string(&shown).expect("json")
}

/// [`INSTANCES`] as the coordinator writes them: each with every field of an instance
/// (`UNSET` fills what the entry leaves out).
fn instances() -> Vec<serde_json::Value> {
    let list: Vec<serde_json::Value> = serde_json::from_str(INSTANCES).expect("json");
    let unset: serde_json::Value = serde_json::from_str(UNSET).expect("json");
    list.into_iter()
        .map(|entry| {
            let mut full = unset.clone();
            let fields = entry.as_object().cloned().unwrap_or_default();
            full.as_object_mut().expect("object").extend(fields);
            full
        })
        .collect()
}

const UNSET: &str = r#"{"account_id":"a-op","gpu":{"models":["H100"],"count":2},
 "cpu_cores":null,"memory_gib":null,"hold_until":null,"termination_time":null,
 "termination_reason":null,"exit_code":null,"deployment_id":null,"spec_index":null,
 "command":["true"],"env":{},"snapshot":{"enabled":false},"image":null,"data_disk_gib":10,
 "on_unavailable":"queue","ports":[],"host_ports":[],"readiness":null,
 "created_at":"2026-04-08T05:00:00Z","started_at":null,"ended_at":null,"ssh":null}"#;

const INSTANCES: &str = r#"[
 {"id":"i-abc","name":"train-1","state":"running","reason":null,"host_id":"h-1",
  "gpu_uuids":["GPU-1","GPU-2"],"gpu_model":"NVIDIA H100","price":"0.52",
  "billing":{"mode":"spot","max_price":"1.20"}},
 {"id":"i-def","name":"eval","state":"queued","reason":"no host has 8 free H100 units",
  "host_id":null,"gpu_uuids":[],"gpu_model":null,"gpu":{"models":["H100"],"count":8},
  "price":null,"billing":{"mode":"regular"}},
 {"id":"i-old","name":"train-1","state":"terminated","reason":"user","host_id":"h-1",
  "gpu_uuids":[],"gpu_model":null,"price":null,"billing":{"mode":"regular"}}
]"#;

const EVENTS: &str = ": hello\n\n\
id: 1\nevent: instance.running\ndata: {\"at\":\"2026-04-08T05:00:00Z\",\"instance_id\":\"i-abc\"}\n\n\
id: 2\nevent: instance.terminated\ndata: {\"at\":\"2026-04-08T06:00:00Z\",\"instance_id\":\"i-abc\",\"reason\":\"user\"}\n\n";

fn gpuspot(api: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpuspot"))
        .env_remove("GPUSPOT_API")
        .env_remove("GPUSPOT_TOKEN")
        .env_remove("GPUSPOT_ADMIN_TOKEN")
        .args(["--api", api, "--token", "t0k"])
        .args(args)
        .output()
        .expect("run gpuspot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ended_instances_show_with_all_or_their_state_and_names_resolve_to_the_live_one() {
    let (base, seen) = serve(routes);
    let all = text(&gpuspot(&base, &["instances", "list", "--all"]).stdout);
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("i-old") && all.contains("AGE"), "{all}");
    let ended = text(&gpuspot(&base, &["instances", "list", "--state", "terminated"]).stdout);
    assert_eq!(ended.lines().count(), 2, "{ended}");
    let out = gpuspot(&base, &["instances", "show", "train-1"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let heads = seen.lock().expect("request log").join("\n");
    assert!(heads.contains("GET /v1/instances/i-abc "), "the live train-1 is shown: {heads}");
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let bash = gpuspot("http://127.0.0.1:9", &["completion", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    assert!(script.contains("_gpuspot()") && script.contains("deployments"), "{script}");
    let man = gpuspot("http://127.0.0.1:9", &["man"]);
    let page = text(&man.stdout);
    assert!(man.status.success() && page.contains(".TH gpuspot"), "{page}");
    assert!(page.contains("instances"), "{page}");
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let (base, _) = serve(routes);
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_gpuspot"))
        .args(["--api", &base, "--token", "t0k", "instances", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run gpuspot");
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && out.status.code() != Some(101),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn instances_list_prints_a_table() {
    let (base, seen) = serve(routes);
    let out = gpuspot(&base, &["instances", "list"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("ID     NAME     STATE"), "{stdout}");
    for cell in ["i-abc", "running", "h-1", "2 x NVIDIA H100", "spot ≤1.20", "0.52"] {
        assert!(lines[1].contains(cell), "{cell} missing in {stdout}");
    }
    for cell in ["i-def", "queued", "8 x H100", "regular", "no host has 8 free H100 units"] {
        assert!(lines[2].contains(cell), "{cell} missing in {stdout}");
    }
    let heads = seen.lock().expect("request log").join("\n").to_ascii_lowercase();
    assert!(heads.contains("authorization: bearer t0k"), "{heads}");
}

#[test]
fn api_errors_print_the_message_and_exit_1() {
    let (base, _seen) = serve(routes);
    let out = gpuspot(&base, &["instances", "show", "i-hidden"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: not yours (forbidden, HTTP 403)\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn neither_a_name_nor_an_id_says_how_to_list() {
    let (base, _seen) = serve(routes);
    let out = gpuspot(&base, &["instances", "show", "i-missing"]);
    assert_eq!(out.status.code(), Some(1));
    let listing = "`gpuspot instances list --all` lists them";
    let expected =
        format!("error: no instance is named \"i-missing\" or has that id ({listing})\n");
    assert_eq!(text(&out.stderr), expected);
    assert!(out.stdout.is_empty());
}

#[test]
fn unreachable_api_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    drop(listener);
    let out = gpuspot(&base, &["instances", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach the gpuspot coordinator"), "{stderr}");
    assert!(stderr.contains(&base), "{stderr}");
    assert!(stderr.contains("gpuspot dev") && stderr.contains("GPUSPOT_API"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_without_a_request() {
    let out = gpuspot("http://127.0.0.1:9", &["instances", "create", "--gpu", "H100"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no command"));
    let out = gpuspot("http://127.0.0.1:9", &["accounts", "pay", "a-1", "ten"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn events_print_one_line_each() {
    let (base, _seen) = serve(routes);
    let out = gpuspot(&base, &["events"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("2026-04-08T05:00:00.000Z  instance.running"), "{stdout}");
    assert!(lines[1].contains("instance.terminated") && lines[1].ends_with("reason=user"));
}
