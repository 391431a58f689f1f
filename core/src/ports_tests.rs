//! Host ports: drawn at random among the free ones, a busy port left out for a while, and a
//! start refused for a port retried with another, then waiting, never failing.

use super::*;
use crate::accounts::OPERATOR;
use crate::deployment_tests::{cluster, start_scheduled, t};
use crate::model::{Billing, OnUnavailable};
use crate::registry::HostNetwork;
use gpuspot_common::AccountId;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn book() -> PortBook {
    PortBook::with_rng(StdRng::seed_from_u64(7))
}

fn network(first: u16, last: u16) -> HostNetwork {
    HostNetwork { ports: (first, last), address: "10.0.0.1".into() }
}

#[test]
fn ports_are_drawn_at_random_among_the_free_ones() {
    let mut book = book();
    let host = HostId::from("h");
    let held = BTreeSet::from([100, 101]);
    let draws: BTreeSet<u16> = (0..40)
        .map(|_| book.choose(&host, &network(100, 199), &held, 1, t(0)).unwrap()[0])
        .collect();
    assert!(draws.len() > 10, "spread over the range, not lowest first: {draws:?}");
    assert!(!draws.contains(&100) && !draws.contains(&101), "held ports are never drawn");
    let two = book.choose(&host, &network(100, 103), &held, 2, t(0)).unwrap();
    assert_eq!(two.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&102, &103]));
    assert_eq!(book.choose(&host, &network(100, 103), &held, 3, t(0)), None, "too few free");
}

#[test]
fn a_refused_port_is_left_out_on_its_host_until_it_expires() {
    let mut book = book();
    let (h, other) = (HostId::from("h"), HostId::from("other"));
    let id = InstanceId::from("i-1");
    assert_eq!(book.refused(&id, &h, 100, t(0)), 1);
    let none = BTreeSet::new();
    for _ in 0..20 {
        assert_eq!(book.choose(&h, &network(100, 101), &none, 1, t(1)), Some(vec![101]));
    }
    assert_eq!(book.choose(&h, &network(100, 101), &none, 2, t(1)), None);
    assert!(book.choose(&other, &network(100, 101), &none, 2, t(1)).is_some(), "per host");
    assert_eq!(book.next_retry(), Some(t(0) + BUSY_FOR));
    let later = t(0) + BUSY_FOR;
    assert!(book.expire(later), "the mark expired");
    assert!(book.choose(&h, &network(100, 101), &none, 2, later).is_some());
}

#[test]
fn after_max_tries_an_instance_keeps_off_the_host_for_a_while() {
    let mut book = book();
    let (h, id) = (HostId::from("h"), InstanceId::from("i-1"));
    for port in 0..MAX_TRIES - 1 {
        book.refused(&id, &h, 100 + port as u16, t(0));
        assert!(!book.kept_off(&id, &h, t(0)));
    }
    assert_eq!(book.refused(&id, &h, 200, t(0)), MAX_TRIES);
    assert!(book.kept_off(&id, &h, t(0)));
    assert!(!book.kept_off(&id, &HostId::from("other"), t(0)), "only that host");
    assert_eq!(book.next_retry(), Some(t(0) + RETRY_AFTER));
    assert!(book.expire(t(0) + RETRY_AFTER));
    assert!(!book.kept_off(&id, &h, t(0) + RETRY_AFTER));
}

fn process_request(on_unavailable: OnUnavailable) -> InstanceRequest {
    crate::scheduling::tests::request(1, Billing::Regular, on_unavailable)
}

/// A cluster of one 1-GPU host `h` whose range is `first..=last`, and a process request
/// placed there.
fn placed(first: u16, last: u16) -> (Cluster, InstanceId) {
    let mut c = cluster(&[("h", 1)]);
    c.registry.get_mut(&HostId::from("h")).unwrap().network = network(first, last);
    c.ports = book();
    let request = process_request(OnUnavailable::Fail);
    let id = c.create_instance(AccountId::from(OPERATOR), request, t(1)).unwrap();
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Scheduled);
    c.take_changes();
    (c, id)
}

fn port_of(c: &Cluster, id: &InstanceId) -> u16 {
    c.instance(id).unwrap().placement().unwrap().host_ports[0]
}

/// The ports of the `Start`s sent since the last look.
fn starts_sent(c: &mut Cluster) -> Vec<u16> {
    let sends = c.take_changes().sends;
    sends
        .into_iter()
        .filter_map(|(_, m)| match m {
            CoordinatorMessage::Start(a) => Some(a.ports[0].host),
            _ => None,
        })
        .collect()
}

#[test]
fn a_start_refused_for_a_busy_port_is_sent_again_with_another_port() {
    let (mut c, id) = placed(100, 199);
    let h = HostId::from("h");
    let first = port_of(&c, &id);
    assert!((100..=199).contains(&first));
    c.start_refused(&h, &id, StartRefusal::PortBusy { port: first }, t(2));
    let second = port_of(&c, &id);
    assert_ne!(second, first, "the busy port is not drawn again");
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Scheduled);
    assert_eq!(starts_sent(&mut c), vec![second], "the start goes again, with the new port");
    start_scheduled(&mut c, t(3));
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Running);
}

#[test]
fn refused_starts_never_fail_a_request_they_wait_then_run_on_a_free_port() {
    // Four ports, three held by some other program: the draw finds the fourth.
    let (mut c, id) = placed(100, 103);
    let h = HostId::from("h");
    let mut refused = Vec::new();
    while port_of(&c, &id) != 103 {
        let port = port_of(&c, &id);
        assert!(!refused.contains(&port), "{port} drawn again after its refusal");
        refused.push(port);
        c.start_refused(&h, &id, StartRefusal::PortBusy { port }, t(2));
    }
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Scheduled);
    // The ones not drawn yet are taken as well.
    for port in (100..103).filter(|p| !refused.contains(p)) {
        c.ports.refused(&id, &h, port, t(2));
    }

    // The fourth gets taken too: with no free port left the request waits (it asked to fail
    // rather than wait, but the capacity is there), its unit free, and it never fails.
    c.start_refused(&h, &id, StartRefusal::PortBusy { port: 103 }, t(3));
    let instance = c.instance(&id).unwrap();
    assert_eq!(instance.state(), InstanceState::Queued);
    let reason = instance.reason().unwrap_or_default().to_owned();
    assert!(reason.starts_with("waiting for free host ports on host h"), "{reason}");
    assert_eq!(c.registry.get(&h).unwrap().free_units(), 1);
    c.place_queued(t(4));
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Queued, "still waiting");

    // When the marks expire, the core's timer wakes and the request is placed again.
    let later = t(3) + BUSY_FOR;
    assert_eq!(c.poll_timeout().map(|at| at <= later), Some(true));
    c.tick(later);
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Scheduled);
}

#[test]
fn after_max_tries_the_request_keeps_off_the_host_and_comes_back() {
    let (mut c, id) = placed(100, 199);
    let h = HostId::from("h");
    for n in 1..=MAX_TRIES {
        let port = port_of(&c, &id);
        c.start_refused(&h, &id, StartRefusal::PortBusy { port }, t(2));
        let expected = if n < MAX_TRIES { InstanceState::Scheduled } else { InstanceState::Queued };
        assert_eq!(c.instance(&id).unwrap().state(), expected, "after {n} refusals");
    }
    c.place_queued(t(3));
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Queued);
    c.tick(t(2) + RETRY_AFTER);
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Scheduled, "back on h");
}
