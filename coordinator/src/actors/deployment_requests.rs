//! How the cluster actor answers deployment requests (create, show, list, change, rebuild,
//! delete, endpoints).

use super::cluster::ClusterActor;
use super::failure::{Failure, Missing};
use super::messages::{DeploymentRequest, DeploymentView, Endpoint, Scope};
use super::reply::Deferred;
use crate::core::deployment::{Deployment, DeploymentSpec, Template};
use crate::core::deployments::NewDeployment;
use crate::core::error::DeploymentError;
use gpuspot_common::{AccountId, DeploymentId};

impl ClusterActor {
    /// Like `answer`, for deployments: reads at once, writes after their commit.
    pub(super) fn answer_deployment(&mut self, request: DeploymentRequest) -> Option<Deferred> {
        use DeploymentRequest as Ask;
        match request {
            Ask::Get { scope, id, reply } => reply.send(
                self.visible_deployment(&scope, &id)
                    .and_then(|d| self.deployment_view(&d.id, None)),
            ),
            Ask::List { scope, reply } => reply.send(self.deployments_of(&scope)),
            Ask::Endpoints { scope, id, reply } => reply.send(self.endpoints(&scope, &id)),
            Ask::Create { account, new, reply } => {
                return Some(reply.after_commit(self.create_deployment(account, new)));
            }
            Ask::Change { scope, id, replicas, specs, template, reply } => {
                let changed = self.change_deployment(&scope, id, replicas, specs, template);
                return Some(reply.after_commit(changed));
            }
            Ask::Rebuild { scope, id, reply } => {
                return Some(reply.after_commit(self.rebuild_deployment(&scope, id)));
            }
            Ask::Delete { scope, id, reply } => {
                return Some(reply.after_commit(self.delete_deployment(&scope, id)));
            }
        }
        None
    }

    fn visible_deployment(&self, scope: &Scope, id: &DeploymentId) -> Result<&Deployment, Failure> {
        self.core
            .deployment(id)
            .filter(|d| scope.may_see(&d.account_id))
            .ok_or_else(|| Failure::NotFound(Missing::Deployment(id.clone())))
    }

    fn deployment_view(
        &self,
        id: &DeploymentId,
        moved: Option<usize>,
    ) -> Result<DeploymentView, Failure> {
        let mut deployment = self.visible_deployment(&Scope::Admin, id)?.clone();
        // A crash-loop countdown reads as of now, not as of the crash.
        deployment.reason = deployment.reason_at(self.clock.now());
        let instances = self.core.deployment_instances(id).into_iter().cloned().collect();
        Ok(DeploymentView { deployment, instances, moved })
    }

    fn deployments_of(&self, scope: &Scope) -> Result<Vec<DeploymentView>, Failure> {
        let mut list: Vec<&Deployment> =
            self.core.deployments().filter(|d| scope.may_see(&d.account_id)).collect();
        list.sort_by_key(|d| d.seq);
        list.iter().map(|d| self.deployment_view(&d.id, None)).collect()
    }

    fn endpoints(&self, scope: &Scope, id: &DeploymentId) -> Result<Vec<Endpoint>, Failure> {
        self.visible_deployment(scope, id)?;
        let endpoints = self.core.endpoints(id).into_iter().map(|(instance, info)| {
            let hostname = instance
                .host_id()
                .and_then(|h| self.core.registry().get(h))
                .map(|h| h.hostname.clone());
            Endpoint { instance: instance.clone(), hostname, info }
        });
        Ok(endpoints.collect())
    }

    /// Refuses an unknown or overdue owner.
    fn create_deployment(
        &mut self,
        account: AccountId,
        new: NewDeployment,
    ) -> Result<DeploymentView, Failure> {
        let Some(owner) = self.core.account(&account) else {
            return Err(Failure::NotFound(Missing::Account(account)));
        };
        if !self.core.may_start(&owner.id) {
            return Err(Failure::OverdueForDeployments(account));
        }
        if self.core.name_held_by_another(&account, &new.name) {
            return Err(DeploymentError::NameTaken(new.name).into());
        }
        let id = self.core.create_deployment(account, new, self.clock.now());
        self.deployment_view(&id, None)
    }

    fn change_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
        replicas: Option<u32>,
        specs: Option<Vec<DeploymentSpec>>,
        template: Option<Template>,
    ) -> Result<DeploymentView, Failure> {
        self.visible_deployment(scope, &id)?;
        self.core.change_deployment(&id, replicas, specs, template, self.clock.now())?;
        self.deployment_view(&id, None)
    }

    /// Answers how many replicas moved back to spot.
    fn rebuild_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
    ) -> Result<DeploymentView, Failure> {
        self.visible_deployment(scope, &id)?;
        let moved = self.core.rebuild_deployment(&id, self.clock.now())?;
        self.deployment_view(&id, Some(moved))
    }

    fn delete_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
    ) -> Result<DeploymentView, Failure> {
        self.visible_deployment(scope, &id)?;
        self.core.delete_deployment(&id, self.clock.now())?;
        self.deployment_view(&id, None)
    }
}
