//! Joining: a certificate-less agent presents a join token and a CSR; if the token is one
//! we issued (and pins our CA), it gets a host id and a certificate for it.

use super::QuicContext;
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
        Ok((host_id, cert_pem)) => {
            tracing::info!(%host_id, hostname, "agent joined");
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

async fn try_join(
    context: &QuicContext,
    token: &str,
    csr_pem: &str,
) -> Result<(HostId, String), String> {
    let token: JoinToken =
        token.parse().map_err(|e: gpuspot_common::pki::PkiError| e.to_string())?;
    if token.ca_fingerprint != context.ca.fingerprint() {
        return Err("the join token was issued by another coordinator".into());
    }
    let store = context.store.clone();
    let hash = token.secret_hash();
    let known = tokio::task::spawn_blocking(move || store.join_token_exists(&hash))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !known {
        return Err(
            "unknown join token (create one with `gpuspot-coordinator token create`)".into()
        );
    }
    let host_id = HostId::random();
    let cert_pem =
        context.ca.sign_host_csr(csr_pem, &host_id).map_err(|e| format!("bad CSR: {e}"))?;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let fingerprint = gpuspot_common::pki::fingerprint(&der);
    let store = context.store.clone();
    let id = host_id.clone();
    tokio::task::spawn_blocking(move || store.add_host_certificate(&fingerprint, &id, Utc::now()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((host_id, cert_pem))
}
