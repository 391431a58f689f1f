//! Which of a deployment's replicas are in the gateway's rotation (docs/contracts.md#serving). A
//! noticed replica still runs for its whole notice, so it keeps serving until a replacement is
//! ready or until the drain margin before its deadline, whichever comes first; then it is draining:
//! no new requests, those in flight finish. A stopping replica is always out.
//!
//! The decision is per replica: each replica in service that is ready releases one noticed
//! replica (the one whose deadline comes first), so the rotation holds as many replicas as
//! the deployment wants for as long as it can. The margin's moments are the core's timer
//! ([`DrainMargin::next`], named by `poll_timeout`): nothing polls.

use super::instance::table::Instances;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// `[gateway] drain_margin` when none is set.
pub const DEFAULT_DRAIN_MARGIN: Duration = Duration::from_secs(30);

/// Where one replica is in its life, as the rotation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Running without a notice.
    InService,
    /// Noticed, to be stopped at `deadline`.
    Noticed { deadline: DateTime<Utc> },
    /// Being stopped (or noticed and past its margin): never in the rotation.
    Stopping,
}

/// One replica: its stage and whether it is ready (probe, host, address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica {
    pub stage: Stage,
    pub ready: bool,
}

/// Whether each of `replicas` is draining, in order, for a deployment that wants `wanted`
/// replicas. Noticed replicas past their margin must come as [`Stage::Stopping`].
pub fn draining(replicas: &[Replica], wanted: usize) -> Vec<bool> {
    let in_service = replicas.iter().filter(|r| r.ready && r.stage == Stage::InService).count();
    let mut noticed: Vec<(DateTime<Utc>, usize)> = replicas
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.stage {
            Stage::Noticed { deadline } if r.ready => Some((deadline, i)),
            _ => None,
        })
        .collect();
    // Those that can serve the longest stay; the first to end leave first.
    noticed.sort_by(|a, b| b.cmp(a));
    let mut out: Vec<bool> = replicas.iter().map(|r| r.stage != Stage::InService).collect();
    for (_, i) in noticed.into_iter().take(wanted.saturating_sub(in_service)) {
        out[i] = false;
    }
    out
}

/// The drain margin and how far the core's clock has taken it: a notice whose deadline is
/// at most `through` is past its margin. Kept in memory; a restart recomputes it on the
/// first timeout.
#[derive(Debug)]
pub struct DrainMargin {
    margin: chrono::Duration,
    through: DateTime<Utc>,
}

impl Default for DrainMargin {
    fn default() -> Self {
        Self::new(DEFAULT_DRAIN_MARGIN)
    }
}

impl DrainMargin {
    pub fn new(margin: Duration) -> Self {
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        Self { margin, through: DateTime::<Utc>::MIN_UTC }
    }

    /// Whether a notice with this deadline is within its margin by now.
    pub fn passed(&self, deadline: DateTime<Utc>) -> bool {
        deadline <= self.through
    }

    /// Moves to `now`; whether a notice entered its margin (the rotation changed).
    pub fn advance(&mut self, instances: &Instances, now: DateTime<Utc>) -> bool {
        let through = now.checked_add_signed(self.margin).unwrap_or(DateTime::<Utc>::MAX_UTC);
        if through <= self.through {
            return false;
        }
        let crossed = instances.next_notice_after(self.through).is_some_and(|at| at <= through);
        self.through = through;
        crossed
    }

    /// When the next notice enters its margin.
    pub fn next(&self, instances: &Instances) -> Option<DateTime<Utc>> {
        let at = instances.next_notice_after(self.through)?;
        Some(at.checked_sub_signed(self.margin).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn noticed(deadline: i64, ready: bool) -> Replica {
        Replica { stage: Stage::Noticed { deadline: t(deadline) }, ready }
    }

    const SERVING: Replica = Replica { stage: Stage::InService, ready: true };
    const STARTING: Replica = Replica { stage: Stage::InService, ready: false };
    const STOPPING: Replica = Replica { stage: Stage::Stopping, ready: true };

    #[test]
    fn noticed_replicas_serve_until_replacements_are_ready_one_for_one() {
        let all_noticed = [noticed(30, true), noticed(20, true), noticed(40, true)];
        let starting = [&all_noticed[..], &[STARTING; 3]].concat();
        assert_eq!(draining(&starting, 3), [false, false, false, false, false, false]);
        // One replacement ready: the noticed replica that ends first leaves, no other.
        let one = [&all_noticed[..], &[SERVING, STARTING, STARTING]].concat();
        assert_eq!(draining(&one, 3), [false, true, false, false, false, false]);
        let two = [&all_noticed[..], &[SERVING, SERVING, STARTING]].concat();
        assert_eq!(draining(&two, 3), [true, true, false, false, false, false]);
        let three = [&all_noticed[..], &[SERVING; 3]].concat();
        assert_eq!(draining(&three, 3), [true, true, true, false, false, false]);
    }

    #[test]
    fn stopping_and_unready_noticed_replicas_take_no_place_in_the_rotation() {
        let replicas = [STOPPING, noticed(10, false), noticed(20, true), STARTING];
        assert_eq!(draining(&replicas, 2), [true, true, false, false]);
        // Wanting fewer (scaled in, or deleted): a noticed replica has no place.
        assert_eq!(draining(&[SERVING, noticed(20, true)], 1), [false, true]);
        assert_eq!(draining(&[noticed(20, true)], 0), [true]);
    }
}
