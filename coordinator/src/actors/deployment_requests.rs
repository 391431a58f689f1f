//! How the cluster actor answers deployment requests (create, show, list, change, rebuild,
//! delete, endpoints).

use super::cluster::ClusterActor;
use super::messages::{ApiError, ApiReply, DeploymentRequest, DeploymentView, Scope};
use crate::core::deployment::Deployment;
use crate::core::deployments::DeploymentError;
use gpuspot_common::DeploymentId;

fn deployment_error(error: DeploymentError) -> ApiError {
    match error {
        DeploymentError::Unknown(_) => ApiError::NotFound(error.to_string()),
        DeploymentError::NotAReplicaSet => ApiError::Conflict(error.to_string()),
    }
}

impl ClusterActor {
    fn visible_deployment(
        &self,
        scope: &Scope,
        id: &DeploymentId,
    ) -> Result<&Deployment, ApiError> {
        self.core
            .deployment(id)
            .filter(|d| scope.may_see(&d.account_id))
            .ok_or_else(|| ApiError::NotFound(format!("deployment {id}")))
    }

    fn deployment_view(
        &self,
        id: &DeploymentId,
        moved: Option<usize>,
    ) -> Result<DeploymentView, ApiError> {
        let mut deployment = self.visible_deployment(&Scope::Admin, id)?.clone();
        // A crash-loop countdown reads as of now, not as of the crash.
        deployment.reason = deployment.reason_at(self.clock.now());
        let instances = self.core.deployment_instances(id).into_iter().cloned().collect();
        Ok(DeploymentView { deployment, instances, moved })
    }

    pub(super) fn read_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> Option<Result<ApiReply, ApiError>> {
        Some(match request {
            DeploymentRequest::Get { scope, id } => self
                .visible_deployment(scope, id)
                .and_then(|d| self.deployment_view(&d.id, None))
                .map(|v| ApiReply::Deployment(Box::new(v))),
            DeploymentRequest::List { scope } => {
                let mut list: Vec<&Deployment> =
                    self.core.deployments().filter(|d| scope.may_see(&d.account_id)).collect();
                list.sort_by_key(|d| d.seq);
                list.iter()
                    .map(|d| self.deployment_view(&d.id, None))
                    .collect::<Result<_, _>>()
                    .map(ApiReply::Deployments)
            }
            DeploymentRequest::Endpoints { scope, id } => {
                self.visible_deployment(scope, id).map(|_| {
                    let endpoints = self
                        .core
                        .endpoints(id)
                        .into_iter()
                        .map(|i| {
                            let hostname = i
                                .host_id
                                .as_ref()
                                .and_then(|h| self.core.registry().get(h))
                                .map(|h| h.hostname.clone());
                            (i.clone(), hostname)
                        })
                        .collect();
                    ApiReply::Endpoints(endpoints)
                })
            }
            _ => return None,
        })
    }

    pub(super) fn write_deployment(
        &mut self,
        request: DeploymentRequest,
    ) -> Result<ApiReply, ApiError> {
        let now = self.clock.now();
        let (id, moved) = match request {
            DeploymentRequest::Create { account, new } => {
                let Some(owner) = self.core.account(&account) else {
                    return Err(ApiError::NotFound(format!("account {account}")));
                };
                if !self.core.may_start(&owner.id) {
                    return Err(ApiError::PaymentRequired(format!(
                        "account {account} is overdue: pay to start new work"
                    )));
                }
                (self.core.create_deployment(account, new, now), None)
            }
            DeploymentRequest::Change { scope, id, replicas, specs, template } => {
                self.visible_deployment(&scope, &id)?;
                self.core
                    .change_deployment(&id, replicas, specs, template, now)
                    .map_err(deployment_error)?;
                (id, None)
            }
            DeploymentRequest::Rebuild { scope, id } => {
                self.visible_deployment(&scope, &id)?;
                let moved = self.core.rebuild_deployment(&id, now).map_err(deployment_error)?;
                (id, Some(moved))
            }
            DeploymentRequest::Delete { scope, id } => {
                self.visible_deployment(&scope, &id)?;
                self.core.delete_deployment(&id, now).map_err(deployment_error)?;
                (id, None)
            }
            other => unreachable!("{other:?} is answered by read_deployment()"),
        };
        self.deployment_view(&id, moved).map(|v| ApiReply::Deployment(Box::new(v)))
    }
}
