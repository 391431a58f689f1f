//! Who may join and which host certificates are honoured (docs/contracts.md#tokens): join tokens
//! with their expiry, use count and revocation, and host certificates with their revocation. The
//! records and the refusals users read live here, with the SQL that keeps them, so the rules (what
//! "expired" or "used up" means) sit next to the rows they judge.

use super::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use gpuspot_common::HostId;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Columns added after the first release. Tables from before get them with `ALTER TABLE`;
/// their rows read NULL (no expiry, no use limit, not revoked) or 0 uses, so tokens and
/// certificates issued before the upgrade keep working exactly as they did.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("join_tokens", "expires_at", "TEXT"),
    ("join_tokens", "max_uses", "INTEGER"),
    ("join_tokens", "uses", "INTEGER NOT NULL DEFAULT 0"),
    ("join_tokens", "revoked_at", "TEXT"),
    ("host_certificates", "revoked_at", "TEXT"),
];

/// Adds the columns an older database lacks (idempotent).
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, decl) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let present = names.collect::<Result<Vec<_>, _>>()?.iter().any(|n| n == column);
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// The id users see for a token: `jt-` and the first 12 hex digits of its secret's hash.
/// Derived, not stored, so tokens from before ids existed have one too.
pub fn token_id(secret_hash: &str) -> String {
    format!("jt-{}", secret_hash.get(..12).unwrap_or(secret_hash))
}

/// A token to record: only the hash of its secret is kept.
#[derive(Clone, Debug)]
pub struct NewJoinToken {
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JoinTokenRecord {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    UsedUp,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::UsedUp => "used up",
            TokenState::Revoked => "revoked",
        }
    }
}

/// Why a join was refused, as the agent's operator reads it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("unknown join token (create one with `gpuspot-coordinator token create`)")]
    Unknown,
    #[error("join token {id} was revoked at {at}")]
    Revoked { id: String, at: String },
    #[error("join token {id} expired at {at}")]
    Expired { id: String, at: String },
    #[error("join token {id} has been used {uses} {} (its limit)", times(*.uses))]
    UsedUp { id: String, uses: u32 },
}

fn times(n: u32) -> &'static str {
    if n == 1 { "time" } else { "times" }
}

/// A time as users read it in messages and tables: RFC 3339, whole seconds, UTC.
pub fn show_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl JoinTokenRecord {
    /// Revocation wins over expiry, expiry over the use count: the most deliberate reason.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            TokenState::UsedUp
        } else {
            TokenState::Active
        }
    }

    /// Why a join with this token must be refused now; None while it is active.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<JoinRefusal> {
        let id = self.id.clone();
        match self.state(now) {
            TokenState::Active => None,
            TokenState::Revoked => {
                Some(JoinRefusal::Revoked { id, at: self.revoked_at.map(show_time)? })
            }
            TokenState::Expired => {
                Some(JoinRefusal::Expired { id, at: self.expires_at.map(show_time)? })
            }
            TokenState::UsedUp => Some(JoinRefusal::UsedUp { id, uses: self.uses }),
        }
    }
}

/// A host certificate the coordinator signed, and whether it still counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRecord {
    pub host_id: HostId,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The certificate a successful join hands out, recorded with the use of its token.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    pub fingerprint: String,
    pub host_id: HostId,
    pub at: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str = "hash, created_at, expires_at, max_uses, uses, revoked_at";

pub(super) fn time(what: &str, text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("join token {what} {t:?}"), e.to_string()))
    })
    .transpose()
}

fn token_row(row: &rusqlite::Row<'_>) -> Result<JoinTokenRecord, StoreError> {
    let hash: String = row.get(0)?;
    let created_at = time("created_at", Some(row.get(1)?))?.unwrap_or_default();
    Ok(JoinTokenRecord {
        id: token_id(&hash),
        created_at,
        expires_at: time("expires_at", row.get(2)?)?,
        max_uses: row.get::<_, Option<i64>>(3)?.map(|n| n.clamp(0, u32::MAX.into()) as u32),
        uses: row.get::<_, i64>(4)?.clamp(0, u32::MAX.into()) as u32,
        revoked_at: time("revoked_at", row.get(5)?)?,
    })
}

fn tokens_where(
    conn: &Connection,
    filter: &str,
    arg: Option<&str>,
) -> Result<Vec<JoinTokenRecord>, StoreError> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM join_tokens {filter} ORDER BY created_at, rowid");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = match arg {
        Some(arg) => stmt.query([arg])?,
        None => stmt.query([])?,
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(token_row(row)?);
    }
    Ok(out)
}

fn by_id(conn: &Connection, id: &str) -> Result<Vec<JoinTokenRecord>, StoreError> {
    let id = id.trim().to_ascii_lowercase();
    let prefix = id.strip_prefix("jt-").unwrap_or(&id).to_owned();
    tokens_where(conn, "WHERE substr(hash, 1, 12) = ?1", Some(&prefix))
        .map(|found| found.into_iter().filter(|t| t.id == format!("jt-{prefix}")).collect())
}

pub(super) fn add_token(
    conn: &Connection,
    token: &NewJoinToken,
) -> Result<JoinTokenRecord, StoreError> {
    let id = token_id(&token.secret_hash);
    if !by_id(conn, &id)?.is_empty() {
        return Err(StoreError::Conflict(format!("a join token with id {id} exists already")));
    }
    conn.execute(
        "INSERT INTO join_tokens (hash, created_at, expires_at, max_uses, uses) \
         VALUES (?1, ?2, ?3, ?4, 0)",
        params![
            token.secret_hash,
            token.created_at.to_rfc3339(),
            token.expires_at.map(|t| t.to_rfc3339()),
            token.max_uses.map(i64::from),
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

pub(super) fn list_tokens(conn: &Connection) -> Result<Vec<JoinTokenRecord>, StoreError> {
    tokens_where(conn, "", None)
}

/// Marks the token revoked (once: a second revoke keeps the first time).
pub(super) fn revoke_token(
    conn: &Connection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<JoinTokenRecord>, StoreError> {
    let Some(token) = by_id(conn, id)?.into_iter().next() else {
        return Ok(None);
    };
    let prefix = token.id.trim_start_matches("jt-");
    conn.execute(
        "UPDATE join_tokens SET revoked_at = ?2 \
         WHERE substr(hash, 1, 12) = ?1 AND revoked_at IS NULL",
        params![prefix, now.to_rfc3339()],
    )?;
    Ok(by_id(conn, &token.id)?.into_iter().next())
}

/// Counts one use of the token and records the host's certificate, in one immediate
/// transaction: SQLite's write lock makes concurrent joins (in this process or another)
/// take turns, so two joins can never both pass a limit of one.
pub(super) fn redeem(
    conn: &mut Connection,
    secret_hash: &str,
    certificate: &NewCertificate,
) -> Result<Result<JoinTokenRecord, JoinRefusal>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = tokens_where(&tx, "WHERE hash = ?1", Some(secret_hash))?.into_iter().next();
    let Some(mut token) = found else {
        return Ok(Err(JoinRefusal::Unknown));
    };
    if let Some(refusal) = token.refusal(certificate.at) {
        return Ok(Err(refusal));
    }
    tx.execute("UPDATE join_tokens SET uses = uses + 1 WHERE hash = ?1", [secret_hash])?;
    tx.execute(
        "INSERT OR REPLACE INTO host_certificates (fingerprint, host_id, created_at) \
         VALUES (?1, ?2, ?3)",
        params![certificate.fingerprint, certificate.host_id.as_str(), certificate.at.to_rfc3339()],
    )?;
    tx.commit()?;
    token.uses += 1;
    Ok(Ok(token))
}

pub(super) fn certificate(
    conn: &Connection,
    fingerprint: &str,
) -> Result<Option<CertificateRecord>, StoreError> {
    let row: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT host_id, revoked_at FROM host_certificates WHERE fingerprint = ?1",
            [fingerprint],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((host_id, revoked_at)) = row else {
        return Ok(None);
    };
    Ok(Some(CertificateRecord {
        host_id: HostId(host_id),
        revoked_at: time("certificate revoked_at", revoked_at)?,
    }))
}

/// Inside a batch: the host's rows go and its certificates stop counting. The certificate
/// rows stay, marked, so that its agent hears "revoked" rather than "unknown" (which would
/// make it join again with its token).
pub(super) fn forget_host(
    tx: &rusqlite::Transaction<'_>,
    host_id: &HostId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM hosts WHERE id = ?1")?.execute([host_id.as_str()])?;
    tx.prepare_cached(
        "UPDATE host_certificates SET revoked_at = ?2 WHERE host_id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![host_id.as_str(), at.to_rfc3339()])?;
    Ok(())
}
