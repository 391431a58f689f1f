//! Where the agent's next connection goes: its `--coordinator` list (`HOST:PORT[,…]`), whose
//! first address is tried and goes last after a failure (standby coordinators: the leader
//! may be any of them), or the leader a standby named, tried once, at once.

/// The addresses and what the last attempts taught.
#[derive(Debug)]
pub(crate) struct Route {
    list: String,
    /// The leader a standby named: the next attempt goes there instead of the list.
    leader: Option<String>,
}

/// What to do after a standby named a leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Go there at once.
    AtOnce,
    /// The leader named last time sent us on too (stale leases): go after the backoff, so
    /// that standbys never bounce an agent without a pause.
    AfterBackoff,
}

impl Route {
    pub(crate) fn new(list: &str) -> Self {
        Self { list: list.to_owned(), leader: None }
    }

    /// Where the next attempt goes.
    pub(crate) fn target(&self) -> &str {
        self.leader.as_deref().unwrap_or(&self.list)
    }

    /// A standby named `leader`.
    pub(crate) fn sent_on(&mut self, leader: String) -> Next {
        match self.leader.replace(leader) {
            None => Next::AtOnce,
            Some(_) => Next::AfterBackoff,
        }
    }

    /// The attempt failed (or a session ended): the list's first goes last, so that after
    /// a named leader failed the standby that named it is not asked first again.
    pub(crate) fn failed(&mut self) {
        self.leader = None;
        if let Some((first, rest)) = self.list.split_once(',') {
            self.list = format!("{rest},{first}");
        }
    }

    /// A session ended cleanly: the next attempt starts from the list.
    pub(crate) fn ended(&mut self) {
        self.leader = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_first_sends_the_agent_to_the_leader_at_once() {
        let mut route = Route::new("10.0.0.2:7443,10.0.0.1:7443");
        assert_eq!(route.target(), "10.0.0.2:7443,10.0.0.1:7443");
        assert_eq!(route.sent_on("10.0.0.1:7443".into()), Next::AtOnce);
        assert_eq!(route.target(), "10.0.0.1:7443");
    }

    #[test]
    fn a_leader_that_sends_the_agent_on_again_waits_out_the_backoff() {
        let mut route = Route::new("a:1,b:1");
        assert_eq!(route.sent_on("b:1".into()), Next::AtOnce);
        assert_eq!(route.sent_on("a:1".into()), Next::AfterBackoff);
        assert_eq!(route.target(), "a:1");
    }

    #[test]
    fn a_named_leader_that_fails_moves_the_list_on() {
        let mut route = Route::new("standby:1,leader:1");
        route.sent_on("unreachable:1".into());
        route.failed();
        assert_eq!(route.target(), "leader:1,standby:1");
        assert_eq!(route.sent_on("leader:1".into()), Next::AtOnce, "a fresh hop");
        route.ended();
        assert_eq!(route.target(), "leader:1,standby:1");
    }
}
