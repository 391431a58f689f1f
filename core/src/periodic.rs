//! When the cluster's periodic jobs run next: the market's price tick, the meter, the
//! event sweep and the autoscaler's look. A job never run is due at once (a fresh start
//! runs each); each run schedules the next one period later.

use chrono::{DateTime, Duration, Utc};

/// A periodic job of [`crate::cluster::Cluster::handle_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    PriceTick,
    MeterTick,
    EventSweep,
    Autoscale,
}

#[derive(Debug, Default)]
pub struct Periodic {
    /// Per [`Job`], in its order; `None`: never run.
    next: [Option<DateTime<Utc>>; 4],
}

impl Periodic {
    pub fn is_due(&self, job: Job, now: DateTime<Utc>) -> bool {
        self.next[job as usize].is_none_or(|t| t <= now)
    }

    /// Whether `job` is due at `now`; if so, its next run is set `period` later.
    pub fn take_due(&mut self, job: Job, now: DateTime<Utc>, period: std::time::Duration) -> bool {
        if !self.is_due(job, now) {
            return false;
        }
        let next = Duration::from_std(period).ok().and_then(|d| now.checked_add_signed(d));
        self.next[job as usize] = Some(next.unwrap_or(DateTime::<Utc>::MAX_UTC));
        true
    }

    /// The earliest next run of any job.
    pub fn next(&self) -> DateTime<Utc> {
        let at = |t: &Option<DateTime<Utc>>| t.unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.next.iter().map(at).min().unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_at_once_then_each_period() {
        let mut p = Periodic::default();
        let t0 = DateTime::UNIX_EPOCH;
        let period = std::time::Duration::from_secs(5);
        assert_eq!(p.next(), DateTime::<Utc>::MIN_UTC, "never run: due now");
        for job in [Job::PriceTick, Job::MeterTick, Job::EventSweep] {
            assert!(p.take_due(job, t0, period));
        }
        assert!(p.take_due(Job::Autoscale, t0, period * 2));
        assert_eq!(p.next(), t0 + Duration::seconds(5));
        assert!(!p.take_due(Job::PriceTick, t0 + Duration::seconds(4), period));
        assert!(p.take_due(Job::PriceTick, t0 + Duration::seconds(5), period));
        assert!(!p.is_due(Job::Autoscale, t0 + Duration::seconds(9)));
    }
}
