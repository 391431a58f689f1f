//! What the agent does when the coordinator refuses its session, decided by the refusal's
//! code alone; the sentence that comes with it is only logged.

use super::LinkError;
use gpuspot_common::protocol::RefusalCode;

/// The agent's answer to a refused session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// Forget the host credentials and join again with the token.
    JoinAgain,
    /// Keep the credentials and try again after the backoff.
    RetryLater,
    /// Retrying cannot help: the agent exits.
    Stop,
}

impl Reaction {
    /// The reaction to a session refused with `code`.
    pub(crate) fn to(code: RefusalCode) -> Reaction {
        match code {
            RefusalCode::UnknownCertificate => Reaction::JoinAgain,
            RefusalCode::VersionMismatch => Reaction::Stop,
            // A deleted host keeps knocking at the backoff's pace, each refusal in its log.
            RefusalCode::Revoked
            | RefusalCode::CertificateRequired
            | RefusalCode::ExpectedHello
            | RefusalCode::Internal
            | RefusalCode::NoPool
            | RefusalCode::NoLeader
            | RefusalCode::Other => Reaction::RetryLater,
            // Join answers: a session is never refused with them, but a coordinator that did
            // would refuse the next try the same way.
            RefusalCode::InvalidToken
            | RefusalCode::ForeignToken
            | RefusalCode::UnknownToken
            | RefusalCode::TokenRevoked
            | RefusalCode::TokenExpired
            | RefusalCode::TokenUsedUp
            | RefusalCode::BadCsr => Reaction::Stop,
        }
    }
}

/// The error a refused session ends with: fatal when retrying cannot help. Its message is
/// the coordinator's sentence, which the reconnect loop logs.
pub(crate) fn refused(code: RefusalCode, reason: String) -> LinkError {
    match Reaction::to(code) {
        Reaction::Stop => LinkError::Fatal(format!("coordinator refused this agent: {reason}")),
        Reaction::JoinAgain | Reaction::RetryLater => LinkError::Refused { code, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_certificate_makes_the_agent_join_again() {
        assert_eq!(Reaction::to(RefusalCode::UnknownCertificate), Reaction::JoinAgain);
        let error = refused(RefusalCode::UnknownCertificate, "unknown host certificate".into());
        assert!(matches!(error, LinkError::Refused { code: RefusalCode::UnknownCertificate, .. }));
    }

    #[test]
    fn a_revoked_host_keeps_its_credentials_and_retries_later() {
        assert_eq!(Reaction::to(RefusalCode::Revoked), Reaction::RetryLater);
        let error = refused(RefusalCode::Revoked, "host certificate revoked: gone".into());
        assert_eq!(
            error.to_string(),
            "coordinator refused the session: host certificate revoked: gone"
        );
    }

    #[test]
    fn a_version_mismatch_stops_the_agent_with_the_coordinators_sentence() {
        assert_eq!(Reaction::to(RefusalCode::VersionMismatch), Reaction::Stop);
        let error =
            refused(RefusalCode::VersionMismatch, "protocol version 9 is not supported".into());
        let LinkError::Fatal(message) = error else { panic!("not fatal: {error}") };
        assert_eq!(message, "coordinator refused this agent: protocol version 9 is not supported");
    }

    #[test]
    fn the_reaction_depends_on_the_code_not_the_sentence() {
        let misleading = "unknown host certificate, protocol version".to_owned();
        let error = refused(RefusalCode::Revoked, misleading);
        assert!(matches!(error, LinkError::Refused { code: RefusalCode::Revoked, .. }));
    }

    #[test]
    fn a_standby_without_a_leader_is_tried_again_later() {
        assert_eq!(Reaction::to(RefusalCode::NoLeader), Reaction::RetryLater);
        let error = refused(RefusalCode::NoLeader, "no coordinator leads".into());
        assert!(matches!(error, LinkError::Refused { code: RefusalCode::NoLeader, .. }));
    }

    #[test]
    fn a_code_newer_than_this_agent_is_retried_and_join_codes_stop() {
        assert_eq!(Reaction::to(RefusalCode::Other), Reaction::RetryLater);
        for code in [RefusalCode::InvalidToken, RefusalCode::TokenExpired, RefusalCode::BadCsr] {
            assert_eq!(Reaction::to(code), Reaction::Stop, "{code}");
        }
    }
}
