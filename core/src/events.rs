//! What happened, for the event log, the SSE stream and webhooks: the API's event types
//! (`gpuspot_api::events`), which the core records with typed payloads.

pub use gpuspot_api::events::payloads::{self, EventData, Nothing};
pub use gpuspot_api::events::{Event, EventKind};
