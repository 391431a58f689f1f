//! `GET /v1/events`: every change as server-sent events. The stream first replays the
//! stored events after `Last-Event-ID` (header, or `?after=`), then follows live ones; an
//! account sees only its own. A subscriber that falls behind the live feed catches up from
//! the store, so nothing is skipped.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use crate::actors::Scope;
use crate::core::cluster::Event;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

const PAGE: usize = 500;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(stream));
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

struct Feed {
    store: Arc<dyn crate::store::Store>,
    live: broadcast::Receiver<Event>,
    scope: Scope,
    last_id: u64,
    backlog: VecDeque<Event>,
    catching_up: bool,
}

/// Admins see everything; an account sees its own events and the market's price moves.
pub fn visible(scope: &Scope, event: &Event) -> bool {
    match scope {
        Scope::Admin => true,
        Scope::Account(account) => {
            event.account_id.as_ref() == Some(account) || event.kind == "price_changed"
        }
    }
}

pub fn format_sse(event: &Event) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", event.id, event.kind))
}

impl Feed {
    /// The next chunk to send: a stored or live event, or a keep-alive comment.
    async fn next_chunk(&mut self) -> Result<Bytes, HttpError> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last_id = self.last_id.max(event.id);
                if visible(&self.scope, &event) {
                    return Ok(format_sse(&event));
                }
                continue;
            }
            if self.catching_up {
                self.read_page().await?;
                continue;
            }
            match tokio::time::timeout(KEEP_ALIVE, self.live.recv()).await {
                Err(_) => return Ok(Bytes::from_static(b": keep-alive\n\n")),
                Ok(Ok(event)) if event.id > self.last_id => self.backlog.push_back(event),
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => self.catching_up = true,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(HttpError::internal("event feed closed"));
                }
            }
        }
    }

    async fn read_page(&mut self) -> Result<(), HttpError> {
        let (store, after) = (self.store.clone(), self.last_id);
        let page = web::block(move || store.events_after(after, PAGE))
            .await
            .map_err(|e| HttpError::internal(e.to_string()))?
            .map_err(|e| HttpError::internal(e.to_string()))?;
        self.catching_up = page.len() == PAGE;
        self.backlog.extend(page);
        Ok(())
    }
}

async fn stream(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, HttpError> {
    let header = request
        .headers()
        .get("Last-Event-ID")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()));
    let last_id = match header {
        Some(None) => {
            return Err(HttpError::bad_request(
                "invalid_header",
                "Last-Event-ID must be an event id",
            ));
        }
        Some(Some(id)) => id,
        None => query.after.unwrap_or(0),
    };
    // Subscribe before reading the store, so no event falls between the two.
    let feed = Feed {
        store: state.store.clone(),
        live: state.events.subscribe(),
        scope: caller.scope,
        last_id,
        backlog: VecDeque::new(),
        catching_up: true,
    };
    let body = futures::stream::unfold(feed, |mut feed| async move {
        match feed.next_chunk().await {
            Ok(chunk) => Some((Ok::<_, actix_web::Error>(chunk), feed)),
            Err(e) => {
                tracing::warn!(error = %e, "event stream ended");
                None
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body))
}
