//! Crash-loop backoff for replica sets (docs/contracts.md#deployments). A replica that ends on its
//! own (any exit code: a replica is meant to keep running) or fails is a crash; its replacement
//! waits `crash_backoff`, doubling with each crash in a row up to `crash_backoff_max`, and a run
//! that lasted `crash_reset_after` starts the count afresh. Notices, losses and stops are not
//! crashes: those replicas are replaced at once. The count and the next start time live in the
//! deployment record, so a coordinator restart keeps the backoff; an ordered index of waits lets
//! the cluster's periodic tick start each replacement at its time.

use crate::deployment::{Deployment, Deployments};
use crate::instance::Instance;
use crate::model::EndReason;
use chrono::{DateTime, Utc};
use gpuspot_common::DeploymentId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// `[deployments] crash_backoff`, `crash_backoff_max`, `crash_reset_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashBackoff {
    /// The wait after the first crash in a row.
    pub base: Duration,
    /// The longest wait, however many crashes.
    pub max: Duration,
    /// A run at least this long was good: the next crash counts as the first again.
    pub reset_after: Duration,
}

impl Default for CrashBackoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl CrashBackoff {
    /// The wait before replacing the `crashes`-th crash in a row (1 is the first).
    pub fn delay(&self, crashes: u32) -> Duration {
        let doublings = crashes.saturating_sub(1).min(31);
        self.base.checked_mul(1 << doublings).map_or(self.max, |d| d.min(self.max))
    }
}

/// What a deployment remembers of its crashes (stored with it; absent in older records).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashLoop {
    /// Crashes in a row, none after a good run.
    pub consecutive: u32,
    /// Crashed runs not replaced yet.
    pub unreplaced: u32,
    /// How the last crash ended, for the reason ("exit code 1").
    pub cause: Option<String>,
    /// No replacement starts before this.
    pub next_start_at: Option<DateTime<Utc>>,
}

impl CrashLoop {
    /// Counts a crash at `now` of a run that lasted `ran`; returns when its replacement may
    /// start.
    pub fn crashed(
        &mut self,
        cause: String,
        ran: Duration,
        backoff: &CrashBackoff,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        if ran >= backoff.reset_after {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        self.unreplaced = self.unreplaced.saturating_add(1);
        self.cause = Some(cause);
        let delay = chrono::Duration::from_std(backoff.delay(self.consecutive)).ok();
        let at = delay.and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.next_start_at = Some(at);
        at
    }

    /// Whether replacements must still wait at `now`.
    pub fn waiting(&self, now: DateTime<Utc>) -> bool {
        self.next_start_at.is_some_and(|at| at > now)
    }

    /// The deployment's reason while it waits: `crash_loop: exit code 1, next start in 40s`
    /// (seconds rounded up, so a wait never reads as over before it is).
    pub fn reason(&self, now: DateTime<Utc>) -> Option<String> {
        let at = self.next_start_at.filter(|at| *at > now)?;
        let seconds = ((at - now).num_milliseconds() + 999) / 1000;
        let cause = self.cause.as_deref().unwrap_or("crashed");
        Some(format!("crash_loop: {cause}, next start in {seconds}s"))
    }
}

impl Deployment {
    /// The reason as of `now`: a crash-loop countdown is recomputed, anything else is as
    /// the last reconcile left it.
    pub fn reason_at(&self, now: DateTime<Utc>) -> Option<String> {
        let counting_down = self.reason.as_deref().is_some_and(|r| r.starts_with("crash_loop:"));
        match self.crash_loop.reason(now) {
            Some(reason) if counting_down => Some(reason),
            _ => self.reason.clone(),
        }
    }
}

/// How a replica's run ended, when that was a crash. A run that had a notice was already
/// replaced when the notice came, so however it ends it is not a crash.
pub fn crash_cause(instance: &Instance) -> Option<String> {
    if instance.termination_time().is_some() {
        return None;
    }
    match instance.termination_reason()? {
        EndReason::Exited => Some(match instance.exit_code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".into(),
        }),
        EndReason::Failed => Some(instance.reason().unwrap_or("failed").to_owned()),
        _ => None,
    }
}

/// The cluster's part: the settings, and the deployments waiting to replace crashed
/// replicas, ordered by when they may.
#[derive(Debug, Default)]
pub struct CrashRestarts {
    backoff: CrashBackoff,
    due: BTreeSet<(DateTime<Utc>, DeploymentId)>,
}

impl CrashRestarts {
    pub(crate) fn set_backoff(&mut self, backoff: CrashBackoff) {
        self.backoff = backoff;
    }

    /// When the first waiting replacement may start.
    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Indexes a restored deployment's wait.
    pub fn restored(&mut self, d: &Deployment) {
        if let Some(at) = d.crash_loop.next_start_at {
            self.due.insert((at, d.id.clone()));
        }
    }
}

impl Deployments {
    pub(crate) fn replica_crashed(
        &mut self,
        id: &DeploymentId,
        ran: Duration,
        cause: String,
        now: DateTime<Utc>,
    ) {
        let Some(d) = self.by_id.get_mut(id) else { return };
        d.failed = d.failed.saturating_add(1);
        let restarts = &mut self.crash_restarts;
        if let Some(old) = d.crash_loop.next_start_at {
            restarts.due.remove(&(old, id.clone()));
        }
        let at = d.crash_loop.crashed(cause, ran, &restarts.backoff, now);
        restarts.due.insert((at, id.clone()));
        self.dirty.insert(id.clone());
    }

    pub(crate) fn take_due_restarts(&mut self, now: DateTime<Utc>) -> Vec<DeploymentId> {
        let mut due = Vec::new();
        while let Some((at, id)) = self.crash_restarts.due.first().cloned() {
            if at > now {
                break;
            }
            self.crash_restarts.due.remove(&(at, id.clone()));
            due.push(id);
        }
        due
    }

    /// New conditions (template or specs) get a fresh start: the crashes were the old ones'.
    pub(crate) fn forget_crashes(&mut self, id: &DeploymentId) {
        let Some(d) = self.by_id.get_mut(id) else { return };
        if let Some(old) = d.crash_loop.next_start_at {
            self.crash_restarts.due.remove(&(old, id.clone()));
        }
        d.crash_loop = CrashLoop::default();
        self.dirty.insert(id.clone());
    }

    /// After a reconcile started `started` of the `gap` missing replicas: the ones that
    /// replace crashed runs count as restarts, and a wait that is over is cleared.
    pub(crate) fn count_restarts(
        &mut self,
        id: &DeploymentId,
        started: u32,
        gap: u32,
        now: DateTime<Utc>,
    ) {
        let Some(d) = self.by_id.get_mut(id) else { return };
        let before = (d.restarts, d.crash_loop.clone());
        let restarted = started.min(d.crash_loop.unreplaced);
        d.restarts = d.restarts.saturating_add(restarted);
        // Scaled down meanwhile: crashed runs beyond the gap will not be replaced.
        d.crash_loop.unreplaced = (d.crash_loop.unreplaced - restarted).min(gap - started);
        if !d.crash_loop.waiting(now) {
            d.crash_loop.next_start_at = None;
        }
        if before != (d.restarts, d.crash_loop.clone()) {
            self.dirty.insert(id.clone());
        }
    }
}
