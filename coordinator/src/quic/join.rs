//! Joining: a certificate-less agent presents a join token and a CSR; if the token is one
//! we issued (it pins our CA) and is still active (not expired, used up or revoked), it
//! gets a host id and a certificate for it, and the token one more use. A refusal says why
//! with a [`RefusalCode`]; a joining agent names no protocol version, so the answer is sent
//! in the form every version decodes (see [`CoordinatorMessage::refusal`]).

use super::QuicContext;
use crate::store::credentials::{JoinRefusal, NewCertificate};
use chrono::Utc;
use gpuspot_common::HostId;
use gpuspot_common::pki::JoinToken;
use gpuspot_common::protocol::{CoordinatorMessage, RefusalCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::fmt::Display;

pub async fn handle(
    context: &QuicContext,
    token: &str,
    csr_pem: &str,
    hostname: &str,
) -> CoordinatorMessage {
    match try_join(context, token, csr_pem).await {
        Ok((host_id, cert_pem, token_id)) => {
            tracing::info!(%host_id, hostname, token = %token_id, "agent joined");
            CoordinatorMessage::Joined {
                host_id,
                cert_pem,
                ca_pem: context.ca.cert_pem().to_owned(),
            }
        }
        Err(Refused { code, reason }) => {
            tracing::warn!(hostname, %code, %reason, "join refused");
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
