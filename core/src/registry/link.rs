//! A host's state as checked transitions, like an instance's lifecycle: its link
//! (connected, disconnected, lost) changes only through these methods, each of which
//! checks the state it starts from; the operator's maintenance is set through one too.

use super::{Host, HostState, Maintenance};
use chrono::{DateTime, Utc};

/// A transition the host's state does not allow; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} host cannot {transition}")]
pub struct WrongHostState {
    pub from: HostState,
    pub transition: &'static str,
}

impl Host {
    pub fn state(&self) -> HostState {
        self.state
    }

    pub fn maintenance(&self) -> Maintenance {
        self.maintenance
    }

    /// Any state → connected: its agent said hello (a lost host comes back too).
    pub fn connect(&mut self, now: DateTime<Utc>) {
        self.state = HostState::Connected;
        self.last_seen = now;
    }

    /// Connected → disconnected: the link dropped; its instances keep their units.
    pub fn disconnect(&mut self) -> Result<(), WrongHostState> {
        self.check("disconnect", &[HostState::Connected])?;
        self.state = HostState::Disconnected;
        Ok(())
    }

    /// Connected or disconnected → lost: silent past `host_lost_after`.
    pub fn lose(&mut self) -> Result<(), WrongHostState> {
        self.check("be lost", &[HostState::Connected, HostState::Disconnected])?;
        self.state = HostState::Lost;
        Ok(())
    }

    /// After a coordinator restart, a host that was connected waits for its agent to
    /// reconnect, counted silent from `now`.
    pub fn restored(&mut self, now: DateTime<Utc>) {
        if self.state == HostState::Connected {
            self.state = HostState::Disconnected;
        }
        self.last_seen = now;
    }

    /// The operator's cordon, drain or uncordon; any maintenance may follow any other.
    pub fn set_maintenance(&mut self, maintenance: Maintenance) {
        self.maintenance = maintenance;
    }

    fn check(&self, transition: &'static str, from: &[HostState]) -> Result<(), WrongHostState> {
        match from.contains(&self.state) {
            true => Ok(()),
            false => Err(WrongHostState { from: self.state, transition }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuspot_common::{HostId, HostInventory};

    fn host() -> Host {
        let inventory =
            HostInventory { hostname: "h".into(), gpus: Vec::new(), cpu_cores: 1, memory_gib: 1 };
        Host::new(HostId::from("h"), &inventory, "test", DateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_host_is_lost_only_from_a_live_link_and_comes_back_at_hello() {
        let mut h = host();
        h.disconnect().unwrap();
        let again = h.disconnect();
        let wrong = WrongHostState { from: HostState::Disconnected, transition: "disconnect" };
        assert_eq!(again, Err(wrong));
        h.lose().unwrap();
        assert_eq!(h.lose().unwrap_err().from, HostState::Lost);
        assert_eq!(h.disconnect().unwrap_err().from, HostState::Lost, "nothing changed");
        let hello = DateTime::UNIX_EPOCH + chrono::Duration::seconds(5);
        h.connect(hello);
        assert_eq!((h.state(), h.last_seen), (HostState::Connected, hello));
    }

    #[test]
    fn a_restore_leaves_connected_hosts_waiting_for_their_agents() {
        let mut h = host();
        let now = DateTime::UNIX_EPOCH + chrono::Duration::seconds(9);
        h.restored(now);
        assert_eq!((h.state(), h.last_seen), (HostState::Disconnected, now));
        h.lose().unwrap();
        h.restored(now);
        assert_eq!(h.state(), HostState::Lost, "a lost host stays lost");
    }
}
