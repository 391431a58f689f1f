//! Which store a coordinator uses (`--store URL`, `[store] url`; docs/architecture.md):
//! `sqlite` (the default: `gpuspot.db` in the data dir) or
//! `postgres://USER[:PASS]@HOST:PORT/DB`, shared by standby coordinators.

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreError};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreUrl {
    #[default]
    Sqlite,
    Postgres(String),
}

/// An opened store; `shared` is set when other coordinators may use it too.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub shared: Option<Arc<PostgresStore>>,
}

impl StoreUrl {
    /// `sqlite`, or a `postgres://` / `postgresql://` URL; anything else is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sqlite") {
            return Ok(StoreUrl::Sqlite);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            text.parse::<::postgres::Config>().map_err(|e| format!("{}: {e}", redact(text)))?;
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        Err(format!(
            "{:?} is neither `sqlite` nor a postgres://USER@HOST:PORT/DB URL",
            redact(text)
        ))
    }

    /// Opens the store (SQLite in `data_dir`). Connecting to PostgreSQL blocks: call it
    /// from a blocking thread.
    pub fn open(&self, data_dir: &Path) -> Result<Opened, StoreError> {
        match self {
            StoreUrl::Sqlite => {
                Ok(Opened { store: Arc::new(SqliteStore::open(data_dir)?), shared: None })
            }
            StoreUrl::Postgres(url) => {
                let store = Arc::new(PostgresStore::open(url)?);
                Ok(Opened { store: store.clone(), shared: Some(store) })
            }
        }
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite => f.write_str("sqlite"),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// The URL with its password replaced, for logs and messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_urls_parse_and_others_are_refused_without_the_password() {
        assert_eq!(StoreUrl::parse("sqlite"), Ok(StoreUrl::Sqlite));
        let url = "postgres://gpuspot:secret@127.0.0.1:5432/gpuspot";
        assert_eq!(StoreUrl::parse(url), Ok(StoreUrl::Postgres(url.into())));
        assert_eq!(
            StoreUrl::Postgres(url.into()).to_string(),
            "postgres://gpuspot:***@127.0.0.1:5432/gpuspot"
        );
        let refused = StoreUrl::parse("mysql://root:secret@db/x").unwrap_err();
        assert!(refused.contains("neither") && !refused.contains("secret"), "{refused}");
    }
}
