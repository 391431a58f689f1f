//! Whole coordinator scenarios through the pure core on simulated time: hours of hold,
//! notice and metering pass in milliseconds, driven only by the core's one timer
//! (`poll_timeout`/`handle_timeout`, see [`sim`]). Each scenario asserts what a user would
//! see: instance state and times, what the agent and guest are told, events, the ledger.

mod fixtures;
mod sim;

use super::admission::Refusal;
use super::events::EventKind;
use super::{EndReason, InstanceState};
use chrono::{DateTime, Duration, Utc};
use fixtures::{
    HOLD, HOST_LOST_AFTER, LIST, METER_TICK, NOTICE, OVERDUE_GRACE, PRICE_TICK, cents, cost,
    replica_set, request, spot, t0,
};
use gpuspot_common::protocol::{GuestRuntime, InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, InstanceId, Money};
use sim::Sim;

const MS: Duration = Duration::milliseconds(1);

fn funded_account(sim: &mut Sim, amount: Money) -> AccountId {
    let account =
        sim.act(|c, now| c.create_account(crate::accounts::NewAccount::named("acme"), now));
    sim.act(|c, now| c.pay(&account, amount, now)).expect("a payment is accepted");
    account
}

/// Creates an instance; with `start`, its agent reports it running at once.
fn launch(sim: &mut Sim, account: &AccountId, billing: super::Billing, start: bool) -> InstanceId {
    let id = sim.act(|c, now| c.create_instance(account.clone(), request(billing), now).unwrap());
    assert_eq!(sim.instance(&id).state(), InstanceState::Scheduled, "placed at once");
    if start {
        sim.report(&id, WorkloadState::Running);
    }
    id
}

fn state(sim: &Sim, id: &InstanceId) -> InstanceState {
    sim.instance(id).state()
}

/// The balance is exactly the sum of the account's ledger.
fn assert_balance_matches_ledger(sim: &Sim, account: &AccountId) {
    let entries = sim.log.ledger.iter().filter(|e| &e.account_id == account);
    let sum: i64 = entries.map(|e| e.amount.micros()).sum();
    assert_eq!(sim.cluster.account(account).unwrap().balance, Money(sum));
}

// ---------------------------------------------------------------------------------------
// 1. Outbid → notice → stop.

#[test]
fn an_outbid_spot_instance_is_noticed_after_its_hold_and_stopped_at_the_deadline() {
    let mut sim = Sim::new();
    let host = sim.connect("h-1", 1);
    let acme = funded_account(&mut sim, cents(100_000));
    let low = launch(&mut sim, &acme, spot(50), true);
    let hold_until = sim.instance(&low).hold_until().expect("a running spot instance is held");
    assert_eq!(hold_until, t0() + HOLD);
    sim.run_until(t0() + Duration::minutes(10));
    let high = sim.act(|c, now| c.create_instance(acme.clone(), request(spot(90)), now).unwrap());
    assert_eq!(state(&sim, &high), InstanceState::Queued, "no free unit for the higher bid");

    sim.run_until(hold_until - MS);
    assert_eq!(state(&sim, &low), InstanceState::Running, "nobody is reclaimed inside the hold");
    sim.run_until(hold_until + PRICE_TICK);
    let deadline = assert_reclaim_noticed(&sim, &low, hold_until);

    sim.run_until(deadline - MS);
    assert_eq!(state(&sim, &low), InstanceState::TerminationScheduled);
    assert!(sim.log.stops(&low).is_empty(), "nothing stops it before its deadline");
    sim.run_until(deadline);
    assert_eq!(sim.log.stops(&low), vec![(deadline, "reclaimed_price")]);
    assert_eq!(state(&sim, &low), InstanceState::Stopping);

    let stopped_at = deadline + Duration::seconds(2);
    sim.run_until(stopped_at);
    sim.report(&low, WorkloadState::Stopped);
    let ended = sim.instance(&low);
    assert_eq!(ended.state(), InstanceState::Terminated);
    assert_eq!(ended.termination_reason(), Some(EndReason::ReclaimedPrice));
    assert_eq!(ended.ended_at(), Some(stopped_at));
    let shown = sim.log.shown_prices(&low);
    assert_eq!(sim.log.charged(&low), cost(&shown, 1, t0(), stopped_at), "pays what it was shown");
    assert_balance_matches_ledger(&sim, &acme);

    assert_eq!(state(&sim, &high), InstanceState::Scheduled, "the higher bid takes the unit");
    assert_eq!(sim.log.starts(&high), vec![(stopped_at, &host)]);
    assert!(sim.instance(&high).price().is_some_and(|p| p <= cents(90)));
}

/// The first auction after the hold noticed `id` (price) and told its guest at once;
/// returns the deadline.
fn assert_reclaim_noticed(sim: &Sim, id: &InstanceId, hold_until: DateTime<Utc>) -> DateTime<Utc> {
    let noticed = sim.log.events(EventKind::TerminationScheduled, id);
    assert_eq!(noticed.len(), 1, "one notice");
    let auction = noticed[0].at;
    assert!(auction >= hold_until && auction < hold_until + PRICE_TICK, "at the first auction");
    let deadline = auction + NOTICE;
    let instance = sim.instance(id);
    assert_eq!(instance.state(), InstanceState::TerminationScheduled);
    assert_eq!(instance.termination_time(), Some(deadline));
    assert_eq!(instance.termination_reason(), Some(EndReason::ReclaimedPrice));
    let metadata = sim.log.metadata(id);
    let (told_at, told) = metadata
        .iter()
        .find(|(_, md)| md.spot_termination_time.is_some())
        .expect("the guest is told");
    assert_eq!(*told_at, auction, "at once");
    assert_eq!(told.spot_termination_time, Some(deadline));
    assert_eq!(told.termination_reason.as_deref(), Some("reclaimed_price"));
    deadline
}

// ---------------------------------------------------------------------------------------
// 2. Overdue → payment (and no payment).

/// 0.11 covers 3.3 minutes at 2.00/h: the meter tick at minute 4 takes the balance below
/// zero. Returns the account, its running regular instance and the overdue deadline.
fn run_out_of_money(sim: &mut Sim) -> (AccountId, InstanceId, DateTime<Utc>) {
    sim.connect("h-1", 2);
    let acme = funded_account(sim, cents(11));
    let id = launch(sim, &acme, super::Billing::Regular, true);
    let overdue_at = t0() + Duration::minutes(4);
    sim.run_until(overdue_at - MS);
    assert!(!sim.cluster.account(&acme).unwrap().is_overdue());
    assert_eq!(state(sim, &id), InstanceState::Running);

    sim.run_until(overdue_at);
    let account = sim.cluster.account(&acme).unwrap();
    assert!(account.is_overdue() && account.balance < Money::ZERO);
    let deadline = overdue_at + OVERDUE_GRACE;
    assert_overdue_noticed(sim, &id, overdue_at, deadline);
    (acme, id, deadline)
}

fn assert_overdue_noticed(sim: &Sim, id: &InstanceId, at: DateTime<Utc>, deadline: DateTime<Utc>) {
    let instance = sim.instance(id);
    assert_eq!(instance.state(), InstanceState::TerminationScheduled);
    assert_eq!(instance.termination_time(), Some(deadline));
    assert_eq!(instance.termination_reason(), Some(EndReason::Overdue));
    let noticed = sim.log.events(EventKind::TerminationScheduled, id);
    assert_eq!(noticed.iter().map(|e| e.at).collect::<Vec<_>>(), vec![at]);
    let metadata = sim.log.metadata(id);
    let (told_at, told) = metadata.last().expect("the guest is told");
    assert_eq!(*told_at, at, "at once");
    assert_eq!(told.spot_termination_time, Some(deadline));
    assert_eq!(told.termination_reason.as_deref(), Some("overdue"));
}

#[test]
fn a_payment_inside_the_overdue_grace_cancels_the_notice_and_charging_goes_on() {
    let mut sim = Sim::new();
    let (acme, id, deadline) = run_out_of_money(&mut sim);
    let paid_at = deadline - Duration::minutes(3);
    sim.run_until(paid_at);
    sim.act(|c, now| c.pay(&acme, cents(100), now)).unwrap();

    let instance = sim.instance(&id);
    assert_eq!(instance.state(), InstanceState::Running);
    assert_eq!((instance.termination_time(), instance.termination_reason()), (None, None));
    let cancelled = sim.log.events(EventKind::TerminationCancelled, &id);
    assert_eq!(cancelled.iter().map(|e| e.at).collect::<Vec<_>>(), vec![paid_at]);
    let metadata = sim.log.metadata(&id);
    let (told_at, told) = metadata.last().unwrap();
    assert_eq!((*told_at, told.spot_termination_time), (paid_at, None), "the guest is told");
    assert!(!sim.cluster.account(&acme).unwrap().is_overdue());

    let later = deadline + Duration::minutes(15);
    sim.run_until(later);
    assert_eq!(state(&sim, &id), InstanceState::Running);
    assert!(sim.log.stops(&id).is_empty(), "a cancelled notice never stops it");
    let charges = sim.log.ledger.iter().filter(|e| e.instance_id.as_ref() == Some(&id));
    let charge_times: Vec<DateTime<Utc>> = charges.map(|e| e.at).collect();
    let every_tick: Vec<DateTime<Utc>> =
        (1..=(later - t0()).num_minutes()).map(|m| t0() + METER_TICK * m as i32).collect();
    assert_eq!(charge_times, every_tick, "charged at every meter tick, notice or not");
    assert_eq!(sim.log.charged(&id), cost(&[(t0(), LIST)], 1, t0(), later));
    let balance = sim.cluster.account(&acme).unwrap().balance;
    assert_eq!(balance, Money(cents(111).micros() - sim.log.charged(&id)));
    assert!(!sim.cluster.account(&acme).unwrap().is_overdue(), "not overdue again");
    assert_balance_matches_ledger(&sim, &acme);
}

#[test]
fn without_a_payment_an_overdue_instance_is_stopped_at_the_deadline() {
    let mut sim = Sim::new();
    let (acme, id, deadline) = run_out_of_money(&mut sim);
    sim.run_until(deadline - MS);
    assert_eq!(state(&sim, &id), InstanceState::TerminationScheduled);
    assert!(sim.log.stops(&id).is_empty(), "nothing stops it before its deadline");
    sim.run_until(deadline);
    assert_eq!(sim.log.stops(&id), vec![(deadline, "overdue")]);

    let stopped_at = deadline + Duration::seconds(3);
    sim.run_until(stopped_at);
    sim.report(&id, WorkloadState::Stopped);
    let ended = sim.instance(&id);
    assert_eq!(ended.state(), InstanceState::Terminated);
    assert_eq!(ended.termination_reason(), Some(EndReason::Overdue));
    assert_eq!(ended.ended_at(), Some(stopped_at));
    assert_eq!(sim.log.charged(&id), cost(&[(t0(), LIST)], 1, t0(), stopped_at));
    assert_balance_matches_ledger(&sim, &acme);

    let refused = sim.act(|c, now| c.create_instance(acme.clone(), request(spot(90)), now));
    assert!(
        matches!(refused, Err(Refusal::OverdueForInstances { .. })),
        "nothing new is admitted while overdue: {refused:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Host lost.

#[test]
fn a_silent_host_is_lost_after_host_lost_after_and_its_replica_moves_elsewhere() {
    let mut sim = Sim::new();
    let doomed = sim.connect("h-1", 2);
    let acme = funded_account(&mut sim, cents(100_000));
    let lone = launch(&mut sim, &acme, super::Billing::Regular, true);
    let deployment =
        sim.act(|c, now| c.create_deployment(acme.clone(), replica_set(1), now).unwrap());
    let replica = sim.cluster.deployment_instances(&deployment)[0].id.clone();
    sim.report(&replica, WorkloadState::Running);
    let spare = sim.connect("h-2", 1);

    sim.run_until(t0() + Duration::minutes(10));
    sim.silence(&doomed);
    let silent_since = sim.cluster.registry().get(&doomed).unwrap().last_seen;
    sim.run_until(silent_since + HOST_LOST_AFTER);
    assert_eq!(host_state(&sim, &doomed), super::HostState::Disconnected);
    assert!(sim.log.host_events(EventKind::HostLost, &doomed).is_empty(), "not yet");
    assert_eq!(state(&sim, &lone), InstanceState::Running, "its instances keep their units");

    sim.run_until(silent_since + HOST_LOST_AFTER + Duration::seconds(1));
    assert_eq!(host_state(&sim, &doomed), super::HostState::Lost);
    assert_eq!(host_state(&sim, &spare), super::HostState::Connected, "live agents stay");
    let lost = sim.log.host_events(EventKind::HostLost, &doomed);
    assert_eq!(lost.len(), 1);
    let lost_at = lost[0].at;
    assert!(lost_at > silent_since + HOST_LOST_AFTER);
    for id in [&lone, &replica] {
        let ended = sim.instance(id);
        assert_eq!(ended.state(), InstanceState::Terminated);
        assert_eq!(ended.termination_reason(), Some(EndReason::HostLost));
        assert_eq!(ended.ended_at(), Some(lost_at));
    }
    assert_eq!(sim.log.charged(&lone), cost(&[(t0(), LIST)], 1, t0(), lost_at));

    assert_replaced_on(&sim, &deployment, &spare, lost_at);
    assert_comeback_is_told_to_stop(&mut sim, &lone);
}

/// The ReplicaSet's one live replica is a new one, started on `host` at `at`.
fn assert_replaced_on(
    sim: &Sim,
    deployment: &gpuspot_common::DeploymentId,
    host: &gpuspot_common::HostId,
    at: DateTime<Utc>,
) {
    let all = sim.cluster.deployment_instances(deployment);
    let live: Vec<_> = all.into_iter().filter(|i| !i.state().is_final()).collect();
    assert_eq!(live.len(), 1, "the ReplicaSet replaces its lost replica");
    assert_eq!(live[0].host_id(), Some(host));
    assert_eq!(sim.log.starts(&live[0].id), vec![(at, host)]);
}

fn host_state(sim: &Sim, host: &gpuspot_common::HostId) -> super::HostState {
    sim.cluster.registry().get(host).expect("a known host").state()
}

/// The lost host's agent reconnects still running the instance: it is told to stop it.
fn assert_comeback_is_told_to_stop(sim: &mut Sim, lone: &InstanceId) {
    let host = gpuspot_common::HostId::from("h-1");
    let report = InstanceReport { instance_id: lone.clone(), state: WorkloadState::Running };
    let inventory = fixtures::inventory("h-1", 2);
    sim.act(|c, now| {
        c.host_connected(&host, &inventory, "test", &[GuestRuntime::Process], &[report], now)
    });
    assert_eq!(sim.log.stops(lone), vec![(sim.now(), "not desired")]);
    assert_eq!(state(sim, lone), InstanceState::Terminated, "a lost instance stays ended");
}

// ---------------------------------------------------------------------------------------
// 4. Regression: an overdue notice on a placed (not yet running) instance, then a payment.

/// A spot instance placed at minute 3.5 whose agent has not reported it running when
/// the account runs out of money at minute 4. Returns the account and the instance.
fn placed_when_overdue(sim: &mut Sim) -> (AccountId, InstanceId) {
    sim.connect("h-1", 2);
    let acme = funded_account(sim, cents(11));
    launch(sim, &acme, super::Billing::Regular, true);
    sim.run_until(t0() + Duration::seconds(210));
    let placed = launch(sim, &acme, spot(90), false);
    let overdue_at = t0() + Duration::minutes(4);
    sim.run_until(overdue_at);
    assert_overdue_noticed(sim, &placed, overdue_at, overdue_at + OVERDUE_GRACE);
    (acme, placed)
}

/// It started at `started`: running, held for a spot instance, charged by the meter.
fn assert_runs_and_is_charged_from(sim: &mut Sim, id: &InstanceId, started: DateTime<Utc>) {
    let instance = sim.instance(id);
    assert_eq!(instance.state(), InstanceState::Running);
    assert_eq!(instance.started_at(), Some(started), "its run starts when the agent said so");
    assert_eq!(instance.hold_until(), Some(started + HOLD), "a running spot instance is held");
    // A meter tick: charges are booked at ticks.
    let later = t0() + Duration::minutes(20);
    sim.run_until(later);
    let charged = sim.log.charged(id);
    assert!(charged > 0, "the meter charges it");
    assert_eq!(charged, cost(&sim.log.shown_prices(id), 1, started, later));
}

#[test]
fn regression_a_payment_returns_a_noticed_placed_instance_to_scheduled_and_it_is_charged() {
    let mut sim = Sim::new();
    let (acme, placed) = placed_when_overdue(&mut sim);
    sim.run_until(t0() + Duration::minutes(5));
    sim.act(|c, now| c.pay(&acme, cents(100), now)).unwrap();
    let instance = sim.instance(&placed);
    assert_eq!(instance.termination_time(), None, "the notice is cancelled");
    assert_eq!(
        instance.state(),
        InstanceState::Scheduled,
        "its agent never reported it running: it is placed, not running"
    );
    assert_eq!(instance.started_at(), None);

    let started = t0() + Duration::minutes(6);
    sim.run_until(started);
    sim.report(&placed, WorkloadState::Running);
    assert_runs_and_is_charged_from(&mut sim, &placed, started);
}

#[test]
fn regression_a_placed_instance_that_starts_during_its_overdue_notice_is_charged_from_then() {
    let mut sim = Sim::new();
    let (acme, placed) = placed_when_overdue(&mut sim);
    let started = t0() + Duration::seconds(270);
    sim.run_until(started);
    sim.report(&placed, WorkloadState::Running);
    assert_eq!(state(&sim, &placed), InstanceState::TerminationScheduled, "still noticed");
    assert_eq!(sim.instance(&placed).started_at(), Some(started), "it runs, so it pays");

    sim.run_until(t0() + Duration::minutes(5));
    sim.act(|c, now| c.pay(&acme, cents(100), now)).unwrap();
    assert_runs_and_is_charged_from(&mut sim, &placed, started);
}
