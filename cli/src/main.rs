//! `gpuspot`: the user's command line over the coordinator's HTTP API (docs/contracts.md#http-api,
//! #commands), and `gpuspot dev`, a coordinator with simulated hosts in one process.
//!
//! Exit codes: 0 success, 1 an API or connection error, 2 a mistake in the command line.

mod args;
mod chart;
mod client;
mod commands;
mod deployment_request;
mod deployment_update;
mod dev;
mod dev_ports;
mod errors;
mod failover;
mod manpages;
mod output;
mod request;
mod sse;

use args::{Cli, Command};
use clap::Parser;
use client::Client;
use commands::Ctx;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `gpuspot … | head`: a closed pipe ends the process quietly, as for any Unix tool,
    // instead of a panic in println! (Rust ignores SIGPIPE by default).
    // SAFETY: restoring a signal's default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // One rustls provider for the whole process (docs/architecture.md#dependencies); an error only
    // means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", errors::render(&err));
            ExitCode::from(errors::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let token = cli.token.or_else(|| std::env::var("GPUSPOT_ADMIN_TOKEN").ok());
    let api = cli.api;
    let output = if cli.json { args::Output::Json } else { cli.output };
    let ctx =
        || -> anyhow::Result<Ctx> { Ok(Ctx { client: Client::new(&api, token.clone())?, output }) };
    match cli.command {
        Command::Dev(dev_args) => dev::run(dev_args),
        Command::Instances(cmd) => commands::instances::run(&ctx()?, cmd),
        Command::Hosts(hosts) => commands::hosts::run(&ctx()?, hosts.cmd),
        Command::Pools(pools) => commands::pools::run(&ctx()?, pools.cmd),
        Command::Events(events) => commands::events::run(&ctx()?, &events),
        Command::Accounts(cmd) => commands::accounts::run(&ctx()?, cmd),
        Command::Whoami => commands::accounts::whoami(&ctx()?),
        Command::Deployments(cmd) => commands::deployments::run(&ctx()?, cmd),
        Command::Messages(args) => commands::messages::run(&ctx()?, &args),
        Command::Snapshots(args) => commands::snapshots::run(&ctx()?, args.cmd),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "gpuspot", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => {
            let command = <Cli as clap::CommandFactory>::command();
            match dir {
                Some(dir) => {
                    let written = manpages::write_all(command, &dir)?;
                    println!("wrote {} pages to {}", written.len(), dir.display());
                }
                None => manpages::print_top(command)?,
            }
            Ok(())
        }
    }
}
