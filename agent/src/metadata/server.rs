//! HTTP/1.1 over the instance's unix socket: the accept loop and the routes of DESIGN §6.
//! Answers mimic what guests already script against: seed 003's exact `404 page not found`
//! body, AWS's `spot/instance-action` document.

use super::render;
use bytes::Bytes;
use gpuspot_common::protocol::GuestMetadata;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const NOT_FOUND: &str = "404 page not found";
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);
const CHANGED: HeaderName = HeaderName::from_static("x-gpuspot-changed");

type Reply = Response<Full<Bytes>>;

/// Serves until the task is aborted; aborting drops every connection with it.
pub(super) async fn serve(listener: UnixListener, metadata: watch::Receiver<GuestMetadata>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, metadata.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(%error, "metadata socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: UnixStream, metadata: watch::Receiver<GuestMetadata>) {
    let service = service_fn(move |request| {
        let metadata = metadata.clone();
        async move { Ok::<_, Infallible>(respond(request, metadata).await) }
    });
    let served = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    if let Err(error) = served {
        tracing::debug!(%error, "metadata connection ended with an error");
    }
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
