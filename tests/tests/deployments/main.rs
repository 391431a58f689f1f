//! Deployments and snapshots (docs/contracts.md#deployments, #snapshots, seeds 002, 003, 004): a
//! ReplicaSet that rides out a spot price rise on its regular fallback and `rebuild`s back to spot,
//! a Job that reaches exactly its completions while runs are reclaimed, seed 003's
//! checkpoint/resume training loop moving hosts through a snapshot, scaling and deleting, and a
//! crash loop held back by its backoff (docs/contracts.md#deployments).
//!
//! The scenarios live in `replica_sets`, `jobs` and `cli_file`; the tests are declared here,
//! under the names they have always had.

mod cli_file;
mod jobs;
mod replica_sets;

use std::time::Duration;

/// A long-lived workload that leaves its pid in its data dir.
const SLEEP: &str = "echo $$ > pid; exec sleep 120";

/// Hold 4 s + a price tick + notice + start-up, with room for a loaded machine.
const RECLAIM: Duration = Duration::from_secs(25);

#[test]
fn replicaset_rides_out_a_price_rise_on_regular_and_rebuilds_back_to_spot() {
    replica_sets::replicaset_rides_out_a_price_rise_on_regular_and_rebuilds_back_to_spot();
}

#[test]
fn job_reaches_exactly_its_completions_while_runs_are_reclaimed() {
    jobs::job_reaches_exactly_its_completions_while_runs_are_reclaimed();
}

#[test]
fn checkpointed_training_job_resumes_on_another_host_from_its_snapshot() {
    jobs::checkpointed_training_job_resumes_on_another_host_from_its_snapshot();
}

#[test]
fn scaling_takes_effect_at_once_and_delete_stops_every_replica() {
    replica_sets::scaling_takes_effect_at_once_and_delete_stops_every_replica();
}

#[test]
fn a_replica_that_keeps_crashing_is_restarted_with_a_growing_backoff_not_in_a_hot_loop() {
    replica_sets::a_replica_that_keeps_crashing_is_restarted_with_a_growing_backoff_not_in_a_hot_loop();
}

#[test]
fn cli_creates_scales_rebuilds_and_deletes_a_deployment() {
    cli_file::cli_creates_scales_rebuilds_and_deletes_a_deployment();
}
