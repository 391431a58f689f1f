//! The assignment of each running workload, kept in its instance dir (`assignment.json`,
//! root's 0600: it holds the user's environment) so that a restarted agent can take the
//! workload back with everything the coordinator gave for it: metadata, kill timeout,
//! snapshot plan, log offset. Written when the command starts, removed with the data dir
//! once the instance is over.

use gpuspot_common::protocol::Assignment;
use std::path::Path;

const FILE: &str = "assignment.json";

/// Writes the record atomically; a failure only costs the workload its adoption (logged).
pub(super) fn save(instance_dir: &Path, assignment: &Assignment) {
    if let Err(error) = write(instance_dir, assignment) {
        tracing::warn!(instance = %assignment.instance_id, %error,
            "cannot record the assignment; a restarted agent will not adopt this workload");
    }
}

fn write(instance_dir: &Path, assignment: &Assignment) -> std::io::Result<()> {
    crate::state_file::save_json(instance_dir, FILE, assignment)
}

pub(super) fn load(instance_dir: &Path) -> Option<Assignment> {
    crate::state_file::load_json(instance_dir, FILE)
}

pub(super) fn remove(instance_dir: &Path) {
    let _ = std::fs::remove_file(instance_dir.join(FILE));
}
