//! The API's share of the listener rules, on actix-web (whose accept loop already pauses
//! 500 ms after a descriptor shortage and goes on): [`on_connect`] counts each connection
//! against the API's [`Limits`](super::Limits) and refuses one past them with a 429 before
//! reading anything, and [`body_deadline`] ends a request whose body comes too slowly with
//! a 408 and closes its connection.

use super::Admission;
use super::body::Deadlined;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, http::StatusCode};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

type PayloadItem = Result<bytes::Bytes, actix_web::error::PayloadError>;

/// For `HttpServer::on_connect`: an admitted connection keeps its slot in its extensions
/// (given back when the connection ends); a refused one is answered and shut down.
pub fn on_connect(
    admission: Arc<Admission>,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, extensions| {
        let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else { return };
        match admission.admit(peer.ip()) {
            Some(slot) => {
                extensions.insert(slot);
            }
            None => {
                tracing::debug!(%peer, "API connection refused: too many open");
                // Straight to the socket (tokio's own writes wait for a readiness event
                // that a connection this new has not had): its buffer takes the short
                // answer whole. actix then reads the end of the stream and drops it.
                let socket = socket2::SockRef::from(stream);
                let _ = socket.send(super::refusal().as_bytes());
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Middleware (`from_fn`): the request body must come within `timeout` at the minimum rate
/// ([`super::body`]). A WebSocket upgrade (a GET: the exec session) is left alone, its
/// "body" is the session; any other request with an `Upgrade` header is not, or a client
/// could trickle a POST body past the deadline by naming one.
pub async fn body_deadline(
    timeout: Duration,
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if is_websocket_upgrade(&request) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let (payload, expired) = Deadlined::new(request.take_payload(), timeout);
    let payload: std::pin::Pin<Box<dyn futures::Stream<Item = PayloadItem>>> = Box::pin(payload);
    request.set_payload(Payload::from(payload));
    let response = next.call(request).await?;
    if !expired.get() {
        return Ok(response.map_into_left_body());
    }
    let (request, _) = response.into_parts();
    tracing::info!(peer = ?request.peer_addr(), "request body too slow; closing the connection");
    let message = super::body::too_slow(timeout);
    let answer = HttpResponse::build(StatusCode::REQUEST_TIMEOUT)
        .force_close()
        .json(serde_json::json!({ "error": { "code": "request_timeout", "message": message } }));
    Ok(ServiceResponse::new(request, answer).map_into_right_body())
}

fn is_websocket_upgrade(request: &ServiceRequest) -> bool {
    let upgrade = request.headers().get(actix_web::http::header::UPGRADE);
    request.method() == actix_web::http::Method::GET
        && upgrade.is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}
