//! `GET /v1/events`: every change as server-sent events; an account sees only its own.
//! The token comes as a bearer token, as everywhere; never from a cookie or the URL (the
//! dashboard reads the stream with `fetch`, which can send the header).
//!
//! Bounded on purpose (docs/contracts.md#limits), since every tenant may open streams and not read
//! them:
//! - without `Last-Event-ID` (header, or `?after=`) a stream starts from now: no replay;
//! - with one, it replays at most the [`MAX_REPLAY`] newest matching events after it, then
//!   follows live ones;
//! - at most [`MAX_STREAMS_PER_TOKEN`] streams per token at once (429 beyond);
//! - an account's streams end when its token is rotated or the account disabled, after
//!   sending that event, so a stolen token stops reading (and frees the owner's slots);
//! - a stream that falls further behind the live feed than its buffer holds (the client is
//!   not reading, or not fast enough) is closed. actix stops polling a body whose socket
//!   does not drain, so such a client costs a bounded write buffer until the feed overflows;
//!   a client that reconnects with `Last-Event-ID` resumes where it stopped.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, QueryError, TooManyStreams};
use crate::actors::Scope;
use crate::core::cluster::Event;
use actix_web::{HttpRequest, HttpResponse, get, web};
use bytes::Bytes;
use futures::StreamExt;
use gpuspot_api::ErrorBody;
use gpuspot_common::AccountId;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa_actix_web::service_config::ServiceConfig;

pub const MAX_STREAMS_PER_TOKEN: usize = 8;
pub const MAX_REPLAY: usize = 1000;
/// Replayed events are read in pages, so a stream that is not read holds one page at most.
const REPLAY_PAGE: usize = 100;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Resume after this event id (as `Last-Event-ID`, which wins).
    after: Option<u64>,
}

/// Open streams per token. A [`StreamSlot`] gives its place back when the stream ends.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: Mutex<HashMap<String, usize>>,
}

pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: String,
}

impl StreamSlots {
    fn take(self: &Arc<Self>, key: String) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_default();
        if *count >= MAX_STREAMS_PER_TOKEN {
            return None;
        }
        *count += 1;
        Some(StreamSlot { slots: self.clone(), key })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A token's streams are counted together; an account has one token at a time.
fn slot_key(scope: &Scope) -> String {
    match scope {
        Scope::Admin => "admin".into(),
        Scope::Account(account) => account.to_string(),
    }
}

struct Feed {
    store: Arc<dyn crate::store::Store>,
    live: broadcast::Receiver<Event>,
    scope: Scope,
    last_id: u64,
    backlog: VecDeque<Event>,
    /// Replayed events still to read from the store.
    replay_left: usize,
    /// The credentials the stream was opened with are gone (the token was rotated, or the
    /// account disabled): the stream ends after sending that event.
    revoked: bool,
    _slot: StreamSlot,
}

/// Admins see everything; an account sees its own events and the market's price moves.
pub fn visible(scope: &Scope, event: &Event) -> bool {
    match scope {
        Scope::Admin => true,
        Scope::Account(account) => {
            event.account_id.as_ref() == Some(account) || event.kind.is_public()
        }
    }
}

/// Whether `event` takes away the token an account's stream was opened with: a stolen token
/// must not keep reading, nor keep the owner's stream slots, once it was rotated away.
fn revokes(scope: &Scope, event: &Event) -> bool {
    use crate::core::events::EventKind::{AccountDisabled, TokenRotated};
    let own = matches!(scope, Scope::Account(a) if event.account_id.as_ref() == Some(a));
    own && matches!(event.kind, TokenRotated | AccountDisabled)
}

pub fn format_sse(event: &Event) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", event.id, event.kind))
}

impl Feed {
    /// The next chunk to send: a replayed or live event, or a keep-alive comment; `None`
    /// when the stream must end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last_id = self.last_id.max(event.id);
                return Some(format_sse(&event));
            }
            if self.revoked {
                return None;
            }
            if self.replay_left > 0 {
                match self.replay_page().await {
                    Ok(()) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "event replay failed; closing the stream");
                        return None;
                    }
                }
            }
            match tokio::time::timeout(KEEP_ALIVE, self.live.recv()).await {
                Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
                Ok(Ok(event)) if event.id > self.last_id && visible(&self.scope, &event) => {
                    self.revoked |= revokes(&self.scope, &event);
                    self.backlog.push_back(event)
                }
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    tracing::info!(
                        missed,
                        last_id = self.last_id,
                        "closing an event stream that does not keep up"
                    );
                    return None;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    }

    async fn replay_page(&mut self) -> Result<(), HttpError> {
        let (store, after, account) = (self.store.clone(), self.last_id, account_of(&self.scope));
        let limit = self.replay_left.min(REPLAY_PAGE);
        let page =
            super::blocking(move || store.events_visible_after(after, account.as_ref(), limit))
                .await?;
        self.replay_left = if page.len() < limit { 0 } else { self.replay_left - page.len() };
        self.backlog.extend(page);
        Ok(())
    }
}

fn account_of(scope: &Scope) -> Option<AccountId> {
    match scope {
        Scope::Admin => None,
        Scope::Account(account) => Some(account.clone()),
    }
}

/// `Last-Event-ID` wins over `?after=`; neither means "from now on".
fn resume_point(request: &HttpRequest, after: Option<u64>) -> Result<Option<u64>, HttpError> {
    match request.headers().get("Last-Event-ID") {
        None => Ok(after),
        Some(value) => match value.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(id) => Ok(Some(id)),
            None => Err(QueryError::LastEventId.into()),
        },
    }
}

/// Where the replay after `after` starts, so that it holds at most [`MAX_REPLAY`] events.
async fn replay_start(state: &AppState, scope: &Scope, after: u64) -> Result<u64, HttpError> {
    let (store, account) = (state.store.clone(), account_of(scope));
    super::blocking(move || store.replay_start(after, account.as_ref(), MAX_REPLAY)).await
}

/// Server-sent events: `id`, `event` (the kind) and `data` (the event as JSON) per event,
/// and `: keep-alive` comments.
#[utoipa::path(
    tag = "events", operation_id = "stream_events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Invalid query or Last-Event-ID", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 429, description = "Too many open streams for this token", body = ErrorBody),
    )
)]
#[get("/events")]
async fn stream(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, HttpError> {
    let resume = resume_point(&request, query.after)?;
    let slot =
        state.streams.take(slot_key(&caller.scope)).ok_or(TooManyStreams(MAX_STREAMS_PER_TOKEN))?;
    // Subscribe before reading the store, so no event falls between the two; events in
    // both are skipped by id.
    let live = state.events.subscribe();
    let (last_id, replay_left) = match resume {
        Some(after) => (replay_start(&state, &caller.scope, after).await?, MAX_REPLAY),
        None => (0, 0),
    };
    let feed = Feed {
        store: state.store.clone(),
        live,
        scope: caller.scope,
        last_id,
        backlog: VecDeque::new(),
        replay_left,
        revoked: false,
        _slot: slot,
    };
    // A comment first, so the client has the headers at once, not at the first event.
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b": stream open\n\n")) });
    let body = opening.chain(futures::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok::<_, actix_web::Error>(chunk), feed))
    }));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(body))
}
