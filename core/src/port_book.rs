//! The bookkeeping of host ports (`ports`), given `now`: which ports other programs
//! hold on each host, refused starts per instance, and the random draw of free ports.

use crate::registry::HostNetwork;
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::{HostId, InstanceId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long a port another program held stays out of the draw on its host.
pub const BUSY_FOR: Duration = Duration::minutes(10);
/// Refused starts of one placement before the instance goes back to the queue.
pub const MAX_TRIES: u32 = 8;
/// How long an instance whose starts were refused that often keeps off that host.
pub const RETRY_AFTER: Duration = Duration::seconds(5);

/// Busy ports per host, refused starts per instance, and the draw.
#[derive(Debug)]
pub struct PortBook {
    /// Host → port → busy until.
    busy: HashMap<HostId, BTreeMap<u16, DateTime<Utc>>>,
    /// Refused starts of an instance's current placement, and when the last came.
    tries: HashMap<InstanceId, (u32, DateTime<Utc>)>,
    /// Instances kept off a host, until when.
    kept_off: HashMap<InstanceId, (HostId, DateTime<Utc>)>,
    rng: StdRng,
}

impl Default for PortBook {
    fn default() -> Self {
        Self::with_rng(StdRng::from_os_rng())
    }
}

/// What to do about a refused start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Send the start again with these ports.
    Ports(Vec<u16>),
    /// Back to the queue, waiting with this reason.
    Requeue(String),
}

impl PortBook {
    pub fn with_rng(rng: StdRng) -> Self {
        Self { busy: HashMap::new(), tries: HashMap::new(), kept_off: HashMap::new(), rng }
    }

    /// `count` random ports of the host's range that neither `held` (other instances') nor
    /// a busy mark covers; None when there are not that many.
    pub fn choose(
        &mut self,
        host: &HostId,
        network: &HostNetwork,
        held: &BTreeSet<u16>,
        count: usize,
        now: DateTime<Utc>,
    ) -> Option<Vec<u16>> {
        let busy = self.busy.get(host);
        let is_busy = |port: &u16| busy.and_then(|b| b.get(port)).is_some_and(|until| *until > now);
        let (first, last) = network.ports;
        let ports = (first..=last)
            .filter(|p| !held.contains(p) && !is_busy(p))
            .choose_multiple(&mut self.rng, count);
        (ports.len() == count).then_some(ports)
    }

    /// Whether the instance keeps off this host now.
    pub fn kept_off(&self, id: &InstanceId, host: &HostId, now: DateTime<Utc>) -> bool {
        self.kept_off.get(id).is_some_and(|(h, until)| h == host && *until > now)
    }

    /// A start was refused for `port`: the port is busy on the host, and the instance
    /// tries again with other ports, or (after [`MAX_TRIES`]) keeps off the host a while.
    pub fn refused(
        &mut self,
        id: &InstanceId,
        host: &HostId,
        port: u16,
        now: DateTime<Utc>,
    ) -> u32 {
        self.busy.entry(host.clone()).or_default().insert(port, now + BUSY_FOR);
        let tries = self.tries.entry(id.clone()).or_insert((0, now));
        *tries = (tries.0 + 1, now);
        if tries.0 < MAX_TRIES {
            return tries.0;
        }
        let tries = tries.0;
        self.tries.remove(id);
        self.kept_off.insert(id.clone(), (host.clone(), now + RETRY_AFTER));
        tries
    }

    /// The next moment a kept-off instance may go back to its host or a busy port is free
    /// to draw again: waiting requests get another look then.
    pub fn next_retry(&self) -> Option<DateTime<Utc>> {
        let kept_off = self.kept_off.values().map(|(_, until)| *until);
        let busy = self.busy.values().flat_map(|ports| ports.values().copied());
        kept_off.chain(busy).min()
    }

    /// Forgets what is over by `now`; true when anything was (the queue looks again).
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        let before = self.kept_off.len() + self.busy.values().map(BTreeMap::len).sum::<usize>();
        self.kept_off.retain(|_, (_, until)| *until > now);
        self.tries.retain(|_, (_, last)| *last + BUSY_FOR > now);
        for ports in self.busy.values_mut() {
            ports.retain(|_, until| *until > now);
        }
        self.busy.retain(|_, ports| !ports.is_empty());
        let after = self.kept_off.len() + self.busy.values().map(BTreeMap::len).sum::<usize>();
        after < before
    }

    /// The host's busy ports now, for a waiting reason.
    pub(crate) fn busy_on(&self, host: &HostId, now: DateTime<Utc>) -> Vec<u16> {
        let busy = self.busy.get(host).into_iter().flatten();
        busy.filter(|(_, until)| **until > now).map(|(port, _)| *port).collect()
    }
}
