//! Joining: a certificate-less agent presents a join token and a CSR; if the token is one
//! we issued (it pins our CA) and is still active (not expired, used up or revoked), it
//! gets a host id and a certificate for it, and the token one more use.

use super::QuicContext;
use crate::store::credentials::NewCertificate;
use chrono::Utc;
use gpuspot_common::HostId;
use gpuspot_common::pki::JoinToken;
use gpuspot_common::protocol::CoordinatorMessage;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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
        Err(reason) => {
            tracing::warn!(hostname, %reason, "join refused");
            CoordinatorMessage::Refused { reason }
        }
    }
}

/// The certificate is signed before the token is checked so that the use is counted and
/// the certificate recorded in one step: a join that fails never spends a use.
async fn try_join(
    context: &QuicContext,
    token: &str,
    csr_pem: &str,
) -> Result<(HostId, String, String), String> {
    let token: JoinToken =
        token.parse().map_err(|e: gpuspot_common::pki::PkiError| e.to_string())?;
    if token.ca_fingerprint != context.ca.fingerprint() {
        return Err("the join token was issued by another coordinator".into());
    }
    let host_id = HostId::random();
    let cert_pem =
        context.ca.sign_host_csr(csr_pem, &host_id).map_err(|e| format!("bad CSR: {e}"))?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let record = redeemed.map_err(|refusal| refusal.to_string())?;
    Ok((host_id, cert_pem, record.id))
}
