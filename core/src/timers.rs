//! The core's one timer (quinn-proto style): [`Cluster::poll_timeout`] names the next
//! moment anything is due — a termination deadline, a noticed replica's drain margin, the
//! price tick, the meter tick, the autoscaler's look, a lost host, a crashed replica's
//! replacement, an overdue deadline, ended work past its retention, the event sweep — and
//! [`Cluster::handle_timeout`] does everything due by `now`. The actor arms one timer for
//! the answer and calls back; tests drive whole scenarios on a manual clock the same way.

use super::cluster::Cluster;
use super::periodic::Job;
use chrono::{DateTime, Duration, Utc};

impl Cluster {
    /// The next moment [`Cluster::handle_timeout`] has work; never None while the market
    /// ticks, so an idle cluster still wakes for its prices.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        [
            Some(self.periodic.next()),
            self.next_forget(),
            self.next_deadline(),
            self.drain_margin.next(&self.instances),
            self.next_crash_restart(),
            self.next_overdue_deadline(),
            self.next_host_expiry(),
            self.next_port_retry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does everything due by `now`, in the order the periodic tick used to: prices first
    /// (so a reclaim found by the auction gets its notice now), then the meter, then due
    /// deadlines, replacements and lost hosts.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let timers = &self.timers;
        let (price, meter, scale) =
            (timers.price_tick, timers.meter_tick, timers.autoscale_interval);
        if self.periodic.take_due(Job::PriceTick, now, price) {
            self.market_tick(now);
        }
        if self.periodic.take_due(Job::MeterTick, now, meter) {
            self.meter_tick(now);
        }
        let sweep = self.retention().event_sweep();
        if self.periodic.take_due(Job::EventSweep, now, sweep) {
            self.sweep_events(now);
        }
        if self.periodic.take_due(Job::Autoscale, now, scale) {
            self.autoscale(now);
        }
        self.tick(now);
    }

    /// What is due that is not periodic: notices whose deadline or drain margin came,
    /// replacements whose backoff is over, overdue deadlines, hosts silent for too long,
    /// ended instances past their retention and busy host ports.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.routes_changed |= self.drain_margin.advance(&self.instances, now);
        self.carry_out_deadlines(now);
        self.start_due_restarts(now);
        self.expire_overdue(now);
        self.lose_silent_hosts(now);
        self.expire_ports(now);
        self.settle(now);
        self.forget_ended(now);
    }

    fn next_overdue_deadline(&self) -> Option<DateTime<Utc>> {
        self.ledger.next_overdue_deadline()
    }

    /// When the first silent host counts as lost: `host_lost_after` past its last word,
    /// or, for hosts not heard from since a restart, the end of the restart grace.
    fn next_host_expiry(&self) -> Option<DateTime<Utc>> {
        let lost_after = Duration::from_std(self.timers.host_lost_after).unwrap_or(Duration::MAX);
        let expiry = |seen: DateTime<Utc>| {
            seen.checked_add_signed(lost_after).unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        // The check is "silent for more than lost_after": one millisecond past it.
        let past = |t: DateTime<Utc>| t + Duration::milliseconds(1);
        match self.restart_grace {
            Some((restored, until)) => {
                let restored_hosts =
                    self.registry.earliest_seen_after(None).filter(|s| *s <= restored);
                let heard_since = self.registry.earliest_seen_after(Some(restored));
                [restored_hosts.map(|s| expiry(s).max(until)), heard_since.map(expiry)]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(past)
            }
            None => self.registry.earliest_seen_after(None).map(|s| past(expiry(s))),
        }
    }
}
