//! HTTP/1.1 over the instance's unix socket: the accept loop (within the socket's limits,
//! see [`super::limits`]) and the routes of docs/contracts.md#guest-socket.
//! Answers mimic what guests already script against: seed 003's exact `404 page not found`
//! body, AWS's `spot/instance-action` document.

use super::connection::{Activity, Tracked, admit, http_builder, refuse};
use super::limits::SocketLimits;
use super::render;
use bytes::Bytes;
use gpuspot_common::protocol::GuestMetadata;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

const NOT_FOUND: &str = "404 page not found";
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a socket waits after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const CHANGED: HeaderName = HeaderName::from_static("x-gpuspot-changed");

type Reply = Response<Full<Bytes>>;

/// Serves until the task is aborted; aborting drops every connection with it.
pub(super) async fn serve(
    listener: UnixListener,
    metadata: watch::Receiver<GuestMetadata>,
    limits: SocketLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut warned = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match admit(&slots, &limits) {
                    Some(admission) => {
                        let served = serve_connection(stream, metadata.clone(), limits.clone());
                        connections.spawn(async move {
                            served.await;
                            drop(admission);
                        });
                    }
                    None => over_limit(stream, &limits, &mut warned),
                },
                Err(error) => {
                    // Out of file descriptors, typically: back off instead of spinning. Only
                    // this socket waits; every socket has its own task.
                    tracing::warn!(%error, "metadata socket accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Refuses a connection beyond the limits; says so in the agent's log once per socket.
fn over_limit(stream: UnixStream, limits: &SocketLimits, warned: &mut bool) {
    if !std::mem::replace(warned, true) {
        let (max, budget_left) = (limits.max_connections, limits.budget.available());
        tracing::warn!(
            max,
            budget_left,
            "a guest holds too many metadata connections; refusing more"
        );
    }
    refuse(stream);
}

/// One connection: HTTP/1.1 within the limits, closed when it has been idle too long.
async fn serve_connection(
    stream: UnixStream,
    metadata: watch::Receiver<GuestMetadata>,
    limits: SocketLimits,
) {
    let activity = Activity::new();
    let in_service = activity.clone();
    let service = service_fn(move |request| {
        let (metadata, busy) = (metadata.clone(), in_service.busy());
        async move {
            let reply = match refuse_body(&request) {
                Some(refused) => refused,
                None => respond(request, metadata).await,
            };
            drop(busy);
            Ok::<_, Infallible>(reply)
        }
    });
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let served = http_builder(&limits).serve_connection(io, service);
    tokio::select! {
        served = served => if let Err(error) = served {
            tracing::debug!(%error, "metadata connection ended with an error");
        },
        () = activity.stalled(limits.idle_timeout) => {
            tracing::debug!("closing an idle metadata connection");
        }
    }
}

/// Nothing on the socket takes a body: a request that announces one is refused and its
/// connection closed, so the agent never reads or buffers it.
fn refuse_body(request: &Request<Incoming>) -> Option<Reply> {
    let headers = request.headers();
    let length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let has_body = headers.contains_key(TRANSFER_ENCODING) || length.is_some_and(|n| n > 0);
    if !has_body {
        return None;
    }
    let mut reply = text(StatusCode::PAYLOAD_TOO_LARGE, "413 requests to this socket take no body");
    reply.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    Some(reply)
}

async fn respond(request: Request<Incoming>, metadata: watch::Receiver<GuestMetadata>) -> Reply {
    if request.method() != Method::GET {
        let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
        reply.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return reply;
    }
    let query = request.uri().query().unwrap_or("");
    match request.uri().path() {
        "/vm/metadata" => {
            let current = metadata.borrow().clone();
            match query_param(query, "key") {
                None => json(StatusCode::OK, &render::object(&current)),
                Some(key) => match render::value(&current, key) {
                    Some(value) => json(StatusCode::OK, &value),
                    None => not_found(),
                },
            }
        }
        "/vm/events" => match parse_wait(query_param(query, "wait")) {
            Ok(wait) => events(metadata, wait).await,
            Err(message) => text(StatusCode::BAD_REQUEST, &message),
        },
        "/latest/meta-data/spot/instance-action" => {
            match render::instance_action(&metadata.borrow()) {
                Some(action) => json(StatusCode::OK, &action),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// Long-poll: answers as soon as the metadata differs from what it was when the request
/// arrived, or after `wait` with `X-Gpuspot-Changed: false`.
async fn events(mut metadata: watch::Receiver<GuestMetadata>, wait: Duration) -> Reply {
    let seen = metadata.borrow_and_update().clone();
    let changed = tokio::time::timeout(wait, async {
        loop {
            if metadata.changed().await.is_err() {
                // The agent dropped this instance's metadata: nothing will ever change, but
                // answering at once would turn guests' loops into busy loops.
                std::future::pending::<()>().await;
            }
            if *metadata.borrow_and_update() != seen {
                return;
            }
        }
    })
    .await
    .is_ok();
    let current = metadata.borrow().clone();
    let mut reply = json(StatusCode::OK, &render::object(&current));
    let flag = if changed { "true" } else { "false" };
    reply.headers_mut().insert(CHANGED, HeaderValue::from_static(flag));
    reply
}

fn parse_wait(raw: Option<&str>) -> Result<Duration, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_WAIT);
    };
    let seconds: u64 = raw
        .parse()
        .map_err(|_| format!("invalid wait {raw:?}: expected whole seconds, e.g. wait=30"))?;
    Ok(Duration::from_secs(seconds).min(MAX_WAIT))
}

/// The first value of `name` in a query string. Keys and numbers need no percent-decoding.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn not_found() -> Reply {
    text(StatusCode::NOT_FOUND, NOT_FOUND)
}

fn text(status: StatusCode, body: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json(status: StatusCode, value: &Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// `Full` bodies have a known length, so hyper sends `Content-Length` (no chunking), which
/// the simplest clients (curl -w, shell scripts) rely on.
fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_wait_parsing() {
        assert_eq!(query_param("key=price", "key"), Some("price"));
        assert_eq!(query_param("a=1&key=bid&key=x", "key"), Some("bid"));
        assert_eq!(query_param("keys=1", "key"), None);
        assert_eq!(query_param("", "key"), None);
        assert_eq!(parse_wait(None), Ok(DEFAULT_WAIT));
        assert_eq!(parse_wait(Some("1")), Ok(Duration::from_secs(1)));
        assert_eq!(parse_wait(Some("9999")), Ok(MAX_WAIT));
        assert!(parse_wait(Some("soon")).is_err());
        assert!(parse_wait(Some("-1")).is_err());
    }
}
