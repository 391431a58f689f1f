//! How the cluster actor answers API requests: reads straight from the core state, writes
//! through the core and then the store (the answer waits for the commit, see `cluster`).
//! Accounts are in `account_requests`, deployments in `deployment_requests`, lists in
//! `lists`.

use super::cluster::ClusterActor;
use super::failure::{Failure, Missing};
use super::messages::{ApiRequest, PoolView, Scope, Stats};
use super::reply::Deferred;
use crate::core::billing::Account;
use crate::core::{Host, Instance, InstanceRequest, pools};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::{AccountId, HostId, InstanceId};
use std::collections::BTreeMap;

impl ClusterActor {
    /// Answers `request`: a read at once (`None`); a write is carried out and its answer
    /// returned, to be sent once the commit is durable.
    pub(super) fn answer(&mut self, request: ApiRequest) -> Option<Deferred> {
        use ApiRequest as Ask;
        match request {
            Ask::GetInstance { scope, id, reply } => reply.send(self.visible(&scope, &id).cloned()),
            Ask::ListInstances { scope, listing, reply } => {
                reply.send(self.instances_page(&scope, &listing))
            }
            Ask::ListHosts { listing, reply } => reply.send(self.hosts_page(&listing)),
            Ask::GetHost { id, reply } => reply.send(self.host(&id).cloned()),
            Ask::Pools { reply } => reply.send(Ok(self.pool_views())),
            Ask::KnownModel { model, reply } => reply.send(Ok(self.known_model(&model))),
            Ask::GetAccount { scope, id, reply } => reply.send(self.account_view(&scope, &id)),
            Ask::ListAccounts { listing, reply } => reply.send(self.accounts_page(&listing)),
            Ask::ListSnapshots { scope, listing, reply } => {
                reply.send(self.snapshots_page(&scope, &listing))
            }
            Ask::Stats { reply } => reply.send(Ok(self.stats())),
            Ask::Deployment(request) => return self.answer_deployment(request),
            Ask::CreateInstance { account, request, reply } => {
                return Some(reply.after_commit(self.create_instance(account, request)));
            }
            Ask::DeleteInstance { scope, id, reply } => {
                return Some(reply.after_commit(self.delete_instance(&scope, id)));
            }
            Ask::ChangeInstance { scope, id, name, env, resize, reply } => {
                let changed = self.change_instance(&scope, id, name, env, resize);
                return Some(reply.after_commit(changed));
            }
            Ask::CreateAccount { new, reply } => {
                return Some(reply.after_commit(self.create_account(new)));
            }
            Ask::Pay { scope, id, amount, reply } => {
                return Some(reply.after_commit(self.pay(&scope, id, amount)));
            }
            Ask::RotateToken { scope, id, token_hash, reply } => {
                return Some(reply.after_commit(self.rotate_token(&scope, id, token_hash)));
            }
            Ask::ChangeAccount { scope, id, change, reply } => {
                return Some(reply.after_commit(self.change_account(&scope, id, change)));
            }
            Ask::DeleteHost { id, reply } => return Some(reply.after_commit(self.delete_host(id))),
            Ask::HostMaintenance { id, action, reply } => {
                return Some(reply.after_commit(self.host_maintenance(id, action)));
            }
        }
        None
    }

    pub(super) fn visible(&self, scope: &Scope, id: &InstanceId) -> Result<&Instance, Failure> {
        self.core
            .instance(id)
            .filter(|i| scope.may_see(&i.account_id))
            .ok_or_else(|| Failure::NotFound(Missing::Instance(id.clone())))
    }

    /// The account `key` names in `scope`: its id, or its name (an account token's own
    /// account's, or for the admin the one account of that name). Another account's name
    /// answers as a name nobody has.
    pub(super) fn visible_account(
        &self,
        scope: &Scope,
        key: &AccountId,
    ) -> Result<&Account, Failure> {
        if let Some(account) = self.core.account(key).filter(|a| scope.may_see(&a.id)) {
            return Ok(account);
        }
        let by_name: Vec<&Account> = match scope {
            Scope::Account(own) => {
                self.core.account(own).filter(|a| a.name == key.as_str()).into_iter().collect()
            }
            Scope::Admin => self.core.accounts().filter(|a| a.name == key.as_str()).collect(),
        };
        match by_name.as_slice() {
            [] => Err(Failure::NotFound(Missing::Account(key.clone()))),
            [one] => Ok(one),
            // Names are not unique: only the admin sees several, and must give an id.
            many => Err(Failure::AmbiguousAccountName {
                name: key.to_string(),
                ids: many.iter().map(|a| a.id.clone()).collect(),
            }),
        }
    }

    fn host(&self, id: &HostId) -> Result<&Host, Failure> {
        self.core.registry().get(id).ok_or_else(|| Failure::NotFound(Missing::Host(id.clone())))
    }

    fn stats(&self) -> Stats {
        let mut stats = Stats {
            pools: self.pool_views(),
            deployments: self.core.live_deployments().count(),
            accounts: self.core.accounts().count(),
            ..Default::default()
        };
        let now = self.now;
        for host in self.core.registry().iter() {
            *stats.hosts_by_state.entry(host.shown_state()).or_default() += 1;
            if host.state() != crate::core::HostState::Lost {
                let age = (now - host.last_seen).num_milliseconds().max(0) as f64 / 1000.0;
                stats.heartbeat_ages.push((host.id.to_string(), age));
            }
        }
        for instance in self.core.instances() {
            *stats.instances_by_state.entry(instance.state().as_str()).or_default() += 1;
            if instance.state() == crate::core::model::InstanceState::Queued {
                for pool in &stats.pools {
                    let models = &instance.request.gpu.models;
                    if models.iter().any(|m| model_matches(m, &pool.settings.model)) {
                        *stats.queued_by_pool.entry(pool.settings.model.clone()).or_default() += 1;
                    }
                }
            }
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

    /// The core admits it or says why not (`core::admission`).
    fn create_instance(
        &mut self,
        account: AccountId,
        request: InstanceRequest,
    ) -> Result<Instance, Failure> {
        let id = self.core.create_instance(account, request, self.now)?;
        self.visible(&Scope::Admin, &id).cloned()
    }

    /// Answers with the instance as it is after the DELETE, or as it was when the DELETE
    /// forgot it (a request that never ran).
    fn delete_instance(&mut self, scope: &Scope, id: InstanceId) -> Result<Instance, Failure> {
        let before = self.visible(scope, &id)?.clone();
        self.core.delete_instance(&id, self.now)?;
        Ok(self.visible(&Scope::Admin, &id).cloned().unwrap_or(before))
    }

    fn change_instance(
        &mut self,
        scope: &Scope,
        id: InstanceId,
        name: Option<String>,
        env: Option<BTreeMap<String, String>>,
        resize: bool,
    ) -> Result<Instance, Failure> {
        self.visible(scope, &id)?;
        self.core.change_instance(&id, name, env, resize, self.now)?;
        self.visible(&Scope::Admin, &id).cloned()
    }
}
