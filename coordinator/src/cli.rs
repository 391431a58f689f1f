//! The `gpuspot-coordinator` command line: run the coordinator, manage join tokens
//! ([`tokens`]) or back up the database. Flags and `GPUSPOT_*` variables override the config file.

mod tokens;

use crate::config::{RawConfig, Settings};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "gpuspot-coordinator",
    version,
    about = "gpuspot coordinator: market, placement, lifecycle and the HTTP API"
)]
pub struct Args {
    /// Coordinator TOML config (timers, pools)
    #[arg(long, global = true, env = "GPUSPOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where state (SQLite, CA, logs) lives
    #[arg(long, global = true, env = "GPUSPOT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line)
    #[arg(long, global = true, env = "GPUSPOT_LOG_FORMAT", default_value = "text",
          value_parser = gpuspot_common::process::LOG_FORMATS)]
    pub log_format: String,
    /// HTTP API address
    #[arg(long, env = "GPUSPOT_HTTP")]
    pub http: Option<SocketAddr>,
    /// QUIC address agents connect to
    #[arg(long, env = "GPUSPOT_QUIC")]
    pub quic: Option<SocketAddr>,
    /// Where state lives: `sqlite` (in the data dir, the default) or
    /// `postgres://USER[:PASS]@HOST:PORT/DB`, shared by standby coordinators
    #[arg(long, global = true, env = "GPUSPOT_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The API URL standbys send clients to when this coordinator leads
    #[arg(long, env = "GPUSPOT_ADVERTISE_HTTP", value_name = "URL")]
    pub advertise_http: Option<String>,
    /// The QUIC address (HOST:PORT) standbys send agents to when this coordinator leads
    #[arg(long, env = "GPUSPOT_ADVERTISE_QUIC", value_name = "ADDR")]
    pub advertise_quic: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join tokens for agents
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Write a consistent copy of the database (safe while the coordinator runs)
    Backup {
        /// The new file (it must not exist)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Copy a SQLite installation into an empty PostgreSQL database (coordinator stopped)
    Migrate {
        /// The SQLite coordinator's data dir
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        /// postgres://USER[:PASS]@HOST:PORT/DB
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print a new join token (agents read it with --join-token-file PATH or from
    /// GPUSPOT_JOIN_TOKEN); its id, expiry and uses go to stderr
    Create {
        /// How long the token admits new hosts, e.g. 30m, 24h, 7d
        #[arg(long, default_value = "24h", value_parser = tokens::parse_ttl)]
        ttl: Duration,
        /// How many hosts may join with it (hosts that joined reconnect without it)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        uses: u32,
    },
    /// List join tokens: id, created, expires, uses/max and state
    #[command(alias = "ls")]
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a join token: no new host can join with it (hosts that joined stay)
    Revoke {
        /// The token's id, as `token list` shows it (jt-…)
        id: String,
    },
}

/// Config file, then flags and environment on top.
pub fn settings(args: &Args) -> anyhow::Result<Settings> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    raw.http = args.http.or(raw.http);
    raw.quic = args.quic.or(raw.quic);
    raw.data_dir = args.data_dir.clone().or(raw.data_dir);
    raw.store.url = args.store.clone().or(raw.store.url);
    raw.ha.advertise_http = args.advertise_http.clone().or(raw.ha.advertise_http);
    raw.ha.advertise_quic = args.advertise_quic.clone().or(raw.ha.advertise_quic);
    if let Ok(token) = std::env::var("GPUSPOT_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        raw.admin_token = Some(token.trim().to_owned());
    }
    Ok(raw.validate()?)
}

/// Entry point of the `gpuspot-coordinator` binary.
pub fn main() -> ExitCode {
    gpuspot_common::pki::install_crypto_provider();
    let args = Args::parse();
    gpuspot_common::process::init_tracing_as(&args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpuspot-coordinator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    match args.command {
        Some(Command::Token { action }) => {
            return tokens::run(&settings.data_dir, &settings.store, action);
        }
        Some(Command::Migrate { from, to }) => return crate::store::migrate::run(&from, &to),
        Some(Command::Backup { to }) => {
            let bytes = crate::store::backup::backup(&settings.data_dir, &to)?;
            eprintln!("backed up the database to {} ({bytes} bytes)", to.display());
            return Ok(());
        }
        None => {}
    }
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
    })
    .block_on(async move {
        let running = crate::server::start(settings).await?;
        println!(
            "gpuspot-coordinator: HTTP API on http://{}  QUIC on {}",
            running.http_addr, running.quic_addr
        );
        if running.admin_token_generated {
            println!("admin token (saved in the data dir): {}", running.admin_token);
        }
        tokio::select! {
            () = gpuspot_common::process::shutdown_signal() => {}
            () = running.deposed() => {
                // Nothing more commits (the fence refuses it): end at once, tearing nothing
                // down, and let the supervisor start this coordinator again as a standby.
                tracing::error!("another coordinator took the lead: stepping down");
                eprintln!("gpuspot-coordinator: another coordinator took the lead: stepping down");
                std::process::exit(1);
            }
        }
        tracing::info!("shutting down");
        running.stop().await;
        Ok(())
    })
}
