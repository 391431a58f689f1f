//! A reader for `GET /v1/events` (server-sent events, docs/contracts.md#http-api). The stream never
//! ends by itself, so a background thread parses it into [`Event`]s and the test reads them from a
//! channel with deadlines. The thread ends when the coordinator goes away.

use crate::api::Api;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// One server-sent event: its `id:`, `event:` and the JSON of its `data:` lines.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: u64,
    pub kind: String,
    /// The whole event object: `{id, at, kind, account_id, instance_id, host_id, data}`.
    pub body: Value,
}

impl Event {
    pub fn instance_id(&self) -> &str {
        self.body["instance_id"].as_str().unwrap_or("")
    }

    pub fn account_id(&self) -> &str {
        self.body["account_id"].as_str().unwrap_or("")
    }

    /// The kind-specific part (`termination_time`, `reason`, `price`, …).
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Whether this is a `kind` event about instance `id`.
    pub fn is(&self, kind: &str, id: &str) -> bool {
        self.kind == kind && self.instance_id() == id
    }
}

/// An open event stream and every event read from it so far.
pub struct EventStream {
    rx: Receiver<Result<Event, String>>,
    /// What the stream delivered, in order.
    pub seen: Vec<Event>,
}

impl EventStream {
    /// Opens `GET /v1/events` as `api`'s caller; with `last_event_id`, sends it as the
    /// `Last-Event-ID` header (resume after that id).
    pub fn open(api: &Api, last_event_id: Option<u64>) -> EventStream {
        let (tx, rx) = channel();
        let url = format!("{}/v1/events", api.base);
        let token = api.token.clone();
        // The request itself runs in the thread: the server may hold back its headers
        // until it has a first event to send.
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(None)
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("HTTP client");
            let mut request = client.get(&url).header("Accept", "text/event-stream");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(id) = last_event_id {
                request = request.header("Last-Event-ID", id.to_string());
            }
            let response = match request.send() {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().unwrap_or_default();
                    let _ = tx.send(Err(format!("GET /v1/events: {status} {body}")));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("GET /v1/events: {e}")));
                    return;
                }
            };
            let mut frame = Frame::default();
            for line in BufReader::new(response).lines() {
                let Ok(line) = line else { break };
                if let Some(event) = frame.feed(&line)
                    && tx.send(event).is_err()
                {
                    break;
                }
            }
            let _ = tx.send(Err("the event stream ended".into()));
        });
        EventStream { rx, seen: Vec::new() }
    }

    /// The next event, if one comes within `timeout`. Panics if the stream failed.
    pub fn next(&mut self, timeout: Duration) -> Option<Event> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(event)) => {
                self.seen.push(event.clone());
                Some(event)
            }
            Ok(Err(e)) => panic!("{e}; events so far: {}", self.summary()),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the event reader stopped"),
        }
    }

    /// Reads events until one satisfies `matches`; that event. Panics after `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(event) if matches(&event) => return event,
                Some(_) => {}
                None => panic!(
                    "timed out after {timeout:?} waiting for the event {what}; got: {}",
                    self.summary()
                ),
            }
        }
    }

    /// `id kind instance` of every event read so far, for messages.
    pub fn summary(&self) -> String {
        let items: Vec<String> =
            self.seen.iter().map(|e| format!("{} {} {}", e.id, e.kind, e.instance_id())).collect();
        format!("[{}]", items.join(", "))
    }
}

/// The lines of one event, up to the blank line that ends it.
#[derive(Default)]
struct Frame {
    id: Option<u64>,
    kind: String,
    data: String,
}

impl Frame {
    fn feed(&mut self, line: &str) -> Option<Result<Event, String>> {
        if line.is_empty() {
            let frame = std::mem::take(self);
            if frame.data.is_empty() && frame.id.is_none() {
                return None;
            }
            let parsed = serde_json::from_str(&frame.data)
                .map_err(|e| format!("event data is not JSON ({e}): {:?}", frame.data));
            return Some(parsed.and_then(|body| match frame.id {
                Some(id) => Ok(Event { id, kind: frame.kind, body }),
                None => Err(format!("event without an id: {body}")),
            }));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = value.trim().parse().ok(),
            "event" => self.kind = value.to_owned(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Frame;

    #[test]
    fn frames_become_events() {
        let mut frame = Frame::default();
        assert!(frame.feed(": keep-alive").is_none());
        assert!(frame.feed("").is_none());
        assert!(frame.feed("id: 7").is_none());
        assert!(frame.feed("event: payment").is_none());
        assert!(frame.feed("data: {\"instance_id\":\"i-1\",\"data\":{\"x\":1}}").is_none());
        let event = frame.feed("").expect("an event").expect("valid");
        assert_eq!((event.id, event.kind.as_str()), (7, "payment"));
        assert_eq!(event.instance_id(), "i-1");
        assert_eq!(event.data()["x"], 1);
    }
}
