//! The interactive form of `/v1/instances/{id}/exec` (docs/contracts.md#guests): `GET` with
//! `Upgrade: websocket`. Query: `command` (repeatable; default `/bin/sh`), `tty=true|false`
//! (default false), `cols`/`rows` (the terminal's first size), `timeout_seconds` (default and
//! most: 24 h). Binary frames carry stdin (client → server) and output (server → client);
//! text frames are JSON control: the client sends `{"resize":{"cols":C,"rows":R}}` or
//! `{"eof":true}`, the server ends with `{"exit_code":N,"timed_out":B}` (or `{"error":"…"}`)
//! and closes. The client closing the socket ends the command.
//!
//! Every check (token, instance, state, host) happens before the upgrade, so a refusal is an
//! ordinary JSON error answer.

use super::AppState;
use super::auth::Caller;
use super::error::{ExecError, HttpError, QueryError};
use super::exec::{ExecStart, Gateway, check_command};
use crate::quic::exec::ExecChannel;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use gpuspot_api::{ErrorBody, SessionEnd};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{ExecInput, ExecOutput};
use serde::Deserialize;
use std::time::Duration;

/// The longest an interactive session may last (also the SSH door's).
pub const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Largest WebSocket message accepted (stdin or control).
const MAX_MESSAGE: usize = 256 * 1024;

/// The parsed query of an interactive exec.
#[derive(Debug, PartialEq)]
struct Query {
    command: Vec<String>,
    tty: bool,
    size: Option<(u16, u16)>,
    timeout: Duration,
}

fn bad(message: impl Into<String>) -> HttpError {
    QueryError::Invalid(message.into()).into()
}

/// `value` as a number in `1..=most`, or a message naming `key`.
fn number(key: &str, value: &str, most: u64) -> Result<u64, HttpError> {
    match value.parse::<u64>() {
        Ok(n @ 1..) if n <= most => Ok(n),
        _ => Err(bad(format!("{key} must be a number from 1 to {most}, not {value:?}"))),
    }
}

fn parse_query(query: &str) -> Result<Query, HttpError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| bad(format!("query string: {e}")))?
        .into_inner();
    let mut parsed =
        Query { command: Vec::new(), tty: false, size: None, timeout: INTERACTIVE_TIMEOUT };
    let (mut cols, mut rows) = (None, None);
    let side = |key: &str, value: &str| number(key, value, u16::MAX.into()).map(|n| n as u16);
    for (key, value) in pairs {
        match key.as_str() {
            "command" => parsed.command.push(value),
            "tty" => {
                parsed.tty = value
                    .parse()
                    .map_err(|_| bad(format!("tty must be true or false, not {value:?}")))?
            }
            "cols" => cols = Some(side("cols", &value)?),
            "rows" => rows = Some(side("rows", &value)?),
            "timeout_seconds" => {
                let most = INTERACTIVE_TIMEOUT.as_secs();
                parsed.timeout = Duration::from_secs(number("timeout_seconds", &value, most)?);
            }
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    parsed.size = match (cols, rows) {
        (Some(cols), Some(rows)) => Some((cols, rows)),
        (None, None) => None,
        _ => return Err(bad("cols and rows go together")),
    };
    if parsed.command.is_empty() {
        parsed.command.push("/bin/sh".into());
    }
    check_command(&parsed.command)?;
    Ok(parsed)
}

/// An interactive session over a WebSocket: binary frames carry stdin and output, text
/// frames JSON control (see this module's documentation). Every refusal comes before the
/// upgrade, as an ordinary JSON error.
#[utoipa::path(
    tag = "exec", operation_id = "exec_instance_interactive",
    params(
        ("id" = String, Path, description = "Instance id"),
        ("command" = Option<Vec<String>>, Query, explode = true, description = "Program and arguments, repeated (default `/bin/sh`)"),
        ("tty" = Option<bool>, Query, description = "A terminal (default false)"),
        ("cols" = Option<u16>, Query, minimum = 1, description = "Terminal columns (with rows)"),
        ("rows" = Option<u16>, Query, minimum = 1, description = "Terminal rows (with cols)"),
        ("timeout_seconds" = Option<u64>, Query, minimum = 1, maximum = 86400, description = "Default and most: 86400"),
        ("Upgrade" = String, Header, description = "`websocket`"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "No `Upgrade: websocket`, or an invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not running", body = ErrorBody),
        (status = 503, description = "The instance's host is not connected", body = ErrorBody),
    )
)]
#[get("/instances/{id}/exec")]
pub async fn interactive(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let upgrade = request.headers().get(actix_web::http::header::UPGRADE);
    if !upgrade.and_then(|u| u.to_str().ok()).is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(ExecError::WebsocketRequired.into());
    }
    let id = InstanceId(id.into_inner());
    let query = parse_query(request.query_string())?;
    let start = ExecStart {
        command: query.command,
        tty: query.tty,
        size: query.size,
        stdin: true,
        timeout: query.timeout,
    };
    let channel = Gateway::of(&state).open(caller.scope, &id, start).await?;
    let (response, session, stream) =
        actix_ws::handle(&request, body).map_err(|e| ExecError::Handshake(e.to_string()))?;
    let stream = stream
        .max_frame_size(MAX_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE);
    actix_rt::spawn(bridge(session, stream, channel, id));
    Ok(response)
}

/// What the client asked for in a text frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    resize: Option<Resize>,
    eof: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    cols: u16,
    rows: u16,
}

fn control(text: &str) -> Result<Option<ExecInput>, String> {
    let control: Control =
        serde_json::from_str(text).map_err(|e| format!("bad control message {text:.100?}: {e}"))?;
    Ok(match control {
        Control { resize: Some(Resize { cols, rows }), eof: None } => {
            Some(ExecInput::Resize { cols, rows })
        }
        Control { resize: None, eof: Some(true) } => Some(ExecInput::Eof),
        Control { resize: None, eof: Some(false) } => None,
        _ => return Err(format!("a control message holds one of resize or eof: {text:.100?}")),
    })
}

/// Relays between the socket and the exec stream until the command ends or the client
/// leaves (dropping the channel then ends the command).
async fn bridge(
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    mut channel: ExecChannel,
    id: InstanceId,
) {
    let last = loop {
        let step = tokio::select! {
            message = stream.recv() => from_client(message, &mut session, &channel).await,
            frame = channel.output.recv() => to_client(frame, &mut session).await,
        };
        match step {
            Step::Go => {}
            Step::Gone => {
                tracing::debug!(%id, "exec client left; ending its command");
                return;
            }
            Step::End(last) => break last,
        }
    };
    let code = match last {
        SessionEnd::Error { .. } => CloseCode::Error,
        SessionEnd::Exit { .. } => CloseCode::Normal,
    };
    let text = serde_json::to_string(&last).unwrap_or_default();
    let _ = session.text(text).await;
    let _ = session.close(Some(CloseReason { code, description: None })).await;
}

/// What the bridge does after one message.
enum Step {
    Go,
    /// The client left or cannot be written to.
    Gone,
    /// Send this last text frame and close.
    End(SessionEnd),
}

async fn from_client(
    message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    session: &mut Session,
    channel: &ExecChannel,
) -> Step {
    match message {
        // A stream that broke reports it on the output side.
        Some(Ok(AggregatedMessage::Binary(bytes))) => drop(channel.stdin(&bytes).await),
        Some(Ok(AggregatedMessage::Text(text))) => match control(&text) {
            Ok(Some(input)) => drop(channel.input.send(input).await),
            Ok(None) => {}
            Err(reason) => return Step::End(SessionEnd::Error { error: reason }),
        },
        Some(Ok(AggregatedMessage::Ping(ping))) => drop(session.pong(&ping).await),
        Some(Ok(AggregatedMessage::Pong(_))) => {}
        Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => return Step::Gone,
    }
    Step::Go
}

async fn to_client(frame: Option<ExecOutput>, session: &mut Session) -> Step {
    let last = match frame {
        Some(ExecOutput::Data(data)) => {
            return if session.binary(data).await.is_ok() { Step::Go } else { Step::Gone };
        }
        Some(ExecOutput::Exit { code, timed_out }) => {
            SessionEnd::Exit { exit_code: code, timed_out }
        }
        Some(ExecOutput::Error { reason }) => SessionEnd::Error { error: reason },
        None => SessionEnd::Error { error: "the exec stream ended".to_owned() },
    };
    Step::End(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_command_tty_and_size() {
        let q = parse_query("command=sh&command=-c&command=echo%20hi&tty=true&cols=80&rows=24")
            .unwrap();
        assert_eq!(q.command, ["sh", "-c", "echo hi"]);
        assert!(q.tty);
        assert_eq!(q.size, Some((80, 24)));
        assert_eq!(q.timeout, INTERACTIVE_TIMEOUT);
        let shell = parse_query("").unwrap();
        assert_eq!((shell.command, shell.tty), (vec!["/bin/sh".to_owned()], false));
        let refused =
            ["tty=yes", "cols=0&rows=3", "cols=80", "timeout_seconds=0", "user=root", "command="];
        for bad in refused {
            let err = parse_query(bad).unwrap_err();
            assert_eq!(err.status, actix_web::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn control_messages_are_resize_or_eof() {
        assert_eq!(
            control(r#"{"resize":{"cols":100,"rows":30}}"#).unwrap(),
            Some(ExecInput::Resize { cols: 100, rows: 30 })
        );
        assert_eq!(control(r#"{"eof":true}"#).unwrap(), Some(ExecInput::Eof));
        assert!(control(r#"{"resize":{"cols":1,"rows":1},"eof":true}"#).is_err());
        assert!(control("hello").is_err());
    }
}
