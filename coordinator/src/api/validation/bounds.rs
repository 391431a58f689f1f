//! Size caps on what a body lists and says (docs/contracts.md#limits, "bounded work per request"):
//! no request may cost the coordinator more than linear work in its own size, once, so every list,
//! map and free-form string in a body has a bound here, and a problem quotes at most a short prefix
//! of what it refuses. Bytes of `env` and `command` are counted as the kernel counts them for a
//! program's start: each string with its terminating NUL (`NAME=value` for the environment), so the
//! caps also bound how many entries there are.

use super::Problems;
use crate::core::placement::models::{MAX_MODEL_CHARS, MAX_MODELS};
use std::collections::BTreeMap;

/// `env` in all: names, values, `=` and NULs.
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// `command` in all: every argument and its NUL.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// An instance's or a deployment's name.
pub const MAX_NAME_CHARS: usize = 63;
/// Specs of one deployment (each new instance tries them in order).
pub const MAX_SPECS: usize = 16;
/// Entries of a replica set's `schedule`, and the length of each `cron`.
pub const MAX_SCHEDULE: usize = 32;
pub const MAX_CRON_CHARS: usize = 128;
/// `snapshot.restore_from`: a snapshot id.
pub const MAX_SNAPSHOT_ID_CHARS: usize = 64;
/// How much of a refused value a problem quotes.
const QUOTED_CHARS: usize = 64;

/// `text` as a problem may quote it: at most [`QUOTED_CHARS`] characters, then `…`.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// `gpu.models` before it is read: at most [`MAX_MODELS`] entries (repeats count, so one
/// model listed 20,000 times is refused at once) of at most [`MAX_MODEL_CHARS`] characters.
/// False when the list is too long to look at further.
pub fn models(at: &str, models: &[String], problems: &mut Problems) -> bool {
    if models.len() > MAX_MODELS {
        problems.add(format!(
            "{at}gpu.models may list at most {MAX_MODELS} GPU models, not {}",
            models.len()
        ));
        return false;
    }
    for (i, model) in models.iter().enumerate() {
        let chars = model.chars().count();
        if chars > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
            problems.add(format!(
                "{at}gpu.models[{i}] must be at most {MAX_MODEL_CHARS} characters without \
                 control characters, not {} ({chars} characters)",
                quoted(model)
            ));
        }
    }
    true
}

/// `env`: names `[A-Za-z_][A-Za-z0-9_]*`, values without NUL, [`MAX_ENV_BYTES`] in all.
/// Only the first bad name is quoted; the rest are counted.
pub fn env(at: &str, env: &BTreeMap<String, String>, problems: &mut Problems) {
    let bytes: usize = env.iter().map(|(name, value)| name.len() + value.len() + 2).sum();
    if bytes > MAX_ENV_BYTES {
        problems.add(format!(
            "{at}env must be at most {MAX_ENV_BYTES} bytes in all (names and values), not {bytes}"
        ));
    }
    let bad: Vec<&String> = env.keys().filter(|name| !is_env_name(name)).collect();
    if let Some(first) = bad.first() {
        let more = match bad.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        problems.add(format!(
            "{at}env name {}{more} must be letters, digits and '_', not starting with a digit",
            quoted(first)
        ));
    }
    if let Some((name, _)) = env.iter().find(|(_, value)| value.contains('\0')) {
        problems.add(format!("{at}env {} must not contain a NUL byte", quoted(name)));
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `command`: [`MAX_COMMAND_BYTES`] in all, no NUL in an argument.
pub fn command(at: &str, command: &[String], problems: &mut Problems) {
    let bytes: usize = command.iter().map(|arg| arg.len() + 1).sum();
    if bytes > MAX_COMMAND_BYTES {
        problems.add(format!(
            "{at}command must be at most {MAX_COMMAND_BYTES} bytes in all, not {bytes}"
        ));
    }
    if let Some(i) = command.iter().position(|arg| arg.contains('\0')) {
        problems.add(format!("{at}command[{i}] must not contain a NUL byte"));
    }
}

/// An instance's name: at most [`MAX_NAME_CHARS`] characters, none of them control
/// characters (it is shown in lists and logs); empty is no name.
pub fn instance_name(name: &str, problems: &mut Problems) {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        problems.add(format!(
            "name must be at most {MAX_NAME_CHARS} characters without control characters, \
             not {}",
            quoted(name)
        ));
    }
}

/// `snapshot.restore_from`, a snapshot id.
pub fn snapshot_id(at: &str, id: Option<&str>, problems: &mut Problems) {
    if let Some(id) = id.filter(|id| id.chars().count() > MAX_SNAPSHOT_ID_CHARS) {
        problems.add(format!(
            "{at}snapshot.restore_from must be a snapshot id (at most {MAX_SNAPSHOT_ID_CHARS} \
             characters), not {}",
            quoted(id)
        ));
    }
}

/// A replica set's `schedule` before its entries are parsed. False when it is too long.
pub fn schedule(crons: &[&str], problems: &mut Problems) -> bool {
    if crons.len() > MAX_SCHEDULE {
        problems
            .add(format!("schedule may list at most {MAX_SCHEDULE} entries, not {}", crons.len()));
        return false;
    }
    let mut fine = true;
    for (i, cron) in crons.iter().enumerate().filter(|(_, c)| c.len() > MAX_CRON_CHARS) {
        problems.add(format!(
            "schedule[{i}].cron must be at most {MAX_CRON_CHARS} characters, not {}",
            quoted(cron)
        ));
        fine = false;
    }
    fine
}
