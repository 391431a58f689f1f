//! One module per API noun; each turns a parsed subcommand into API calls and prints the
//! answer (a table or `key: value` lines, or the raw JSON with `--json`).

pub mod accounts;
pub mod deployments;
pub mod events;
pub mod exec;
pub mod hosts;
pub mod instances;
pub mod lookup;
pub mod messages;
pub mod pools;

use crate::client::Client;
use crate::output;
use serde_json::Value;

/// What every command needs: the API client and the output choice.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
}

impl Ctx {
    /// Prints `value` as pretty JSON with `--json`, or through `human` otherwise.
    pub fn emit(&self, value: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
        if self.json {
            output::print_json(value)
        } else {
            human(value);
            Ok(())
        }
    }
}
