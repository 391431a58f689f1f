//! The PostgreSQL schema as versioned migrations (docs/architecture.md, PostgreSQL store):
//! each is applied once, in order, in one transaction that holds an advisory lock, so two
//! coordinators starting together never both migrate. A database migrated by a newer
//! version is refused rather than written with rows that version would misread.

use super::super::StoreError;
use postgres::Client;

/// Migrations in order; the version of entry `i` is `i + 1`. Never edit one that shipped:
/// add the next. Rows keep their indexable columns plus the same JSON body as SQLite's, and
/// times as RFC 3339 text in the "C" collation so that text order is time order.
const MIGRATIONS: &[&str] = &["
CREATE TABLE hosts (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE instances (
    id TEXT PRIMARY KEY, seq BIGINT NOT NULL, state TEXT NOT NULL,
    account_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE events (
    id BIGINT PRIMARY KEY, at TEXT COLLATE \"C\" NOT NULL, kind TEXT NOT NULL,
    account_id TEXT, instance_id TEXT, body TEXT NOT NULL);
CREATE INDEX events_by_account ON events (account_id, id);
CREATE INDEX events_by_at ON events (at);
CREATE TABLE price_history (model TEXT NOT NULL, at BIGINT NOT NULL, price BIGINT NOT NULL);
CREATE INDEX price_history_by_model ON price_history (model, at);
CREATE TABLE snapshots (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE deployments (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE accounts (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE ledger (
    id BIGINT PRIMARY KEY, account_id TEXT NOT NULL, instance_id TEXT, body TEXT NOT NULL);
CREATE INDEX ledger_by_account ON ledger (account_id, id);
CREATE TABLE join_tokens (
    hash TEXT COLLATE \"C\" PRIMARY KEY, seq BIGSERIAL, created_at TEXT COLLATE \"C\" NOT NULL,
    expires_at TEXT, max_uses BIGINT, uses BIGINT NOT NULL DEFAULT 0, revoked_at TEXT);
CREATE TABLE host_certificates (
    fingerprint TEXT PRIMARY KEY, host_id TEXT NOT NULL, created_at TEXT NOT NULL,
    revoked_at TEXT);
CREATE INDEX host_certificates_by_host ON host_certificates (host_id);
CREATE TABLE messages (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, event_id BIGINT NOT NULL,
    is_read BOOLEAN NOT NULL DEFAULT false, mail_state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0, next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    mail_error TEXT, mailed_at TEXT, body TEXT NOT NULL);
CREATE INDEX messages_by_account ON messages (account_id, event_id);
CREATE INDEX messages_by_event ON messages (event_id);
CREATE INDEX messages_to_mail ON messages (mail_state, next_attempt_ms);
CREATE TABLE certificate_authority (
    id INT PRIMARY KEY CHECK (id = 1), cert_pem TEXT NOT NULL, key_pem TEXT NOT NULL);
CREATE TABLE leader_lease (
    id INT PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, http_url TEXT NOT NULL, quic_addr TEXT NOT NULL);
INSERT INTO leader_lease VALUES (1, '', 0, '-infinity', '', '');
"];

/// Any fixed number: the lock that serialises migrations across coordinators.
const MIGRATION_LOCK: i64 = 0x6770_7573_706f_7401;

/// Brings the schema to the newest version this build knows.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let current: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?.get(0);
    let known = MIGRATIONS.len() as i32;
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(current as usize) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// The newest schema version this build knows (for tests).
pub const fn known_version() -> i32 {
    MIGRATIONS.len() as i32
}
