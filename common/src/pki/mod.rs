//! Trust for the agent ↔ coordinator link. The coordinator keeps a CA; a join token carries
//! a secret and the CA's fingerprint, so a joining agent trusts exactly that CA before it
//! holds any certificate; the agent sends a CSR and gets a host certificate naming its host
//! id. Every later connection is mutual TLS 1.3 against that CA.

mod token;

pub use token::{JoinToken, join_client_config};

use crate::HostId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// The name every coordinator certificate carries; agents trust the pinned CA, not DNS.
pub const SERVER_NAME: &str = "gpuspot-coordinator";
pub const ALPN: &[u8] = b"gpuspot/1";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("bad PEM in {what}: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("malformed join token (expected gpuspot1.<ca-sha256>.<secret>)")]
    MalformedToken,
    #[error("the coordinator's CA does not match the fingerprint pinned by the join token")]
    CaMismatch,
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// The ring provider, used explicitly everywhere: a second provider compiled in makes
/// rustls refuse to pick a default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Call once at the top of every binary's `main`.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.display().to_string(), source }
}

/// Writes a file only its owner can read: 0600 when created, and tightened to 0600 when an
/// older file had a wider mode (`mode` applies to new files only).
fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    owner_only(path)?;
    file.write_all(contents.as_bytes()).map_err(io_err(path))
}

fn owner_only(path: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))
}

fn cert_der(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Pem { what, detail: e.to_string() })
}

fn key_der(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Pem { what, detail: e.to_string() })
}

/// The coordinator's certificate authority, kept as `ca.pem` / `ca.key` in its data dir.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
            // A key left readable by an older version is tightened (docs/contracts.md#limits).
            owner_only(&key_path)?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
            let key = KeyPair::from_pem(&key_pem)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            let cert_der = cert_der(&cert_pem, "ca.pem")?;
            return Ok(Self { cert_pem, cert_der, issuer });
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "gpuspot cluster CA");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// Signs an agent's CSR as a client certificate for `host_id`. Whatever names the CSR
    /// asks for are replaced: the coordinator decides who the host is.
    pub fn sign_host_csr(&self, csr_pem: &str, host_id: &HostId) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let params = &mut csr.params;
        params.subject_alt_names = vec![SanType::DnsName(host_id.as_str().try_into()?)];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host_id.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        Ok(csr.signed_by(&self.issuer)?.pem())
    }

    /// rustls config for the QUIC listener: TLS 1.3, client certificates verified against
    /// this CA but optional, so that an agent without one can still present a join token.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.issuer)?;
        let chain = vec![leaf.der().clone(), self.cert_der.clone()];
        let key = key_der(&key.serialize_pem(), "server key")?;

        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| PkiError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// A fresh key pair and a CSR for it; the key never leaves the agent.
pub fn new_host_key_and_csr(hostname: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, hostname);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// What an agent keeps in its state dir after joining.
#[derive(Clone, Debug)]
pub struct HostCredentials {
    pub host_id: HostId,
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl HostCredentials {
    const FILES: [&'static str; 4] = ["host-id", "host.key", "host.pem", "ca.pem"];

    pub fn load(dir: &Path) -> Result<Option<Self>, PkiError> {
        if !Self::FILES.iter().all(|f| dir.join(f).exists()) {
            return Ok(None);
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(io_err(&path))
        };
        Ok(Some(Self {
            host_id: HostId(read("host-id")?.trim().to_owned()),
            key_pem: read("host.key")?,
            cert_pem: read("host.pem")?,
            ca_pem: read("ca.pem")?,
        }))
    }

    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        write_private(&dir.join("host.key"), &self.key_pem)?;
        write_private(&dir.join("host.pem"), &self.cert_pem)?;
        write_private(&dir.join("ca.pem"), &self.ca_pem)?;
        write_private(&dir.join("host-id"), self.host_id.as_str())
    }

    /// Checks the CA handed over at join time against the token's pin.
    pub fn verify_ca(&self, token: &JoinToken) -> Result<(), PkiError> {
        let der = cert_der(&self.ca_pem, "ca.pem")?;
        if fingerprint(&der) == token.ca_fingerprint { Ok(()) } else { Err(PkiError::CaMismatch) }
    }

    pub fn cert_fingerprint(&self) -> Result<String, PkiError> {
        Ok(fingerprint(&cert_der(&self.cert_pem, "host.pem")?))
    }

    /// rustls config for an authenticated agent: trusts only the cluster CA and presents the
    /// host certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, PkiError> {
        let mut roots = RootCertStore::empty();
        roots.add(cert_der(&self.ca_pem, "ca.pem")?)?;
        let chain = vec![cert_der(&self.cert_pem, "host.pem")?];
        let key = key_der(&self.key_pem, "host.key")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_persists_and_token_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let again = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        let token = JoinToken::generate(&ca);
        let parsed: JoinToken = token.to_string().parse().unwrap();
        assert_eq!(parsed, token);
        assert!("gpuspot1.abc.def".parse::<JoinToken>().is_err());
        assert!("nonsense".parse::<JoinToken>().is_err());
    }

    #[test]
    fn the_ca_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ca.key");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(mode(&key), 0o600);
        // A key an older version (or a careless copy) left world-readable is tightened.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn host_certificate_is_signed_for_the_chosen_host_id() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let (key_pem, csr_pem) = new_host_key_and_csr("node-7").unwrap();
        let host_id = HostId::from("h-0123456789abcdef");
        let cert_pem = ca.sign_host_csr(&csr_pem, &host_id).unwrap();
        let creds =
            HostCredentials { host_id, key_pem, cert_pem, ca_pem: ca.cert_pem().to_owned() };
        let token = JoinToken::generate(&ca);
        creds.verify_ca(&token).unwrap();
        creds.client_config().unwrap();
        ca.server_config().unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_ca = CertificateAuthority::load_or_create(other.path()).unwrap();
        assert!(matches!(
            creds.verify_ca(&JoinToken::generate(&other_ca)),
            Err(PkiError::CaMismatch)
        ));
    }
}
