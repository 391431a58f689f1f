//! `gpuspot events [--follow]`: reads the `GET /v1/events` server-sent event stream and
//! prints one line per event. Without `--follow` it asks for the replay of recent events
//! (`Last-Event-ID: 0`: the server sends at most the 1,000 newest) and stops when the stream
//! has been quiet for about a second; with it, it starts from now, keeps reading and
//! reconnects with `Last-Event-ID` when the connection drops.

use super::Ctx;
use crate::args::EventsArgs;
use crate::errors::Unreachable;
use crate::output::text;
use crate::sse::{SseEvent, SseParser};
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Quiet time after which a one-shot `gpuspot events` stops.
const IDLE: Duration = Duration::from_secs(1);
/// Quiet time after which `--follow` reconnects (a half-open connection cannot hang it).
const FOLLOW_IDLE: Duration = Duration::from_secs(60);
/// Pause before reconnecting after a dropped connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Fields shown in their own columns, left out of the details.
const SHOWN: &[&str] = &["at", "time", "type", "kind", "instance_id", "id"];

/// Why reading a stream stopped.
enum End {
    Closed,
    Idle,
    Broken(std::io::Error),
}

pub fn run(ctx: &Ctx, args: &EventsArgs) -> anyhow::Result<()> {
    let mut parser = SseParser::new();
    let idle = if args.follow { FOLLOW_IDLE } else { IDLE };
    let mut connected_once = false;
    loop {
        parser.restart();
        let resume = parser.last_id().or((!args.follow).then_some("0"));
        let opened = ctx.client.open_stream("/v1/events", resume, idle);
        let mut response = match opened {
            Ok(response) => response,
            Err(e) if args.follow && connected_once && e.is::<Unreachable>() => {
                std::thread::sleep(RECONNECT_DELAY);
                continue;
            }
            Err(e) => return Err(e),
        };
        connected_once = true;
        let end = pump(&mut response, &mut parser, ctx.json)?;
        match (args.follow, end) {
            (false, End::Broken(e)) => {
                eprintln!("note: the event stream broke off: {e}");
                return Ok(());
            }
            (false, _) => return Ok(()),
            (true, End::Idle) => {}
            (true, End::Closed | End::Broken(_)) => std::thread::sleep(RECONNECT_DELAY),
        }
    }
}

/// Reads the stream, printing events as they complete, until it ends, idles or breaks.
fn pump(stream: &mut impl Read, parser: &mut SseParser, json: bool) -> anyhow::Result<End> {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(End::Closed),
            Ok(n) => {
                for event in parser.feed(&buf[..n]) {
                    println!("{}", render(&event, json)?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Ok(End::Idle),
            Err(e) => return Ok(End::Broken(e)),
        }
    }
}

fn is_timeout(err: &std::io::Error) -> bool {
    if matches!(err.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        return true;
    }
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout)
}

/// One line: `TIME  TYPE  INSTANCE  key=value …`, or a JSON object with `--json`.
pub fn render(event: &SseEvent, json: bool) -> anyhow::Result<String> {
    let data: Value =
        serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
    if json {
        let line = serde_json::json!({ "id": event.id, "event": event.event, "data": data });
        return Ok(serde_json::to_string(&line)?);
    }
    let pick = |keys: &[&str]| keys.iter().find_map(|k| data.get(*k).filter(|v| !v.is_null()));
    let time = text(pick(&["at", "time"]));
    let kind = match event.event.as_str() {
        "message" => text(pick(&["type", "kind"])),
        other => other.to_owned(),
    };
    let instance = text(pick(&["instance_id"]));
    let details = match &data {
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| !SHOWN.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| format!("{k}={}", text(Some(v))))
            .collect::<Vec<_>>()
            .join(" "),
        other => text(Some(other)),
    };
    Ok(format!("{time}  {kind:<24}  {instance:<12}  {details}").trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> SseEvent {
        SseEvent { id: Some("7".into()), event: kind.into(), data: data.into() }
    }

    #[test]
    fn one_line_per_event() {
        let data = r#"{"at":"2026-04-08T05:00:00Z","instance_id":"i-1","reason":"reclaimed_price","price":null}"#;
        let line = render(&event("instance.termination_scheduled", data), false).expect("renders");
        assert_eq!(
            line,
            "2026-04-08T05:00:00Z  instance.termination_scheduled  i-1           reason=reclaimed_price"
        );
        let line = render(&event("message", r#"{"type":"host.lost","host_id":"h-1"}"#), false);
        assert_eq!(
            line.expect("renders"),
            "-  host.lost                 -             host_id=h-1"
        );
    }

    #[test]
    fn json_lines_keep_id_and_type() {
        let line = render(&event("x", "not json"), true).expect("renders");
        assert_eq!(line, r#"{"data":"not json","event":"x","id":"7"}"#);
    }

    #[test]
    fn pump_stops_at_end_of_stream() {
        let mut stream: &[u8] = b"id: 1\nevent: a\ndata: {}\n\n: ping\n\nid: 2\ndata: {}\n\n";
        let mut parser = SseParser::new();
        let end = pump(&mut stream, &mut parser, false).expect("reads");
        assert!(matches!(end, End::Closed));
        assert_eq!(parser.last_id(), Some("2"));
    }
}
