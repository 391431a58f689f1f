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
const SHOWN: &[&str] = &["at", "time", "type", "kind", "id"];

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
        let end = pump(&mut response, &mut parser, ctx.json())?;
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

/// One line: `TIME  KIND  SUBJECT  key=value …` in fixed-width columns (the time to the
/// millisecond, the subject an instance, host or deployment id), the event's `data` spread
/// into the details; or a JSON object with `-o json`.
pub fn render(event: &SseEvent, json: bool) -> anyhow::Result<String> {
    let body: Value =
        serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
    if json {
        let line = serde_json::json!({ "id": event.id, "event": event.event, "data": body });
        return Ok(serde_json::to_string(&line)?);
    }
    let data = body.get("data").filter(|d| d.is_object());
    let pick = |keys: &[&str]| {
        let sources = [Some(&body), data];
        keys.iter()
            .find_map(|k| sources.iter().flatten().find_map(|s| s.get(*k).filter(|v| !v.is_null())))
    };
    let time = millis(&text(pick(&["at", "time"])));
    let kind = match event.event.as_str() {
        "message" => text(pick(&["kind", "type"])),
        other => other.to_owned(),
    };
    let subject_key = SUBJECTS.iter().find(|k| pick(&[**k]).is_some()).copied();
    let subject = text(subject_key.and_then(|k| pick(&[k])));
    let details = details(&body, data, subject_key);
    let line = format!("{time:<24}  {kind:<KIND_WIDTH$}  {subject:<18}  {details}");
    Ok(line.trim_end().to_owned())
}

/// What an event is about, in order of preference, for the SUBJECT column.
const SUBJECTS: &[&str] = &["instance_id", "deployment_id", "host_id", "account_id"];

/// Wide enough for every event kind the coordinator sends (`account_overdue_shutdown`).
const KIND_WIDTH: usize = 24;

/// `key=value` for every field not already in a column: the top level's, then `data`'s.
fn details(body: &Value, data: Option<&Value>, subject: Option<&str>) -> String {
    let Value::Object(top) = body else {
        return text(Some(body));
    };
    let skip = |k: &str| SHOWN.contains(&k) || Some(k) == subject || k == "data";
    let nested = data.and_then(Value::as_object).into_iter().flatten();
    top.iter()
        .chain(nested)
        .filter(|(k, v)| !skip(k) && !v.is_null())
        .map(|(k, v)| format!("{k}={}", text(Some(v))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An RFC 3339 time to the millisecond, so every line's time has the same width.
fn millis(time: &str) -> String {
    match time.parse::<chrono::DateTime<chrono::Utc>>() {
        Ok(at) => at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => time.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> SseEvent {
        SseEvent { id: Some("7".into()), event: kind.into(), data: data.into() }
    }

    #[test]
    fn one_line_per_event_in_columns_with_the_data_spread_out() {
        let data = r#"{"id":4,"at":"2026-04-08T05:00:00.123456789Z","kind":"termination_scheduled","account_id":"a-1","instance_id":"i-0123456789abcdef","host_id":null,"data":{"reason":"reclaimed_price","price":null}}"#;
        let line = render(&event("termination_scheduled", data), false).expect("renders");
        assert_eq!(
            line,
            "2026-04-08T05:00:00.123Z  termination_scheduled     i-0123456789abcdef  account_id=a-1 reason=reclaimed_price"
        );
        let data = r#"{"at":"2026-04-08T05:00:01Z","kind":"price_changed","instance_id":null,"data":{"model":"RTX 5090","price":"0.09"}}"#;
        let line = render(&event("price_changed", data), false).expect("renders");
        assert_eq!(
            line,
            "2026-04-08T05:00:01.000Z  price_changed             -                   model=RTX 5090 price=0.09"
        );
        let line = render(&event("message", r#"{"kind":"host_lost","host_id":"h-1"}"#), false);
        assert!(line.expect("renders").contains("host_lost                 h-1"));
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
