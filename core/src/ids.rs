//! Where new ids come from: random in production, counted in tests so that a scenario's
//! ids (and its outbox) are the same on every run.

use gpuspot_common::{AccountId, DeploymentId, InstanceId};

pub trait IdSource: Send {
    /// A fresh suffix, unique among the ids this source gave.
    fn next_suffix(&mut self) -> String;
}

/// 16 random hex digits, as `gpuspot_common::ids` makes them.
#[derive(Debug, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_suffix(&mut self) -> String {
        InstanceId::random().as_str().trim_start_matches("i-").to_owned()
    }
}

/// 1, 2, 3, … zero-padded.
#[derive(Debug, Default)]
pub struct CountedIds(u64);

impl IdSource for CountedIds {
    fn next_suffix(&mut self) -> String {
        self.0 += 1;
        format!("{:016}", self.0)
    }
}

/// The cluster's generator, typed per kind of id.
pub struct Ids(Box<dyn IdSource>);

impl Default for Ids {
    fn default() -> Self {
        Self(Box::new(RandomIds))
    }
}

impl Ids {
    pub fn new(source: impl IdSource + 'static) -> Self {
        Self(Box::new(source))
    }

    pub fn instance(&mut self) -> InstanceId {
        InstanceId(format!("i-{}", self.0.next_suffix()))
    }

    pub fn account(&mut self) -> AccountId {
        AccountId(format!("a-{}", self.0.next_suffix()))
    }

    pub fn deployment(&mut self) -> DeploymentId {
        DeploymentId(format!("d-{}", self.0.next_suffix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_ids_repeat_across_runs_and_random_ones_differ() {
        let (mut a, mut b) = (Ids::new(CountedIds::default()), Ids::new(CountedIds::default()));
        assert_eq!(a.instance(), b.instance());
        assert_eq!(a.account().as_str(), "a-0000000000000002");
        let mut random = Ids::default();
        assert_ne!(random.deployment(), random.deployment());
    }
}
