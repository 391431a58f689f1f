//! One module per API noun; each turns a parsed subcommand into API calls and prints the
//! answer (a table or `key: value` lines, or the raw JSON with `--json`).

pub mod accounts;
pub mod deployments;
pub mod events;
pub mod exec;
pub mod hosts;
pub mod instances;
pub mod interrupt;
pub mod lookup;
pub mod messages;
pub mod pools;
pub mod snapshots;
pub mod wait;

use crate::args::Output;
use crate::client::Client;
use crate::output;
use serde_json::Value;

/// What every command needs: the API client and the output choice.
pub struct Ctx {
    pub client: Client,
    pub output: Output,
}

impl Ctx {
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// `-o wide`: tables with more columns.
    pub fn wide(&self) -> bool {
        self.output == Output::Wide
    }

    /// Prints `value` as pretty JSON with `-o json`, or through `human` otherwise.
    pub fn emit(&self, value: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
        if self.json() {
            output::print_json(value)
        } else {
            human(value);
            Ok(())
        }
    }
}
