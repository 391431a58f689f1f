//! Join tokens and host certificates in PostgreSQL. The rules (expired, used up, revoked)
//! are [`crate::store::credentials`]'s; a join locks its token's row, so concurrent joins
//! on any coordinator take turns and two can never both pass a limit of one.

use super::super::StoreError;
use super::super::credentials::{
    CertificateRecord, JoinRefusal, JoinTokenRecord, NewCertificate, NewJoinToken, time, token_id,
};
use chrono::{DateTime, Utc};
use gpuspot_common::HostId;
use postgres::{GenericClient, Row};

const COLUMNS: &str = "hash, created_at, expires_at, max_uses, uses, revoked_at";

fn token_row(row: &Row) -> Result<JoinTokenRecord, StoreError> {
    let hash: &str = row.get(0);
    let clamp = |n: i64| n.clamp(0, u32::MAX.into()) as u32;
    Ok(JoinTokenRecord {
        id: token_id(hash),
        created_at: time("created_at", Some(row.get(1)))?.unwrap_or_default(),
        expires_at: time("expires_at", row.get(2))?,
        max_uses: row.get::<_, Option<i64>>(3).map(clamp),
        uses: clamp(row.get(4)),
        revoked_at: time("revoked_at", row.get(5))?,
    })
}

fn tokens_where(
    client: &mut impl GenericClient,
    filter: &str,
    arg: Option<&str>,
) -> Result<Vec<JoinTokenRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM join_tokens {filter} ORDER BY created_at, seq");
    let rows = match arg {
        Some(arg) => client.query(&sql, &[&arg])?,
        None => client.query(&sql, &[])?,
    };
    rows.iter().map(token_row).collect()
}

fn by_id(client: &mut impl GenericClient, id: &str) -> Result<Option<JoinTokenRecord>, StoreError> {
    let id = id.trim().to_ascii_lowercase();
    let prefix = id.strip_prefix("jt-").unwrap_or(&id).to_owned();
    let found = tokens_where(client, "WHERE substr(hash, 1, 12) = $1", Some(&prefix))?;
    Ok(found.into_iter().find(|t| t.id == format!("jt-{prefix}")))
}

pub fn add(
    client: &mut impl GenericClient,
    token: &NewJoinToken,
) -> Result<JoinTokenRecord, StoreError> {
    let id = token_id(&token.secret_hash);
    if by_id(client, &id)?.is_some() {
        return Err(StoreError::Conflict(format!("a join token with id {id} exists already")));
    }
    client.execute(
        "INSERT INTO join_tokens (hash, created_at, expires_at, max_uses, uses) \
         VALUES ($1, $2, $3, $4, 0)",
        &[
            &token.secret_hash,
            &token.created_at.to_rfc3339(),
            &token.expires_at.map(|t| t.to_rfc3339()),
            &token.max_uses.map(i64::from),
        ],
    )?;
    Ok(JoinTokenRecord {
        id,
        created_at: token.created_at,
        expires_at: token.expires_at,
        max_uses: token.max_uses,
        uses: 0,
        revoked_at: None,
    })
}

pub fn list(client: &mut impl GenericClient) -> Result<Vec<JoinTokenRecord>, StoreError> {
    tokens_where(client, "", None)
}

pub fn revoke(
    client: &mut impl GenericClient,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<JoinTokenRecord>, StoreError> {
    let Some(token) = by_id(client, id)? else { return Ok(None) };
    let prefix = token.id.trim_start_matches("jt-");
    client.execute(
        "UPDATE join_tokens SET revoked_at = $2 WHERE substr(hash, 1, 12) = $1 AND revoked_at IS NULL",
        &[&prefix, &now.to_rfc3339()],
    )?;
    by_id(client, &token.id)
}

pub fn redeem(
    client: &mut postgres::Client,
    secret_hash: &str,
    certificate: &NewCertificate,
) -> Result<Result<JoinTokenRecord, JoinRefusal>, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT 1 FROM join_tokens WHERE hash = $1 FOR UPDATE", &[&secret_hash])?;
    let found = tokens_where(&mut tx, "WHERE hash = $1", Some(secret_hash))?;
    let Some(mut token) = found.into_iter().next() else {
        return Ok(Err(JoinRefusal::Unknown));
    };
    if let Some(refusal) = token.refusal(certificate.at) {
        return Ok(Err(refusal));
    }
    tx.execute("UPDATE join_tokens SET uses = uses + 1 WHERE hash = $1", &[&secret_hash])?;
    tx.execute(
        "INSERT INTO host_certificates (fingerprint, host_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (fingerprint) DO UPDATE SET host_id = $2, created_at = $3, revoked_at = NULL",
        &[&certificate.fingerprint, &certificate.host_id.as_str(), &certificate.at.to_rfc3339()],
    )?;
    tx.commit()?;
    token.uses += 1;
    Ok(Ok(token))
}

pub fn certificate(
    client: &mut impl GenericClient,
    fingerprint: &str,
) -> Result<Option<CertificateRecord>, StoreError> {
    let row = client.query_opt(
        "SELECT host_id, revoked_at FROM host_certificates WHERE fingerprint = $1",
        &[&fingerprint],
    )?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CertificateRecord {
        host_id: HostId(row.get(0)),
        revoked_at: time("certificate revoked_at", row.get(1))?,
    }))
}
