//! Mutual TLS on the agent link (docs/architecture.md#agent-link): no host joins without a valid
//! token, and a certificate from another CA is refused even by a client that trusts the real
//! coordinator.

use gpuspot_common::HostId;
use gpuspot_common::pki::{self, CertificateAuthority, HostCredentials};
use gpuspot_common::transport;
use gpuspot_e2e::{Cluster, cluster};
use std::time::Duration;

/// The join attempt must end the agent with an error and leave no host behind.
fn assert_refused(c: &Cluster, token: &str, expect_any: &[&str]) {
    let mut agent = c.spawn_agent(&Cluster::seed_profile("host-b"), Some(token));
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "agent with token {token} exited with {status}");
    let log = agent.log().to_ascii_lowercase();
    assert!(
        expect_any.iter().any(|e| log.contains(e)),
        "agent output mentions none of {expect_any:?}:\n{log}"
    );
    let hosts = c.api.hosts();
    assert!(hosts.is_empty(), "a refused agent appears as a host: {hosts:?}");
}

#[test]
fn made_up_token_is_refused() {
    let c = cluster!();
    let token = format!("gpuspot1.{}.{}", "ab".repeat(32), "cd".repeat(24));
    assert_refused(&c, &token, &["join refused", "ca mismatch", "does not match"]);
}

#[test]
fn token_with_unknown_secret_is_refused() {
    let c = cluster!();
    let real = c.join_token();
    let pin = real.split('.').nth(1).expect("CA pin in the token");
    let token = format!("gpuspot1.{pin}.{}", "0f".repeat(24));
    assert_refused(&c, &token, &["join refused"]);
}

#[test]
fn certificate_from_another_ca_is_refused() {
    pki::install_crypto_provider();
    let c = cluster!();
    let foreign_dir = c.dir().join("foreign-ca");
    std::fs::create_dir_all(&foreign_dir).expect("mkdir");
    let foreign = CertificateAuthority::load_or_create(&foreign_dir).expect("foreign CA");
    let host_id = HostId::random();
    let (key_pem, csr_pem) = pki::new_host_key_and_csr("intruder").expect("CSR");
    let cert_pem = foreign.sign_host_csr(&csr_pem, &host_id).expect("sign");
    let real_ca = std::fs::read_to_string(c.coordinator.data_dir.join("ca.pem")).expect("ca.pem");
    let credentials = HostCredentials { host_id, key_pem, cert_pem, ca_pem: real_ca };
    let tls = credentials.client_config().expect("client config");
    let addr = c.coordinator.quic;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let outcome: Result<String, String> = runtime.block_on(async move {
        let endpoint = transport::client_endpoint(addr).map_err(|e| e.to_string())?;
        let connection =
            match transport::connect(&endpoint, addr, tls, Duration::from_secs(3)).await {
                Err(e) => return Ok(format!("connect failed: {e}")),
                Ok(connection) => connection,
            };
        // TLS 1.3: the client may finish its side before the server checks the
        // certificate; the server must then close the connection.
        if let Ok((mut send, _recv)) = connection.open_bi().await {
            let _ = send.write_all(b"\0\0\0\x04ping").await;
        }
        match tokio::time::timeout(Duration::from_secs(10), connection.closed()).await {
            Ok(reason) => Ok(format!("closed by the server: {reason}")),
            Err(_) => Err("the server kept a connection with a foreign certificate open".into()),
        }
    });
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("foreign certificate: {outcome}");
    let hosts = c.api.hosts();
    assert!(hosts.is_empty(), "a host appeared for a foreign certificate: {hosts:?}");
}
