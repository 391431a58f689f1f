//! `gpuspot accounts …` arguments: the verbs and quota limits.

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// List accounts (admin).
    #[command(alias = "ls")]
    List,
    /// Create an account (admin); prints its id and token.
    Create {
        name: String,
        /// Where the account's notices are mailed.
        #[arg(long)]
        email: Option<String>,
        /// Where the account's events are POSTed as JSON (http or https).
        #[arg(long, value_name = "URL")]
        webhook_url: Option<String>,
    },
    /// Set or clear (`--url ""`) the URL an account's events are POSTed to (admin).
    SetWebhook {
        id: String,
        #[arg(long, value_name = "URL")]
        url: String,
    },
    /// Set an account's quota (admin): the most GPUs and instances it may hold at once,
    /// queued ones included; `none` for no limit.
    Quota(QuotaArgs),
    /// Set or clear (`--email ""`) the address an account's notices are mailed to.
    SetEmail {
        id: String,
        #[arg(long)]
        email: String,
    },
    /// Show an account's balance and overdue state.
    Show { id: String },
    /// Record a payment (admin), e.g. `gpuspot accounts pay ID 10.00`.
    Pay { id: String, amount: String },
    /// An account's ledger.
    Ledger { id: String },
    /// Issue a new token for an account; the old one stops working at once.
    RotateToken { id: String },
    /// Disable an account (admin): its token is refused and its instances terminated.
    Disable { id: String },
    /// Enable a disabled account again (admin).
    Enable { id: String },
}

/// `gpuspot accounts quota NAME --max-gpus N|none --max-instances N|none | --default`
#[derive(Args, Debug)]
pub struct QuotaArgs {
    pub id: String,
    /// The most GPUs at once, or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_limit)]
    pub max_gpus: Option<Limit>,
    /// The most instances at once, or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_limit)]
    pub max_instances: Option<Limit>,
    /// Go back to the coordinator's default quota.
    #[arg(long, conflicts_with_all = ["max_gpus", "max_instances"])]
    pub default: bool,
}

/// A quota limit: a count, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    At(u32),
    Unlimited,
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    match text.trim() {
        "none" | "unlimited" => Ok(Limit::Unlimited),
        n => n.parse().map(Limit::At).map_err(|_| format!("{text:?} is not a count or none")),
    }
}
