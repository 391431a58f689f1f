//! The refusals of each API area, as typed errors whose messages are what users read; the
//! status and code each answers with are given in one place, [`super`].

use std::time::Duration;

/// Who is calling: the bearer token and what it may act for.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (Authorization: Bearer TOKEN)")]
    MissingToken,
    #[error("the Authorization header must be `Bearer TOKEN`")]
    MalformedHeader,
    #[error("invalid token")]
    InvalidToken,
    #[error("an account token can only act for its own account")]
    OtherAccount,
    #[error("this route needs the admin token")]
    AdminOnly,
}

/// A query, path or header the route cannot read; the message names the parameter.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error("Last-Event-ID must be an event id")]
    LastEventId,
}

/// A body that is not what the route takes; the message names every field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBody(pub String);

/// `/v1/instances` and `/v1/deployments`: what the policy and the fleet allow.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// `[policy] process_workloads = false` and no image.
    #[error("{0}")]
    ImageRequired(String),
    #[error("no pool or host offers GPU model {}; see GET /v1/pools", .0.join(", "))]
    UnknownModels(Vec<String>),
    #[error("no pool or host offers any GPU model of these specs")]
    UnknownSpecModels,
}

/// `/v1/accounts`: names, addresses and payments.
#[derive(Debug, thiserror::Error)]
pub enum AccountInputError {
    #[error("name must be 1 to 128 characters")]
    Name,
    #[error("email {text:?} is not an address: {reason}")]
    Email { text: String, reason: String },
    #[error("webhook_url must be http(s)://… (at most 2048 bytes)")]
    Webhook,
    #[error("amount {text:?}: {why}")]
    Amount { text: String, why: &'static str },
}

/// Something named in the path that does not exist (or is another account's).
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    #[error("snapshot {0}")]
    Snapshot(String),
    #[error("no message {0}")]
    Message(String),
    #[error("pool {0:?} (see GET /v1/pools)")]
    Pool(String),
    #[error("no route for {method} {path}")]
    Route { method: String, path: String },
}

/// `/v1/instances/{id}/exec`: commands and sessions inside an instance.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("instance {id} is {state}: commands run only in a running instance")]
    NotRunning { id: String, state: &'static str },
    #[error("{0}")]
    HostUnavailable(String),
    /// The agent could not run it (no such instance there, the program is missing…).
    #[error("{0}")]
    Failed(String),
    #[error("host of instance {id} gave no exit status within {timeout:?}")]
    NoExit { id: String, timeout: Duration },
    #[error(
        "GET …/exec is an interactive session and needs `Upgrade: websocket`; \
             POST {{\"command\": [...]}} runs a command and answers with its output"
    )]
    WebsocketRequired,
    #[error("{0}")]
    Handshake(String),
}

/// `/v1/events`: open streams per token.
#[derive(Debug, thiserror::Error)]
#[error("at most {0} event streams per token at once")]
pub struct TooManyStreams(pub usize);

/// A fault of the coordinator itself (the actor, the store, a thread pool).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Internal(pub String);

/// The database could not be reached (several coordinators on PostgreSQL): worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreUnavailable(pub String);
