//! `gpuspot-coordinator token create|list|revoke`: join tokens, straight on the store (the
//! SQLite file in the data dir, or the shared PostgreSQL), so they work whether or not the
//! coordinator is running.

use super::TokenAction;
use crate::store::Store;
use crate::store::credentials::{JoinTokenRecord, show_time};
use crate::store::url::StoreUrl;
use anyhow::{Context as _, bail};
use chrono::Utc;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn run(data_dir: &Path, store: &StoreUrl, action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create { ttl, uses } => create(data_dir, store, ttl, uses),
        TokenAction::List { json } => list(&open(data_dir, store)?, json),
        TokenAction::Revoke { id } => revoke(&open(data_dir, store)?, &id),
    }
}

/// A `--ttl`: a humantime duration longer than zero.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(ttl) if ttl.is_zero() => Err("a token must live longer than 0s".into()),
        Ok(ttl) => Ok(ttl),
        Err(e) => Err(format!("{e} (examples: 30m, 24h, 7d)")),
    }
}

/// The token alone on stdout (scripts read its first line); what it allows on stderr.
/// Single use unless `--uses N`: a token that leaks admits no more hosts than it was made for.
fn create(data_dir: &Path, store: &StoreUrl, ttl: Duration, uses: u32) -> anyhow::Result<()> {
    let (token, record) = crate::server::create_join_token_in(data_dir, store, ttl, Some(uses))?;
    println!("{token}");
    let expires = record.expires_at.map_or_else(|| "never".to_owned(), show_time);
    eprintln!(
        "join token {}: expires {expires} (in {}), {}",
        record.id,
        humantime::format_duration(ttl),
        match uses {
            1 => "1 host may join with it".to_owned(),
            n => format!("{n} hosts may join with it"),
        }
    );
    Ok(())
}

/// The existing store: listing or revoking must not create an empty one by mistake.
fn open(data_dir: &Path, store: &StoreUrl) -> anyhow::Result<Arc<dyn Store>> {
    if *store == StoreUrl::Sqlite && !data_dir.join("gpuspot.db").exists() {
        bail!("no coordinator state in {} (check --data-dir)", data_dir.display());
    }
    Ok(store.open(data_dir).with_context(|| format!("opening the store {store}"))?.store)
}

fn list(store: &Arc<dyn Store>, json: bool) -> anyhow::Result<()> {
    let tokens = store.join_tokens()?;
    let now = Utc::now();
    if json {
        let rows: Vec<serde_json::Value> = tokens.iter().map(|t| json_row(t, now)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    print!("{}", table(&tokens, now));
    Ok(())
}

fn json_row(token: &JoinTokenRecord, now: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "uses": token.uses,
        "max_uses": token.max_uses,
        "revoked_at": token.revoked_at,
        "state": token.state(now).as_str(),
    })
}

/// `ID  CREATED  EXPIRES  USES  STATE`, one token a line, columns aligned.
fn table(tokens: &[JoinTokenRecord], now: chrono::DateTime<Utc>) -> String {
    let mut rows = vec![["ID", "CREATED", "EXPIRES", "USES", "STATE"].map(str::to_owned)];
    for t in tokens {
        let max = t.max_uses.map_or_else(|| "unlimited".to_owned(), |m| m.to_string());
        rows.push([
            t.id.clone(),
            show_time(t.created_at),
            t.expires_at.map_or_else(|| "never".to_owned(), show_time),
            format!("{}/{max}", t.uses),
            t.state(now).as_str().to_owned(),
        ]);
    }
    let widths: Vec<usize> =
        (0..5).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn revoke(store: &Arc<dyn Store>, id: &str) -> anyhow::Result<()> {
    let id = id.trim().to_ascii_lowercase();
    let Some(before) = store.join_tokens()?.into_iter().find(|t| t.id == id) else {
        bail!("no join token {id} (see `gpuspot-coordinator token list`)");
    };
    if let Some(at) = before.revoked_at {
        println!("join token {id} was already revoked at {}", show_time(at));
        return Ok(());
    }
    store.revoke_join_token(&id, Utc::now())?;
    println!("revoked join token {id}: no new host can join with it (hosts that joined stay)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_table_shows_uses_against_the_limit_and_each_state() {
        let now = at("2026-05-01T12:00:00Z");
        let token = |id: &str, expires: &str, max: Option<u32>, uses: u32| JoinTokenRecord {
            id: id.into(),
            created_at: at("2026-05-01T00:00:00Z"),
            expires_at: Some(at(expires)),
            max_uses: max,
            uses,
            revoked_at: None,
        };
        let revoked = JoinTokenRecord {
            revoked_at: Some(now),
            ..token("jt-000000000004", "2026-05-02T00:00:00Z", None, 0)
        };
        let text = table(
            &[
                token("jt-000000000001", "2026-05-02T00:00:00Z", None, 2),
                token("jt-000000000002", "2026-05-01T11:00:00Z", None, 0),
                token("jt-000000000003", "2026-05-02T00:00:00Z", Some(1), 1),
                revoked,
            ],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].contains("2/unlimited") && lines[1].ends_with("active"), "{text}");
        assert!(lines[2].ends_with("expired"), "{text}");
        assert!(lines[3].contains("1/1") && lines[3].ends_with("used up"), "{text}");
        assert!(lines[4].ends_with("revoked"), "{text}");
    }

    #[test]
    fn a_ttl_is_a_positive_humantime_duration() {
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").unwrap_err().contains("24h"));
    }
}
