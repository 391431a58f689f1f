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
use crate::client::{Answer, Client};
use crate::output;

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
    /// `answer` as the server sent it with `-o json`, else as `human` prints its body.
    pub fn show<T>(&self, answer: &Answer<T>, human: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json() {
            output::print_json(&answer.sent)
        } else {
            human(&answer.body);
            Ok(())
        }
    }
}
