//! The gateway's HTTP side: the accept loop, and each request forwarded to a replica with
//! its response streamed back. The replica's count of requests in flight stays raised
//! until the response body is done (or dropped).

use super::Gateway;
use super::table::{Backend, RouteState};
use crate::listen::Acceptor;
use crate::listen::body::Deadlined;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Request bodies with a declared length up to this are buffered, and so retried.
pub const BUFFER_LIMIT: u64 = 8 << 20;
/// How often one request is tried on another replica after a failed connection.
const MAX_ATTEMPTS: usize = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type ProxyBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type Client = hyper_util::client::legacy::Client<HttpConnector, ProxyBody>;

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

pub async fn accept_loop(gateway: Arc<Gateway>, mut acceptor: Acceptor) {
    loop {
        let (stream, peer) = acceptor.next().await;
        let _ = stream.set_nodelay(true);
        let Some(slot) = gateway.admission.admit(peer.ip()) else {
            tokio::spawn(refuse(stream, peer));
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let header_timeout = gateway.header_timeout;
            let service = hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(forward(&gateway, request, peer).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%error, "gateway connection ended");
            }
        });
    }
}

/// A connection past the limits gets a 429 written at once, without reading its request,
/// and is closed.
async fn refuse(mut stream: tokio::net::TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    tracing::debug!(%peer, "gateway connection refused: too many open");
    let answer = crate::listen::refusal();
    let _ = tokio::time::timeout(REFUSAL_WRITE, stream.write_all(answer.as_bytes())).await;
    let _ = tokio::time::timeout(REFUSAL_WRITE, stream.shutdown()).await;
}

/// How long writing a refusal may take.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// `/d/{key}/rest` → (key, `/rest`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/d/")?;
    match rest.find('/') {
        Some(at) => Some((&rest[..at], &rest[at..])),
        None => Some((rest, "/")),
    }
}

async fn forward(
    gateway: &Gateway,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let Some((key, rest)) = split_path(request.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "not_found", "the gateway serves /d/{deployment}/…");
    };
    let Some(route) = gateway.current().get(key) else {
        let message = format!("no running deployment is named {key:?}");
        return error(StatusCode::NOT_FOUND, "unknown_deployment", &message);
    };
    route.requests.fetch_add(1, Ordering::Relaxed);
    let target = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let (mut parts, body) = request.into_parts();
    forwarded_headers(&mut parts.headers, peer);
    let (body, expired) = Deadlined::new(body, gateway.body_timeout);
    let response = match buffered(&parts.headers, body).await {
        Ok(RequestBody::Buffered(bytes)) => {
            send_buffered(gateway, &route, parts, &target, bytes).await
        }
        Ok(RequestBody::Streamed(body)) => {
            send_streamed(gateway, &route, parts, &target, body).await
        }
        Err(message) => error(StatusCode::BAD_REQUEST, "bad_request", &message),
    };
    if !expired.get() {
        return response;
    }
    tracing::info!(%peer, "request body too slow; closing the connection");
    let message = crate::listen::body::too_slow(gateway.body_timeout);
    let mut response = error(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message);
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The client's body, which must come in time.
type ClientBody = Deadlined<Incoming>;

enum RequestBody {
    Buffered(Bytes),
    Streamed(ClientBody),
}

/// The body in memory when its declared length allows (or it has none), else as a stream.
async fn buffered(headers: &HeaderMap, body: ClientBody) -> Result<RequestBody, String> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    match (length, chunked) {
        (Some(n), false) if n <= BUFFER_LIMIT => {}
        (None, false) => {}
        _ => return Ok(RequestBody::Streamed(body)),
    }
    match Limited::new(body, BUFFER_LIMIT as usize).collect().await {
        Ok(collected) => Ok(RequestBody::Buffered(collected.to_bytes())),
        Err(e) => Err(format!("request body: {e}")),
    }
}

async fn send_buffered(
    gateway: &Gateway,
    route: &RouteState,
    parts: hyper::http::request::Parts,
    target: &str,
    bytes: Bytes,
) -> Response<ProxyBody> {
    let mut tried = BTreeSet::new();
    let mut last_error = None;
    while tried.len() < MAX_ATTEMPTS {
        let Some((index, backend)) = route.pick(&tried) else { break };
        tried.insert(index);
        let body = Full::new(bytes.clone()).map_err(|never| match never {}).boxed();
        let request = match outgoing(&parts, backend, target, body) {
            Ok(request) => request,
            Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", &message),
        };
        match send(gateway, backend, request).await {
            Ok(response) => return response,
            Err(e) if e.is_connect() => {
                tracing::debug!(replica = %backend.instance_id, error = %e, "cannot connect; next replica");
                last_error = Some(e);
            }
            Err(e) => return bad_gateway(&e),
        }
    }
    match last_error {
        Some(e) => bad_gateway(&e),
        None => no_replicas(route),
    }
}

async fn send_streamed(
    gateway: &Gateway,
    route: &RouteState,
    parts: hyper::http::request::Parts,
    target: &str,
    body: ClientBody,
) -> Response<ProxyBody> {
    let Some((_, backend)) = route.pick(&BTreeSet::new()) else { return no_replicas(route) };
    let body = body.boxed();
    match outgoing(&parts, backend, target, body) {
        Ok(request) => send(gateway, backend, request).await.unwrap_or_else(|e| bad_gateway(&e)),
        Err(message) => error(StatusCode::BAD_REQUEST, "bad_request", &message),
    }
}

fn outgoing(
    parts: &hyper::http::request::Parts,
    backend: &Backend,
    target: &str,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, String> {
    let uri = format!("http://{}{target}", backend.address);
    let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) && name != header::HOST {
            builder = builder.header(name, value);
        }
    }
    builder.body(body).map_err(|e| e.to_string())
}

/// Sends one request to `backend`; its in-flight count holds until the response is read.
async fn send(
    gateway: &Gateway,
    backend: &Backend,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, hyper_util::client::legacy::Error> {
    let guard = InFlight::new(backend.outstanding.clone());
    let response = gateway.client.request(request).await?;
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let body = Tracked { inner: body, _guard: guard }
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        .boxed();
    Ok(Response::from_parts(parts, body))
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// `X-Forwarded-For` gains the client; `X-Forwarded-Proto` says plain HTTP.
fn forwarded_headers(headers: &mut HeaderMap, peer: SocketAddr) {
    let client = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
}

fn no_replicas(route: &RouteState) -> Response<ProxyBody> {
    let message = format!("deployment {} has no ready replica right now", route.deployment_id);
    error(StatusCode::SERVICE_UNAVAILABLE, "no_ready_replica", &message)
}

fn bad_gateway(e: &hyper_util::client::legacy::Error) -> Response<ProxyBody> {
    let source = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    error(StatusCode::BAD_GATEWAY, "bad_gateway", &format!("the replica failed: {e}{source}"))
}

/// The API's error shape, so one client parses both.
fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = error_body(code, message);
    let mut response =
        Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One request in flight on a replica, for as long as this lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted in flight until it is done.
struct Tracked {
    inner: Incoming,
    _guard: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_deployment_and_rest() {
        assert_eq!(split_path("/d/svc/v1/predict"), Some(("svc", "/v1/predict")));
        assert_eq!(split_path("/d/svc"), Some(("svc", "/")));
        assert_eq!(split_path("/d/svc/"), Some(("svc", "/")));
        assert_eq!(split_path("/v1/x"), None);
    }
}
