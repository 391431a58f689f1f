//! How the cluster actor answers deployment requests (create, show, list, change, rebuild,
//! delete, endpoints).

use super::cluster::ClusterActor;
use super::failure::{Failure, Missing};
use super::messages::{DeploymentRequest, DeploymentView, Endpoint, Scope};
use super::reply::Deferred;
use crate::core::deployment::Deployment;
use crate::core::deployments::{DeploymentChange, NewDeployment};
use crate::core::error::DeploymentError;
use crate::core::listing::{Listing, Page, page};
use gpuspot_common::{AccountId, DeploymentId};
use std::collections::BTreeSet;

impl ClusterActor {
    /// Like `answer`, for deployments: reads at once, writes after their commit.
    pub(super) fn answer_deployment(&mut self, request: DeploymentRequest) -> Option<Deferred> {
        use DeploymentRequest as Ask;
        match request {
            Ask::Get { scope, id, reply } => reply.send(
                self.visible_deployment(&scope, &id)
                    .and_then(|d| self.deployment_view(&d.id, None)),
            ),
            Ask::List { scope, listing, reply } => {
                reply.send(self.deployments_page(&scope, &listing))
            }
            Ask::Endpoints { scope, id, reply } => reply.send(self.endpoints(&scope, &id)),
            Ask::Create { account, new, reply } => {
                return Some(reply.after_commit(self.create_deployment(account, new)));
            }
            Ask::Change { scope, id, change, reply } => {
                let changed = self.change_deployment(&scope, id, change);
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

    /// The deployment `key` names for `scope`: the one with that id, else the one with
    /// that name (whatever its case), as the CLI resolves names: the live one, else the
    /// newest ended. Another account's stay hidden; a name the caller sees on several
    /// accounts' deployments (the admin sees them all) is ambiguous, never a guess.
    fn visible_deployment(
        &self,
        scope: &Scope,
        key: &DeploymentId,
    ) -> Result<&Deployment, Failure> {
        let by_id = self.core.deployment(key).filter(|d| scope.may_see(&d.account_id));
        if let Some(deployment) = by_id {
            return Ok(deployment);
        }
        let named: Vec<&Deployment> =
            self.core.deployments_named(&key.0).filter(|d| scope.may_see(&d.account_id)).collect();
        let accounts: BTreeSet<&AccountId> = named.iter().map(|d| &d.account_id).collect();
        let live: Vec<&Deployment> =
            named.iter().copied().filter(|d| !d.state().is_final()).collect();
        if accounts.len() > 1 || live.len() > 1 {
            let ids = named.iter().map(|d| d.id.clone()).collect();
            return Err(DeploymentError::AmbiguousName { name: key.0.clone(), ids }.into());
        }
        live.first()
            .or(named.iter().max_by_key(|d| d.seq))
            .copied()
            .ok_or_else(|| Failure::NotFound(Missing::Deployment(key.clone())))
    }

    fn deployment_view(
        &self,
        id: &DeploymentId,
        moved: Option<usize>,
    ) -> Result<DeploymentView, Failure> {
        let mut deployment = self.visible_deployment(&Scope::Admin, id)?.clone();
        // A crash-loop countdown reads as of now, not as of the crash.
        deployment.reason = deployment.reason_at(self.now);
        let instances = self.core.deployment_instances(id).into_iter().cloned().collect();
        Ok(DeploymentView { deployment, instances, moved })
    }

    fn deployments_page(
        &self,
        scope: &Scope,
        listing: &Listing,
    ) -> Result<Page<DeploymentView>, Failure> {
        let visible = || self.core.deployments().filter(|d| scope.may_see(&d.account_id));
        let after = super::lists::cursor(listing, |id| {
            visible().find(|d| d.id.as_str() == id).map(|d| d.seq)
        })?;
        let shown = visible().filter(|d| listing.wants(d.state().as_str()));
        let found = page(shown, |d| d.seq, after, listing.limit);
        let views = found.items.iter().map(|d| self.deployment_view(&d.id, None));
        Ok(Page { items: views.collect::<Result<_, _>>()?, more: found.more })
    }

    fn endpoints(&self, scope: &Scope, key: &DeploymentId) -> Result<Vec<Endpoint>, Failure> {
        let id = &self.visible_deployment(scope, key)?.id;
        let endpoints = self.core.endpoints(id).into_iter().map(|(instance, info)| {
            let hostname = instance
                .host_id()
                .and_then(|h| self.core.registry().get(h))
                .map(|h| h.hostname.clone());
            Endpoint { instance: instance.clone(), hostname, info }
        });
        Ok(endpoints.collect())
    }

    /// The core admits it or says why not (`core::admission`).
    fn create_deployment(
        &mut self,
        account: AccountId,
        new: NewDeployment,
    ) -> Result<DeploymentView, Failure> {
        let id = self.core.create_deployment(account, new, self.now)?;
        self.deployment_view(&id, None)
    }

    fn change_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
        change: DeploymentChange,
    ) -> Result<DeploymentView, Failure> {
        let id = self.visible_deployment(scope, &id)?.id.clone();
        self.core.change_deployment(&id, change, self.now)?;
        self.deployment_view(&id, None)
    }

    /// Answers how many replicas moved back to spot.
    fn rebuild_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
    ) -> Result<DeploymentView, Failure> {
        let id = self.visible_deployment(scope, &id)?.id.clone();
        let moved = self.core.rebuild_deployment(&id, self.now)?;
        self.deployment_view(&id, Some(moved))
    }

    fn delete_deployment(
        &mut self,
        scope: &Scope,
        id: DeploymentId,
    ) -> Result<DeploymentView, Failure> {
        let id = self.visible_deployment(scope, &id)?.id.clone();
        self.core.delete_deployment(&id, self.now)?;
        self.deployment_view(&id, None)
    }
}
