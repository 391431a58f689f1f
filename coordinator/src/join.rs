//! Join tokens minted for agents (docs/contracts.md#tokens) by `token create` and `gpuspot dev`,
//! straight on the store, whether or not a coordinator runs; with PostgreSQL they pin the CA that
//! every coordinator of the database shares.

use crate::store::StoreError;
use crate::store::credentials::{JoinTokenRecord, NewJoinToken};
use crate::store::files;
use crate::store::url::StoreUrl;
use anyhow::Context as _;
use gpuspot_common::pki::{CertificateAuthority, JoinToken};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a join token lasts unless `--ttl` says otherwise (docs/contracts.md#tokens).
pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Creates a join token that expires after `ttl` and, with `max_uses`, admits that many
/// hosts; works whether or not the coordinator is running (they share the database).
pub fn create_join_token_with(
    data_dir: &Path,
    ttl: Duration,
    max_uses: Option<u32>,
) -> anyhow::Result<(JoinToken, JoinTokenRecord)> {
    create_join_token_in(data_dir, &StoreUrl::Sqlite, ttl, max_uses)
}

/// [`create_join_token_with`] on the store at `url` (with PostgreSQL, signed by the CA
/// every coordinator of it shares).
pub fn create_join_token_in(
    data_dir: &Path,
    url: &StoreUrl,
    ttl: Duration,
    max_uses: Option<u32>,
) -> anyhow::Result<(JoinToken, JoinTokenRecord)> {
    files::private_dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let opened = url.open(data_dir)?;
    let ca = match &opened.shared {
        Some(shared) => shared_ca_blocking(data_dir, shared)?,
        None => CertificateAuthority::load_or_create(data_dir)?,
    };
    let store = opened.store;
    let created_at = chrono::Utc::now();
    let expires_at = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| created_at.checked_add_signed(ttl))
        .context("the token lifetime is too long")?;
    // Ids are a prefix of the secret's hash: a clash is astronomically rare, but cheap to
    // step around.
    let mut clash = None;
    for _ in 0..4 {
        let token = JoinToken::generate(&ca);
        let new = NewJoinToken {
            secret_hash: token.secret_hash(),
            created_at,
            expires_at: Some(expires_at),
            max_uses,
        };
        match store.add_join_token(&new) {
            Ok(record) => return Ok((token, record)),
            Err(e @ StoreError::Conflict(_)) => clash = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(clash.map_or_else(|| anyhow::anyhow!("no join token created"), Into::into))
}

/// [`crate::ha::certificate_authority`] for a command line tool (no runtime running).
fn shared_ca_blocking(
    data_dir: &Path,
    shared: &Arc<crate::store::postgres::PostgresStore>,
) -> anyhow::Result<CertificateAuthority> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(crate::ha::certificate_authority(data_dir, Some(shared)))
}
