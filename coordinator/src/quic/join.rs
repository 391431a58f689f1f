//! Joining: a certificate-less agent presents a join token and a CSR; if the token is one
//! we issued (it pins our CA) and is still active (not expired, used up or revoked), it
//! gets a host id and a certificate for it, and the token one more use. A refusal says why
//! with a [`RefusalCode`]; a joining agent names no protocol version, so the answer is sent
//! in the form every version decodes (see [`CoordinatorMessage::refusal`]). Every join is
//! an event `host_joined` for the operator, saved before the agent gets its certificate.

use super::QuicContext;
use crate::actors::messages::HostJoined;
use crate::core::agents::Joined;
use crate::store::credentials::{JoinRefusal, NewCertificate};
use chrono::Utc;
use gpuspot_common::HostId;
use gpuspot_common::pki::JoinToken;
use gpuspot_common::protocol::{CoordinatorMessage, RefusalCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fmt::Display;
use std::net::SocketAddr;

/// The longest hostname a joining agent may give (a DNS name's limit).
pub const MAX_HOSTNAME: usize = 253;

/// What a certificate-less agent that sent `Join` from `remote` is answered.
pub async fn handle(
    context: &QuicContext,
    token: &str,
    csr_pem: &str,
    hostname: &str,
    remote: SocketAddr,
) -> CoordinatorMessage {
    let joined = match check_hostname(hostname) {
        Ok(()) => try_join(context, token, csr_pem).await,
        Err(refusal) => Err(refusal),
    };
    match joined {
        Ok((host_id, cert_pem, token_id)) => {
            tracing::info!(%host_id, hostname, token = %token_id, %remote, "agent joined");
            let joined = Joined {
                host_id: host_id.clone(),
                hostname: hostname.to_owned(),
                token_id,
                address: remote.to_string(),
            };
            if let Err(error) = context.cluster.send(HostJoined(joined)).await {
                tracing::warn!(%host_id, %error, "the host_joined event was not recorded");
            }
            CoordinatorMessage::Joined {
                host_id,
                cert_pem,
                ca_pem: context.ca.cert_pem().to_owned(),
            }
        }
        Err(Refused { code, reason }) => {
            let hostname = if hostname.len() <= MAX_HOSTNAME { hostname } else { "(too long)" };
            tracing::warn!(hostname, %code, %reason, %remote, "join refused");
            CoordinatorMessage::refusal(code, reason, None)
        }
    }
}

/// Why a join is refused.
struct Refused {
    code: RefusalCode,
    reason: String,
}

/// Turns an error into a refusal with `code`, keeping the error's sentence.
fn refused<E: Display>(code: RefusalCode) -> impl FnOnce(E) -> Refused {
    move |error| Refused { code, reason: error.to_string() }
}

/// A hostname fit to show the operator: at most [`MAX_HOSTNAME`] bytes, no control
/// characters (it goes into events and logs). Checked before the token spends a use.
fn check_hostname(hostname: &str) -> Result<(), Refused> {
    let problem = if hostname.len() > MAX_HOSTNAME {
        Some(format!("the hostname is {} bytes long (at most {MAX_HOSTNAME})", hostname.len()))
    } else if hostname.trim().is_empty() || hostname.chars().any(char::is_control) {
        Some("the hostname is empty or holds control characters".to_owned())
    } else {
        None
    };
    problem.map_or(Ok(()), |reason| Err(Refused { code: RefusalCode::BadCsr, reason }))
}

fn token_refusal_code(refusal: &JoinRefusal) -> RefusalCode {
    match refusal {
        JoinRefusal::Unknown => RefusalCode::UnknownToken,
        JoinRefusal::Revoked { .. } => RefusalCode::TokenRevoked,
        JoinRefusal::Expired { .. } => RefusalCode::TokenExpired,
        JoinRefusal::UsedUp { .. } => RefusalCode::TokenUsedUp,
    }
}

/// The certificate is signed before the token is checked so that the use is counted and
/// the certificate recorded in one step: a join that fails never spends a use.
async fn try_join(
    context: &QuicContext,
    token: &str,
    csr_pem: &str,
) -> Result<(HostId, String, String), Refused> {
    let token: JoinToken = token.parse().map_err(refused(RefusalCode::InvalidToken))?;
    if token.ca_fingerprint != context.ca.fingerprint() {
        let reason = "the join token was issued by another coordinator";
        return Err(refused(RefusalCode::ForeignToken)(reason));
    }
    let host_id = HostId::random();
    let cert_pem = context
        .ca
        .sign_host_csr(csr_pem, &host_id)
        .map_err(|e| refused(RefusalCode::BadCsr)(format!("bad CSR: {e}")))?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(refused(RefusalCode::Internal))?;
    let certificate = NewCertificate {
        fingerprint: gpuspot_common::pki::fingerprint(&der),
        host_id: host_id.clone(),
        at: Utc::now(),
    };
    let store = context.store.clone();
    let hash = token.secret_hash();
    let redeemed =
        tokio::task::spawn_blocking(move || store.redeem_join_token(&hash, &certificate))
            .await
            .map_err(refused(RefusalCode::Internal))?
            .map_err(refused(RefusalCode::Internal))?;
    let record = redeemed.map_err(|refusal| refused(token_refusal_code(&refusal))(refusal))?;
    Ok((host_id, cert_pem, record.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostname_is_bounded_and_printable_before_a_use_is_spent() {
        assert!(check_hostname("gpu-7.example").is_ok());
        assert!(check_hostname(&"a".repeat(MAX_HOSTNAME)).is_ok());
        let long = check_hostname(&"a".repeat(MAX_HOSTNAME + 1)).expect_err("refused");
        assert_eq!(long.code, RefusalCode::BadCsr);
        assert!(long.reason.contains("254 bytes long (at most 253)"), "{}", long.reason);
        for bad in ["", "  ", "gpu\n7", "gpu\u{1b}[31m"] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
