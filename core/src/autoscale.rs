//! Autoscaling of replica sets (docs/contracts.md#serving, seed 002): the `autoscaling` and
//! `schedule` a user sets, and the pure decision taken every `autoscale_interval` from requests per
//! second per replica (counted by the gateway) and the GPU utilisation the replicas' hosts report.
//! Up at once, down only after the wanted count stayed lower for the whole `scale_in_delay`; a
//! schedule entry sets the minimum from its time on (without `autoscaling`, it sets the replica
//! count). Every decision names its reason.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use gpuspot_common::DeploymentId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// `"autoscaling"` of a replica set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rps_per_replica: Option<f64>,
    /// Percent, 1-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_gpu_utilization: Option<u32>,
    #[serde(default = "default_scale_in_delay", with = "humantime_serde")]
    pub scale_in_delay: Duration,
}

// Targets are checked finite and positive, so equality is total.
impl Eq for Autoscaling {}

fn default_scale_in_delay() -> Duration {
    Duration::from_secs(300)
}

/// One entry of `"schedule"`: from each time `cron` names, at least `min_replicas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledMinimum {
    /// Five fields (minute first) or six (seconds first), UTC.
    pub cron: String,
    pub min_replicas: u32,
}

/// What the autoscaler remembers of a replica set between looks (stored with it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingState {
    /// Since when fewer replicas were wanted than run (scale-in waits for the delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_since: Option<DateTime<Utc>>,
    /// The minimum the latest schedule entry to fire set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_min: Option<u32>,
    /// Schedule entries up to this time have been applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_seen_until: Option<DateTime<Utc>>,
}

pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a cron expression: {e}"))
}

/// Checks the settings at `autoscaling` and `schedule`; each problem names its field.
pub fn check(autoscaling: Option<&Autoscaling>, schedule: &[ScheduledMinimum]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(a) = autoscaling {
        if a.min_replicas > a.max_replicas || a.max_replicas == 0 {
            problems
                .push("autoscaling.min_replicas must not exceed max_replicas (at least 1)".into());
        }
        if a.target_rps_per_replica.is_some_and(|t| !t.is_finite() || t <= 0.0) {
            problems.push("autoscaling.target_rps_per_replica must be a positive number".into());
        }
        if a.target_gpu_utilization.is_some_and(|t| !(1..=100).contains(&t)) {
            problems.push("autoscaling.target_gpu_utilization must be a percentage, 1-100".into());
        }
        if a.target_rps_per_replica.is_none() && a.target_gpu_utilization.is_none() {
            problems
                .push("autoscaling needs target_rps_per_replica or target_gpu_utilization".into());
        }
    }
    for (i, entry) in schedule.iter().enumerate() {
        if let Err(problem) = parse_cron(&entry.cron) {
            problems.push(format!("schedule[{i}].cron: {problem}"));
        }
        if let Some(a) = autoscaling.filter(|a| entry.min_replicas > a.max_replicas) {
            problems.push(format!(
                "schedule[{i}].min_replicas must not exceed autoscaling.max_replicas ({})",
                a.max_replicas
            ));
        }
    }
    problems
}

/// The latest schedule entry to fire in (`after`, `now`], as (when, its minimum).
pub fn fired(
    schedule: &[ScheduledMinimum],
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, u32)> {
    schedule
        .iter()
        .filter_map(|entry| {
            let cron = parse_cron(&entry.cron).ok()?;
            let at = cron.find_previous_occurrence(&now, true).ok()?;
            (at > after).then_some((at, entry.min_replicas))
        })
        .max_by_key(|(at, _)| *at)
}

/// What the autoscaler measured for one replica set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Signals {
    /// Requests per second through the gateway, all replicas together.
    pub rps: Option<f64>,
    /// Mean utilisation of the running replicas' GPUs, percent.
    pub gpu_utilization: Option<f64>,
}

/// The replica count wanted now, and why.
pub fn wanted(a: &Autoscaling, replicas: u32, floor: u32, signals: Signals) -> (u32, String) {
    let by_rps = a.target_rps_per_replica.zip(signals.rps).map(|(target, rps)| {
        let n = (rps / target).ceil() as u32;
        (n, format!("{rps:.1} requests/s for a target of {target} per replica"))
    });
    let by_gpu = a.target_gpu_utilization.zip(signals.gpu_utilization).map(|(target, util)| {
        let n = (f64::from(replicas) * util / f64::from(target)).ceil() as u32;
        (n, format!("GPU utilisation {util:.0}% for a target of {target}%"))
    });
    let (mut n, mut why) = match (by_rps, by_gpu) {
        (Some(r), Some(g)) => {
            if r.0 >= g.0 {
                r
            } else {
                g
            }
        }
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => (replicas, "no measurement yet".to_owned()),
    };
    let low = floor.max(a.min_replicas).min(a.max_replicas);
    if n < low {
        n = low;
        why = format!("{why}, raised to the minimum {low}");
    } else if n > a.max_replicas {
        n = a.max_replicas;
        why = format!("{why}, capped at the maximum {}", a.max_replicas);
    }
    (n, why)
}

/// Requests per second per deployment, from the gateway's counters at each look.
#[derive(Debug, Default)]
pub struct RequestRates {
    /// The counters as last observed.
    counters: HashMap<DeploymentId, u64>,
    /// The counter per deployment at the autoscaler's last look, and when.
    samples: HashMap<DeploymentId, (u64, DateTime<Utc>)>,
}

impl RequestRates {
    /// The counters as read now.
    pub fn observe(&mut self, counters: HashMap<DeploymentId, u64>) {
        self.counters = counters;
    }

    /// Requests per second since the last look (none at the first, or without a gateway).
    pub fn rate(&mut self, id: &DeploymentId, now: DateTime<Utc>) -> Option<f64> {
        let count = *self.counters.get(id)?;
        let (before, at) = self.samples.insert(id.clone(), (count, now))?;
        let seconds = (now - at).num_milliseconds() as f64 / 1000.0;
        (seconds > 0.0).then(|| count.saturating_sub(before) as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Autoscaling {
        Autoscaling {
            min_replicas: 1,
            max_replicas: 5,
            target_rps_per_replica: Some(10.0),
            target_gpu_utilization: Some(50),
            scale_in_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_busier_signal_wins_within_the_bounds() {
        let signals = Signals { rps: Some(31.0), gpu_utilization: Some(40.0) };
        assert_eq!(wanted(&policy(), 2, 0, signals).0, 4, "31 rps / 10 → 4");
        let signals = Signals { rps: Some(5.0), gpu_utilization: Some(100.0) };
        assert_eq!(wanted(&policy(), 2, 0, signals).0, 4, "2 replicas at 100% of 50% → 4");
        let (n, why) = wanted(&policy(), 2, 0, Signals { rps: Some(900.0), gpu_utilization: None });
        assert_eq!(n, 5);
        assert!(why.contains("maximum 5"), "{why}");
        let (n, why) = wanted(&policy(), 3, 3, Signals { rps: Some(0.0), gpu_utilization: None });
        assert_eq!(n, 3);
        assert!(why.contains("minimum 3"), "{why}");
        assert_eq!(wanted(&policy(), 2, 0, Signals::default()).0, 2);
    }

    #[test]
    fn settings_are_checked_by_field() {
        let mut bad = policy();
        bad.min_replicas = 9;
        bad.target_gpu_utilization = Some(0);
        let schedule = vec![ScheduledMinimum { cron: "every day".into(), min_replicas: 7 }];
        let problems = check(Some(&bad), &schedule).join("; ");
        for field in [
            "autoscaling.min_replicas",
            "target_gpu_utilization",
            "schedule[0].cron",
            "schedule[0].min_replicas",
        ] {
            assert!(problems.contains(field), "{problems}");
        }
        assert!(check(Some(&policy()), &[]).is_empty());
    }

    #[test]
    fn the_latest_fired_entry_counts() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let schedule = vec![
            ScheduledMinimum { cron: "0 9 * * 1-5".into(), min_replicas: 4 },
            ScheduledMinimum { cron: "0 18 * * 1-5".into(), min_replicas: 1 },
        ];
        // Thursday 2026-12-03.
        let morning = fired(&schedule, at("2026-12-03T08:00:00Z"), at("2026-12-03T09:30:00Z"));
        assert_eq!(morning, Some((at("2026-12-03T09:00:00Z"), 4)));
        assert_eq!(fired(&schedule, at("2026-12-03T09:00:00Z"), at("2026-12-03T17:00:00Z")), None);
        let evening = fired(&schedule, at("2026-12-03T09:00:00Z"), at("2026-12-03T19:00:00Z"));
        assert_eq!(evening.map(|e| e.1), Some(1));
        let seconds = vec![ScheduledMinimum { cron: "*/2 * * * * *".into(), min_replicas: 2 }];
        assert!(fired(&seconds, at("2026-12-03T09:00:00Z"), at("2026-12-03T09:00:03Z")).is_some());
    }
}
