//! A deployment's state as checked transitions, like an instance's lifecycle: created
//! waiting; waiting ↔ running while it lives (with the reason it shows); live → completed,
//! failed or deleted, after which it never changes again.

use super::{Deployment, DeploymentState, NewDeployment};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId};

/// A transition the deployment's state does not allow; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} deployment cannot {transition}")]
pub struct WrongDeploymentState {
    pub from: DeploymentState,
    pub transition: &'static str,
}

impl Deployment {
    /// A new deployment as created: waiting, nothing run yet.
    pub fn new(
        id: DeploymentId,
        account: AccountId,
        new: NewDeployment,
        now: DateTime<Utc>,
        seq: u64,
    ) -> Self {
        let name = if new.name.is_empty() { id.to_string() } else { new.name };
        Self {
            id,
            account_id: account,
            name,
            mode: new.mode,
            replicas: new.replicas,
            completions: new.completions,
            parallelism: new.parallelism,
            retry_limit: new.retry_limit,
            specs: new.specs,
            template: new.template,
            state: DeploymentState::Waiting,
            reason: Some("starting".into()),
            succeeded: 0,
            failed: 0,
            restarts: 0,
            crash_loop: Default::default(),
            created_at: now,
            seq,
            stopped_by_deployment: Default::default(),
            autoscaling: new.autoscaling,
            schedule: new.schedule,
            scaling: Default::default(),
            ended_at: None,
        }
    }

    pub fn state(&self) -> DeploymentState {
        self.state
    }

    /// Live → waiting (with why) or running; returns whether anything shown changed.
    pub(crate) fn progress(
        &mut self,
        running: bool,
        reason: Option<String>,
    ) -> Result<bool, WrongDeploymentState> {
        self.check_live("progress")?;
        let state = if running { DeploymentState::Running } else { DeploymentState::Waiting };
        let changed = self.state != state || self.reason != reason;
        (self.state, self.reason) = (state, reason);
        Ok(changed)
    }

    /// Live → `end` (completed, failed or deleted), with the reason it shows.
    pub(crate) fn end(
        &mut self,
        end: DeploymentState,
        reason: Option<String>,
    ) -> Result<(), WrongDeploymentState> {
        self.check_live("end")?;
        if !end.is_final() {
            return Err(WrongDeploymentState { from: self.state, transition: "end unfinished" });
        }
        (self.state, self.reason) = (end, reason);
        Ok(())
    }

    /// Whether [`Deployment::progress`] would leave what it shows as it is.
    pub(crate) fn shows(&self, running: bool, reason: &Option<String>) -> bool {
        let state = if running { DeploymentState::Running } else { DeploymentState::Waiting };
        self.state == state && &self.reason == reason
    }

    fn check_live(&self, transition: &'static str) -> Result<(), WrongDeploymentState> {
        match self.state.is_final() {
            false => Ok(()),
            true => Err(WrongDeploymentState { from: self.state, transition }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Mode;
    use crate::deployment_tests::{new, t};

    #[test]
    fn an_ended_deployment_never_changes_again() {
        let id = DeploymentId("d-1".into());
        let mut d = Deployment::new(id, "a-1".into(), new(Mode::Replicaset, 1, 0, 0), t(0), 1);
        assert_eq!(d.state(), DeploymentState::Waiting);
        assert_eq!(d.progress(true, None), Ok(true));
        assert_eq!(d.progress(true, None), Ok(false), "nothing shown changed");
        let unfinished = d.end(DeploymentState::Running, None).unwrap_err();
        assert_eq!(unfinished.transition, "end unfinished");
        d.end(DeploymentState::Deleted, None).unwrap();
        let wrong = WrongDeploymentState { from: DeploymentState::Deleted, transition: "end" };
        assert_eq!(d.end(DeploymentState::Failed, Some("x".into())), Err(wrong));
        assert!(d.progress(false, Some("starting".into())).is_err());
        assert_eq!((d.state(), d.reason.clone()), (DeploymentState::Deleted, None));
    }
}
