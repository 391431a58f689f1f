//! An incremental parser for server-sent events (`text/event-stream`).
//!
//! Bytes are fed as they arrive, in any chunking; complete events come out. Lines are `field:
//! value` (`id`, `event`, `data`; `retry` and unknown fields are ignored), lines starting with
//! `:` are comments, and a blank line ends an event. Line ends may be `\n`, `\r\n` or `\r`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` of this event, or the last one seen before it.
    pub id: Option<String>,
    /// The `event:` type; `message` when none was given.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Parser state kept between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    last_id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    /// A `\r` ended the previous chunk; a `\n` starting the next one belongs to it.
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The id to send as `Last-Event-ID` when reconnecting.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Forgets a half-received event (kept: the last id), before reading a new connection.
    pub fn restart(&mut self) {
        let last_id = self.last_id.take();
        *self = SseParser { last_id, ..SseParser::default() };
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.pending);
                    if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.pending.push(byte),
            }
        }
        events
    }

    /// Handles one complete line; a blank line may dispatch an event.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if self.data.is_empty() && event.is_none() {
            return None;
        }
        Some(SseEvent {
            id: self.last_id.clone(),
            event: event.unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": keep-alive\n\n\
id: 41\nevent: instance.running\ndata: {\"instance_id\":\"i-1\"}\n\n\
id: 42\r\nevent: instance.terminated\r\ndata: {\"a\":1,\r\ndata: \"b\":2}\r\n\r\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                id: Some("41".into()),
                event: "instance.running".into(),
                data: r#"{"instance_id":"i-1"}"#.into(),
            },
            SseEvent {
                id: Some("42".into()),
                event: "instance.terminated".into(),
                data: "{\"a\":1,\n\"b\":2}".into(),
            },
        ]
    }

    #[test]
    fn two_events_and_a_comment() {
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(STREAM), expected());
        assert_eq!(parser.last_id(), Some("42"));
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        for size in [1, 2, 3, 7, 16] {
            let mut parser = SseParser::new();
            let events: Vec<SseEvent> = STREAM.chunks(size).flat_map(|c| parser.feed(c)).collect();
            assert_eq!(events, expected(), "chunk size {size}");
        }
    }

    #[test]
    fn incomplete_event_waits_for_its_blank_line() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"id: 7\ndata: x\n").is_empty());
        assert_eq!(parser.last_id(), Some("7"));
        let events = parser.feed(b"\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].data, "x");
    }

    #[test]
    fn restart_keeps_only_the_last_id() {
        let mut parser = SseParser::new();
        parser.feed(b"id: 9\n\ndata: half");
        parser.restart();
        assert_eq!(parser.last_id(), Some("9"));
        assert!(parser.feed(b"\n\n").is_empty());
    }
}
