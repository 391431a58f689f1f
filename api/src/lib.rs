//! The HTTP API's contract as Rust types: what clients send, what the coordinator answers,
//! its errors and the payloads of its events. The coordinator serializes these, the OpenAPI
//! document is derived from them, and the CLI and the e2e tests deserialize them, so the
//! contract has one description (docs/contracts.md).
//!
//! - [`error`]: the error body every failure answers, and `GET /healthz`.
//! - [`instances`]: instances and what they are asked for (billing, GPUs, readiness…).
//! - [`requests`]: the bodies of `POST /v1/instances` and of deployments.
//! - [`deployments`]: deployments, their specs, template, scaling and endpoints.
//! - [`hosts`], [`pools`]: the fleet and its markets.
//! - [`accounts`]: accounts, tokens, whoami, payments and ledgers.
//! - [`misc`]: snapshots, inbox messages and exec results.
//! - [`events`]: what happened, and each kind's payload.

pub mod accounts;
pub mod deployments;
pub mod error;
pub mod events;
pub mod hosts;
pub mod instances;
pub mod misc;
pub mod pools;
pub mod requests;

pub use accounts::{
    Account, AccountWithToken, EntryKind, LedgerEntry, PaymentReceipt, Quota, Role, Usage, Whoami,
};
pub use deployments::{
    Autoscaling, Deployment, DeploymentState, Endpoint, Mode, ScheduledMinimum, Spec, Template,
};
pub use error::{CoordinatorRole, ErrorBody, ErrorDetail, Health};
pub use hosts::{Host, HostGpu, HostGpuFault, HostState, HostUnit};
pub use instances::{
    Billing, EndReason, GpuAsk, Instance, InstanceState, OnUnavailable, Range, Readiness,
    SnapshotOptions,
};
pub use misc::{ExecResult, MailState, Message, SessionEnd, Snapshot};
pub use pools::{Pool, PricePoint, Pricing};

/// Implements `as_str`, `parse` and `Display` for a unit-only enum from its serde names, and
/// `ALL`, every variant in declaration order.
macro_rules! vocabulary {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, in the order the API lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name the API uses (as serde writes it).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant the API names `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use vocabulary;

#[cfg(test)]
mod tests;
