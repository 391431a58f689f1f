//! The HTTP API's contract as Rust types: what clients send, what the coordinator answers,
//! its errors and the payloads of its events. The coordinator serializes these, the OpenAPI
//! document is derived from them, and the CLI and the e2e tests deserialize them, so the
//! contract has one description.

pub mod events;
