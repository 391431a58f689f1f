//! Why a connection or a start is refused, as a program reads it: [`RefusalCode`] for a
//! session or a join the coordinator refuses, [`StartRefusal`] for a start an agent refuses.

use serde::{Deserialize, Serialize};

/// Why an agent refused a start, as the coordinator acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartRefusal {
    /// A program that is no guest of this instance holds this host port of the
    /// assignment: the coordinator picks another (docs/contracts.md#serving).
    PortBusy { port: u16 },
}

/// Why the coordinator refuses a connection, as a program reads it (the sentence next to it
/// is for people). Serialized in snake_case; new codes go before `Other`, which is what an
/// agent makes of a code newer than itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The hello named another protocol version.
    VersionMismatch,
    /// The certificate was never issued here (or the store could not say): join again.
    UnknownCertificate,
    /// The operator deleted this host; its certificate is refused for good.
    Revoked,
    /// A session was attempted without a host certificate.
    CertificateRequired,
    /// The first frame of an authenticated connection was not a hello.
    ExpectedHello,
    /// The join token does not parse.
    InvalidToken,
    /// The join token was issued by another coordinator.
    ForeignToken,
    /// The join token is not one this coordinator knows.
    UnknownToken,
    /// The operator revoked the join token.
    TokenRevoked,
    /// The join token expired.
    TokenExpired,
    /// The join token has been used as often as it may.
    TokenUsedUp,
    /// The CSR sent with the join could not be signed.
    BadCsr,
    /// The coordinator failed on its side (store, task).
    Internal,
    /// A GPU model of the host has no pool on the coordinator, so it could not be priced;
    /// the agent retries (the operator adds the pool and restarts the coordinator).
    NoPool,
    /// A standby coordinator serves no agents, and no coordinator leads right now (one
    /// takes over within the lease): the agent tries again after its backoff. With a leader
    /// the standby answers [`super::CoordinatorMessage::NotLeader`] instead.
    NoLeader,
    /// A code this build does not know (sent by a newer coordinator).
    #[serde(other)]
    Other,
}

impl RefusalCode {
    /// Every code, in wire order.
    pub const ALL: [RefusalCode; 16] = [
        RefusalCode::VersionMismatch,
        RefusalCode::UnknownCertificate,
        RefusalCode::Revoked,
        RefusalCode::CertificateRequired,
        RefusalCode::ExpectedHello,
        RefusalCode::InvalidToken,
        RefusalCode::ForeignToken,
        RefusalCode::UnknownToken,
        RefusalCode::TokenRevoked,
        RefusalCode::TokenExpired,
        RefusalCode::TokenUsedUp,
        RefusalCode::BadCsr,
        RefusalCode::Internal,
        RefusalCode::NoPool,
        RefusalCode::NoLeader,
        RefusalCode::Other,
    ];

    /// The serialized name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::VersionMismatch => "version_mismatch",
            RefusalCode::UnknownCertificate => "unknown_certificate",
            RefusalCode::Revoked => "revoked",
            RefusalCode::CertificateRequired => "certificate_required",
            RefusalCode::ExpectedHello => "expected_hello",
            RefusalCode::InvalidToken => "invalid_token",
            RefusalCode::ForeignToken => "foreign_token",
            RefusalCode::UnknownToken => "unknown_token",
            RefusalCode::TokenRevoked => "token_revoked",
            RefusalCode::TokenExpired => "token_expired",
            RefusalCode::TokenUsedUp => "token_used_up",
            RefusalCode::BadCsr => "bad_csr",
            RefusalCode::Internal => "internal",
            RefusalCode::NoPool => "no_pool",
            RefusalCode::NoLeader => "no_leader",
            RefusalCode::Other => "other",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
