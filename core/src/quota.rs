//! What a quota is (docs/contracts.md#failures-and-quotas): the limits on what one account holds at
//! once, what it holds, and the admin's change of them. The cluster's side (what counts, which
//! quota applies, refusals) is [`super::quotas`].

use super::error::QuotaError;
use serde::{Deserialize, Deserializer, Serialize};

/// Limits on what an account holds at once; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default)]
    pub max_gpus: Option<u32>,
    #[serde(default)]
    pub max_instances: Option<u32>,
}

impl Quota {
    pub const UNLIMITED: Quota = Quota { max_gpus: None, max_instances: None };

    /// Whether holding `after` stays within the quota; the first limit it passes if not.
    pub fn admit(&self, after: Usage) -> Result<(), QuotaError> {
        if let Some(limit) = self.max_gpus
            && after.gpus > u64::from(limit)
        {
            return Err(QuotaError::Gpus { wanted: after.gpus, limit });
        }
        if let Some(limit) = self.max_instances
            && after.instances > u64::from(limit)
        {
            return Err(QuotaError::Instances { wanted: after.instances, limit });
        }
        Ok(())
    }
}

/// What an account holds now: its instances that count (not final, or failed and kept)
/// and their GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub gpus: u64,
    pub instances: u64,
}

impl Usage {
    /// This usage with `instances` more instances of `gpus_each` GPUs.
    pub fn plus(self, instances: u64, gpus_each: u32) -> Usage {
        Usage {
            gpus: self.gpus.saturating_add(instances.saturating_mul(u64::from(gpus_each))),
            instances: self.instances.saturating_add(instances),
        }
    }
}

/// The admin's PATCH of a quota: a number sets a limit, `null` clears it (no limit), an
/// absent key keeps the limit the account has now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaChange {
    #[serde(default, deserialize_with = "present")]
    pub max_gpus: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_instances: Option<Option<u32>>,
}

impl QuotaChange {
    pub fn apply(self, quota: Quota) -> Quota {
        Quota {
            max_gpus: self.max_gpus.unwrap_or(quota.max_gpus),
            max_instances: self.max_instances.unwrap_or(quota.max_instances),
        }
    }
}

/// What the admin does to an account's quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaUpdate {
    /// Back to the configured default (`"quota": null`).
    Default,
    /// Starting from the account's effective quota.
    Change(QuotaChange),
}

/// A key that is present, `null` included (`Some(None)`); an absent key is `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}
