//! `gpuspot-coordinator migrate --from DATA_DIR --to postgres://…` (docs/architecture.md,
//! PostgreSQL store): copies a stopped SQLite installation, row for row, into an empty
//! PostgreSQL database in one transaction, with its CA, so that hosts that joined it keep
//! their certificates. A database that holds state already is refused: two clouds are not
//! merged.

use super::StoreError;
use super::postgres::PostgresStore;
use anyhow::{Context as _, bail};
use postgres::types::ToSql;
use rusqlite::types::Value;
use std::path::Path;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
}

use Kind::{Bool, Int, Text};

/// Every table with its columns, in SQLite's names and PostgreSQL's types.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("hosts", &[("id", Text), ("body", Text)]),
    (
        "instances",
        &[("id", Text), ("seq", Int), ("state", Text), ("account_id", Text), ("body", Text)],
    ),
    (
        "events",
        &[
            ("id", Int),
            ("at", Text),
            ("kind", Text),
            ("account_id", Text),
            ("instance_id", Text),
            ("body", Text),
        ],
    ),
    ("price_history", &[("model", Text), ("at", Int), ("price", Int)]),
    ("snapshots", &[("id", Text), ("body", Text)]),
    ("deployments", &[("id", Text), ("body", Text)]),
    ("accounts", &[("id", Text), ("body", Text)]),
    ("ledger", &[("id", Int), ("account_id", Text), ("instance_id", Text), ("body", Text)]),
    (
        "join_tokens",
        &[
            ("hash", Text),
            ("created_at", Text),
            ("expires_at", Text),
            ("max_uses", Int),
            ("uses", Int),
            ("revoked_at", Text),
        ],
    ),
    (
        "host_certificates",
        &[("fingerprint", Text), ("host_id", Text), ("created_at", Text), ("revoked_at", Text)],
    ),
    (
        "messages",
        &[
            ("id", Text),
            ("account_id", Text),
            ("event_id", Int),
            ("is_read", Bool),
            ("mail_state", Text),
            ("attempts", Int),
            ("next_attempt_ms", Int),
            ("mail_error", Text),
            ("mailed_at", Text),
            ("body", Text),
        ],
    ),
];

/// One SQLite value as the PostgreSQL parameter of its column.
fn param(value: Value, kind: Kind) -> Result<Box<dyn ToSql + Sync>, String> {
    Ok(match (value, kind) {
        (Value::Null, Text) => Box::new(None::<String>),
        (Value::Null, Int) => Box::new(None::<i64>),
        (Value::Null, Bool) => Box::new(None::<bool>),
        (Value::Text(t), Text) => Box::new(t),
        (Value::Integer(i), Int) => Box::new(i),
        (Value::Integer(i), Bool) => Box::new(i != 0),
        (other, _) => return Err(format!("unexpected value {other:?}")),
    })
}

/// Copies the installation in `from` into the empty database at `to`; prints what it copied.
pub fn run(from: &Path, to: &str) -> anyhow::Result<()> {
    let db = from.join("gpuspot.db");
    if !db.is_file() {
        bail!("no coordinator database at {} (is --from the data dir?)", db.display());
    }
    // Opening migrates an older SQLite schema to the current one first.
    drop(super::sqlite::SqliteStore::open(from)?);
    let sqlite =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let target =
        PostgresStore::open(to).with_context(|| format!("opening {}", super::url::redact(to)))?;
    let (cert, key) = (
        std::fs::read_to_string(from.join("ca.pem")),
        std::fs::read_to_string(from.join("ca.key")),
    );
    let mut copied = Vec::new();
    target.with_transaction(|tx| {
        let holds: i64 = tx
            .query_one("SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM instances) + (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM hosts)", &[])?
            .get(0);
        if holds > 0 {
            return Err(StoreError::Conflict("the PostgreSQL database holds coordinator state already: migrate into an empty one".into()));
        }
        for (table, columns) in TABLES {
            copied.push((*table, copy_table(&sqlite, tx, table, columns)?));
        }
        if let (Ok(cert), Ok(key)) = (&cert, &key) {
            tx.execute("INSERT INTO certificate_authority (id, cert_pem, key_pem) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET cert_pem = $1, key_pem = $2", &[cert, key])?;
        }
        Ok(())
    })?;
    for (table, rows) in copied {
        eprintln!("{table}: {rows} rows");
    }
    eprintln!("copied {} into {}", from.display(), super::url::redact(to));
    Ok(())
}

fn copy_table(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[(&str, Kind)],
) -> Result<u64, StoreError> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let insert = tx.prepare(&format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    ))?;
    let mut select =
        sqlite.prepare(&format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", ")))?;
    let mut rows = select.query([])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        let mut params = Vec::with_capacity(columns.len());
        for (i, (name, kind)) in columns.iter().enumerate() {
            let value = param(row.get::<_, Value>(i)?, *kind)
                .map_err(|e| StoreError::Corrupt(format!("{table}.{name}"), e))?;
            params.push(value);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        tx.execute(&insert, &refs)?;
        count += 1;
    }
    Ok(count)
}
