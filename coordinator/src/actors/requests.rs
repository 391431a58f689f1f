//! How the cluster actor answers API requests: reads straight from the core state, writes
//! through the core and then the store (the reply waits for the commit, see `cluster`).

use super::cluster::ClusterActor;
use super::messages::{ApiError, ApiReply, ApiRequest, PoolView, Scope};
use crate::core::accounts::AccountError;
use crate::core::billing::Account;
use crate::core::lifecycle::LifecycleError;
use crate::core::{Instance, pools};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::{AccountId, InstanceId};

impl ClusterActor {
    fn visible(&self, scope: &Scope, id: &InstanceId) -> Result<&Instance, ApiError> {
        self.core
            .instance(id)
            .filter(|i| scope.may_see(&i.account_id))
            .ok_or_else(|| ApiError::NotFound(format!("instance {id}")))
    }

    fn visible_account(&self, scope: &Scope, id: &AccountId) -> Result<&Account, ApiError> {
        self.core
            .account(id)
            .filter(|a| scope.may_see(&a.id))
            .ok_or_else(|| ApiError::NotFound(format!("account {id}")))
    }

    /// Answers requests that only read; `None` for the ones that change state.
    pub(super) fn read(&self, request: &ApiRequest) -> Option<Result<ApiReply, ApiError>> {
        Some(match request {
            ApiRequest::GetInstance { scope, id } => {
                self.visible(scope, id).map(|i| ApiReply::Instance(Box::new(i.clone())))
            }
            ApiRequest::ListInstances { scope } => {
                let mut list: Vec<Instance> = self
                    .core
                    .instances()
                    .filter(|i| scope.may_see(&i.account_id))
                    .cloned()
                    .collect();
                list.sort_by_key(|i| i.seq);
                Ok(ApiReply::Instances(list))
            }
            ApiRequest::ListHosts => {
                Ok(ApiReply::Hosts(self.core.registry().iter().cloned().collect()))
            }
            ApiRequest::GetHost { id } => self
                .core
                .registry()
                .get(id)
                .map(|h| ApiReply::Host(Box::new(h.clone())))
                .ok_or_else(|| ApiError::NotFound(format!("host {id}"))),
            ApiRequest::Pools => Ok(ApiReply::Pools(self.pool_views())),
            ApiRequest::KnownModel { model } => Ok(ApiReply::Known(self.known_model(model))),
            ApiRequest::GetAccount { scope, id } => {
                self.visible_account(scope, id).map(|a| ApiReply::Account(Box::new(a.clone())))
            }
            ApiRequest::ListSnapshots { scope } => {
                let mut list: Vec<_> = self
                    .core
                    .snapshots()
                    .filter(|s| scope.may_see(&s.account_id))
                    .cloned()
                    .collect();
                list.sort_by_key(|s| s.created_at);
                Ok(ApiReply::Snapshots(list))
            }
            ApiRequest::Stats => Ok(ApiReply::Stats(Box::new(self.stats()))),
            ApiRequest::ListAccounts => {
                Ok(ApiReply::Accounts(self.core.accounts().cloned().collect()))
            }
            ApiRequest::Deployment(request) => return self.read_deployment(request),
            ApiRequest::CreateInstance { .. }
            | ApiRequest::DeleteInstance { .. }
            | ApiRequest::ChangeInstance { .. }
            | ApiRequest::CreateAccount { .. }
            | ApiRequest::Pay { .. }
            | ApiRequest::RotateToken { .. }
            | ApiRequest::ChangeAccount { .. }
            | ApiRequest::DeleteHost { .. } => return None,
        })
    }

    fn stats(&self) -> super::messages::Stats {
        let mut stats = super::messages::Stats {
            pools: self.pool_views(),
            deployments: self.core.deployments().filter(|d| !d.state.is_final()).count(),
            accounts: self.core.accounts().count(),
            ..Default::default()
        };
        for host in self.core.registry().iter() {
            let state = match host.state {
                crate::core::HostState::Connected => "connected",
                crate::core::HostState::Disconnected => "disconnected",
                crate::core::HostState::Lost => "lost",
            };
            *stats.hosts_by_state.entry(state).or_default() += 1;
        }
        for instance in self.core.instances() {
            *stats.instances_by_state.entry(instance.state.as_str()).or_default() += 1;
        }
        stats
    }

    fn known_model(&self, model: &str) -> bool {
        self.core
            .pools()
            .iter()
            .any(|p| model_matches(model, &p.model) || model_matches(&p.model, model))
            || self
                .core
                .registry()
                .iter()
                .any(|h| h.units.iter().any(|u| model_matches(model, &u.unit.gpu.model)))
    }

    fn pool_views(&self) -> Vec<PoolView> {
        self.core
            .pools()
            .iter()
            .map(|settings| {
                let usage = pools::usage(self.core.registry(), &settings.model);
                let market_price = self
                    .core
                    .market_price(&settings.model)
                    .unwrap_or_else(|| pools::surplus_price(settings, &usage));
                PoolView { settings: settings.clone(), usage, market_price }
            })
            .collect()
    }

    pub(super) fn write(&mut self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let now = self.clock.now();
        let id = match request {
            ApiRequest::CreateInstance { account, request } => {
                let Some(owner) = self.core.account(&account) else {
                    return Err(ApiError::NotFound(format!("account {account}")));
                };
                if owner.disabled {
                    return Err(ApiError::Forbidden(format!("account {account} is disabled")));
                }
                if !self.core.may_start(&owner.id) {
                    return Err(ApiError::PaymentRequired(format!(
                        "account {account} is overdue (balance {}): pay to start new instances",
                        owner.balance
                    )));
                }
                if let Some(snapshot) = &request.snapshot.restore_from
                    && self.core.snapshot(snapshot).is_none_or(|s| s.account_id != account)
                {
                    return Err(ApiError::NotFound(format!("snapshot {snapshot}")));
                }
                self.core.create_instance(account, request, now)
            }
            ApiRequest::DeleteInstance { scope, id } => {
                self.visible(&scope, &id)?;
                self.core.delete_instance(&id, now).map_err(lifecycle_error)?;
                id
            }
            ApiRequest::ChangeInstance { scope, id, name, env, resize } => {
                self.visible(&scope, &id)?;
                self.core.change_instance(&id, name, env, resize, now).map_err(lifecycle_error)?;
                id
            }
            other => return self.write_account(other),
        };
        self.visible(&Scope::Admin, &id).map(|i| ApiReply::Instance(Box::new(i.clone())))
    }

    fn write_account(&mut self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let now = self.clock.now();
        match request {
            ApiRequest::CreateAccount { name, token_hash, webhook_url } => {
                let id = self.core.create_account(name, token_hash, webhook_url, now);
                self.visible_account(&Scope::Admin, &id)
                    .map(|a| ApiReply::Account(Box::new(a.clone())))
            }
            ApiRequest::Pay { scope, id, amount } => {
                self.visible_account(&scope, &id)?;
                let entry = self.core.pay(&id, amount, now).map_err(account_error)?;
                let account = self.visible_account(&Scope::Admin, &id)?.clone();
                Ok(ApiReply::Payment(Box::new(entry), Box::new(account)))
            }
            ApiRequest::RotateToken { scope, id, token_hash } => {
                self.visible_account(&scope, &id)?;
                self.core.rotate_token(&id, token_hash, now).map_err(account_error)?;
                self.visible_account(&scope, &id).map(|a| ApiReply::Account(Box::new(a.clone())))
            }
            ApiRequest::ChangeAccount { id, disabled } => {
                self.visible_account(&Scope::Admin, &id)?;
                if id.as_str() == crate::core::accounts::OPERATOR {
                    return Err(ApiError::Conflict(
                        "the operator account cannot be changed".into(),
                    ));
                }
                if let Some(disabled) = disabled {
                    self.core.set_disabled(&id, disabled, now).map_err(account_error)?;
                }
                self.visible_account(&Scope::Admin, &id)
                    .map(|a| ApiReply::Account(Box::new(a.clone())))
            }
            ApiRequest::Deployment(request) => self.write_deployment(request),
            ApiRequest::DeleteHost { id } => self.delete_host(id),
            other => unreachable!("{other:?} is answered by read()"),
        }
    }
}

fn account_error(error: AccountError) -> ApiError {
    match error {
        AccountError::Unknown(_) => ApiError::NotFound(error.to_string()),
        AccountError::NonPositivePayment | AccountError::Overflow(_) => {
            ApiError::BadRequest(error.to_string())
        }
        AccountError::Disabled(_) => ApiError::Forbidden(error.to_string()),
    }
}

fn lifecycle_error(error: LifecycleError) -> ApiError {
    match error {
        LifecycleError::UnknownInstance(_) => ApiError::NotFound(error.to_string()),
        LifecycleError::SpotIsFixed | LifecycleError::SizeIsFixed => {
            ApiError::Conflict(error.to_string())
        }
    }
}
