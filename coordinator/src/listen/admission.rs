//! How many connections a listener holds open: at most `per_client` from one client (an IPv4
//! address or an IPv6 /64) and `total` in all, so one client (a hostile tenant, a runaway
//! load test) cannot take every file descriptor and shut the others out. A [`Slot`] gives
//! its place back when dropped. The API, the gateway and the SSH door each count their own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// `max_connections` and `max_connections_per_client` of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_client: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// The open connections, counted against [`Limits`].
pub struct Admission {
    limits: Limits,
    open: Arc<Mutex<Open>>,
}

/// One admitted connection.
pub struct Slot {
    client: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission { limits, open: Arc::default() }
    }

    /// A slot for a connection from `client`, or None when it or everyone is at the limit.
    pub fn admit(&self, client: IpAddr) -> Option<Slot> {
        let client = client_of(client);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if open.total >= self.limits.total || mine >= self.limits.per_client {
            return None;
        }
        open.total += 1;
        open.by_client.insert(client, mine + 1);
        Some(Slot { client, open: self.open.clone() })
    }
}

/// Who a connection counts against: its IPv4 address, or its IPv6 /64 (one customer is
/// routinely given a whole /64, and would otherwise have 2^64 addresses' worth of shares).
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_is_held_to_its_share_and_places_come_back() {
        let admission = Admission::new(Limits { total: 3, per_client: 2 });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = admission.admit(a).expect("first");
        let _second = admission.admit(a).expect("second");
        assert!(admission.admit(a).is_none(), "a third from the same client");
        let _other = admission.admit(b).expect("another client still gets in");
        assert!(admission.admit(b).is_none(), "the total is reached");
        drop(first);
        assert!(admission.admit(a).is_some(), "a closed connection frees its place");
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let admission = Admission::new(Limits { total: 10, per_client: 1 });
        let first = admission.admit("2001:db8:1:2::1".parse().unwrap());
        assert!(first.is_some());
        assert!(admission.admit("2001:db8:1:2:ffff::9".parse().unwrap()).is_none(), "same /64");
        assert!(admission.admit("2001:db8:1:3::1".parse().unwrap()).is_some(), "another /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _v4 = admission.admit("10.0.0.1".parse().unwrap()).expect("v4");
        assert!(admission.admit(mapped).is_none(), "a mapped IPv4 address is that address");
    }
}
