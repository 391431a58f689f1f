//! How the cluster actor answers list requests: one page in creation order of what the
//! caller may see, in the states asked for, after the cursor (`core::listing`). The cursor
//! is looked up among everything the caller sees, whatever its state now, so a page
//! continues even when the item it ended on has changed state since.

use super::cluster::ClusterActor;
use super::failure::Failure;
use super::messages::{AccountView, Scope};
use crate::core::Host;
use crate::core::Instance;
use crate::core::listing::{Listing, Page, page};
use crate::core::snapshots::SnapshotRecord;
use chrono::{DateTime, Utc};
use gpuspot_common::InstanceId;

/// The key of `listing.after`, found by `find`; an id it does not find is refused.
pub(super) fn cursor<K>(
    listing: &Listing,
    find: impl FnOnce(&str) -> Option<K>,
) -> Result<Option<K>, Failure> {
    match &listing.after {
        None => Ok(None),
        Some(id) => find(id).map(Some).ok_or_else(|| Failure::UnknownCursor(id.clone())),
    }
}

impl ClusterActor {
    pub(super) fn instances_page(
        &self,
        scope: &Scope,
        listing: &Listing,
    ) -> Result<Page<Instance>, Failure> {
        let after = cursor(listing, |id| self.visible(scope, &InstanceId(id.to_owned())).ok())?
            .map(|i| i.seq);
        let shown = self
            .core
            .instances()
            .filter(|i| scope.may_see(&i.account_id) && listing.wants(i.state().as_str()));
        Ok(page(shown, |i| i.seq, after, listing.limit).map(Instance::clone))
    }

    pub(super) fn hosts_page(&self, listing: &Listing) -> Result<Page<Host>, Failure> {
        let key = |h: &&Host| (h.joined_at, h.id.to_string());
        let hosts = || self.core.registry().iter();
        let after = cursor(listing, |id| hosts().find(|h| h.id.as_str() == id).map(|h| key(&h)))?;
        let shown = hosts().filter(|h| listing.wants(h.shown_state()));
        Ok(page(shown, key, after, listing.limit).map(Host::clone))
    }

    pub(super) fn accounts_page(&self, listing: &Listing) -> Result<Page<AccountView>, Failure> {
        let key = |a: &&crate::core::billing::Account| (a.created_at, a.id.to_string());
        let after = cursor(listing, |id| {
            self.core.accounts().find(|a| a.id.as_str() == id).map(|a| key(&a))
        })?;
        let found = page(self.core.accounts(), key, after, listing.limit);
        let usage = self.core.usage_by_account();
        Ok(found.map(|account| AccountView {
            account: account.clone(),
            quota: self.core.quota(account),
            usage: usage.get(&account.id).copied().unwrap_or_default(),
        }))
    }

    pub(super) fn snapshots_page(
        &self,
        scope: &Scope,
        listing: &Listing,
    ) -> Result<Page<SnapshotRecord>, Failure> {
        let key = |s: &&SnapshotRecord| -> (DateTime<Utc>, String) {
            (s.created_at, s.snapshot.id.clone())
        };
        let visible = || self.core.snapshots().filter(|s| scope.may_see(&s.account_id));
        let after = cursor(listing, |id| visible().find(|s| s.snapshot.id == id).map(|s| key(&s)))?;
        Ok(page(visible(), key, after, listing.limit).map(SnapshotRecord::clone))
    }
}
