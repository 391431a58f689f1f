//! Drills (docs/architecture.md, "Faults and drills"; AWS FIS "send spot instance
//! interruptions", Azure "simulate eviction"): the owner of an instance, or the admin, sends
//! it a real interruption with reason `drill`, spot or regular. Everything a reclaim does
//! follows from the notice: the guest's socket and long-poll, the event, the mail and
//! webhook, its deployment's replacement, and the stop at the deadline.

use super::cluster::Cluster;
use super::instance::Notice;
use super::model::{EndReason, InstanceState};
use chrono::{DateTime, Utc};
use gpuspot_common::InstanceId;
use std::time::Duration;

/// The longest notice a drill may give, whatever its pool's notice period.
pub const MAX_DRILL_NOTICE: Duration = Duration::from_secs(24 * 3600);

/// Why a drill was refused; nothing changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DrillError {
    #[error("no instance {0}")]
    Unknown(InstanceId),
    #[error(
        "instance {id} is {}: only a scheduled or running instance can be interrupted",
        state.as_str()
    )]
    NotPlaced { id: InstanceId, state: InstanceState },
    /// A drill rehearses a reclaim: it may not hold a unit longer than a reclaim's notice
    /// would (a longer one would shield the instance from outbids, drains and overdue ends).
    #[error("notice: at most the pool's notice period, {}", humantime::format_duration(*.0))]
    NoticeTooLong(Duration),
}

impl Cluster {
    /// Interrupts instance `id` with reason `drill` after `notice` (default: its pool's
    /// notice period). Returns the deadline.
    pub fn drill(
        &mut self,
        id: &InstanceId,
        notice: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DrillError> {
        let instance = self.instances.get(id).ok_or_else(|| DrillError::Unknown(id.clone()))?;
        let state = instance.state();
        if !matches!(state, InstanceState::Scheduled | InstanceState::Running) {
            return Err(DrillError::NotPlaced { id: id.clone(), state });
        }
        let longest = self.notice_for(instance, EndReason::Drill).min(MAX_DRILL_NOTICE);
        if notice.is_some_and(|n| n > longest) {
            return Err(DrillError::NoticeTooLong(longest));
        }
        let period = notice.unwrap_or(longest);
        let at = self.notice_in(id, EndReason::Drill, period, now);
        self.settle(now);
        Ok(at)
    }

    /// Notices a scheduled or running instance to end at now + `period`, exactly (no pool
    /// notice applies). Returns the deadline.
    pub(super) fn notice_in(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        period: Duration,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let notice = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
        let at = now.checked_add_signed(notice).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.transition(id, now, |lifecycle| lifecycle.give_notice(Notice { at, reason }));
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment_tests::t;
    use crate::faults_tests::{one_running, t_plus};
    use crate::model::Billing;
    use gpuspot_common::Money;

    #[test]
    fn a_drill_notices_spot_and_regular_alike_with_the_given_notice() {
        for billing in [Billing::Regular, Billing::Spot { max_price: Money(5_000_000) }] {
            let (mut c, id) = one_running(billing);
            let at = c.drill(&id, Some(Duration::from_secs(4)), t(10)).unwrap();
            assert_eq!(at, t_plus(10, 4));
            let instance = c.instance(&id).unwrap();
            assert_eq!(instance.state(), InstanceState::TerminationScheduled);
            assert_eq!(instance.termination_reason(), Some(EndReason::Drill));
            let again = c.drill(&id, None, t(11));
            assert!(matches!(again, Err(DrillError::NotPlaced { .. })), "{again:?}");
        }
    }

    #[test]
    fn a_drill_is_bounded_and_defaults_to_the_pools_notice() {
        let (mut c, id) = one_running(Billing::Regular);
        // Longer than a reclaim's notice (the test pools' is 5 s) is refused: a long drill
        // would shield the instance from outbids, drains and an overdue end.
        let long = c.drill(&id, Some(Duration::from_secs(6)), t(2));
        assert_eq!(long, Err(DrillError::NoticeTooLong(Duration::from_secs(5))));
        let unknown = InstanceId::from("i-none");
        assert_eq!(c.drill(&unknown, None, t(2)), Err(DrillError::Unknown(unknown.clone())));
        // The test pools' notice is 5 s.
        assert_eq!(c.drill(&id, None, t(3)), Ok(t(8)));
    }

    #[test]
    fn a_drain_or_going_overdue_brings_a_drills_deadline_forward_keeping_its_reason() {
        let (mut c, id) = one_running(Billing::Regular);
        assert_eq!(c.drill(&id, None, t(2)), Ok(t(7)));
        let host = gpuspot_common::HostId::from("h1");
        c.drain_host(&host, Some(Duration::from_secs(1)), t(3)).unwrap();
        let instance = c.instance(&id).unwrap();
        assert_eq!(instance.termination_time(), Some(t(4)), "the drain's deadline");
        assert_eq!(instance.termination_reason(), Some(EndReason::Drill));
        // A later notice never pushes the deadline back.
        c.drain_host(&host, Some(Duration::from_secs(60)), t(3)).unwrap();
        assert_eq!(c.instance(&id).unwrap().termination_time(), Some(t(4)));
    }
}
