//! What the standby tests share: the config of two coordinators on one PostgreSQL, starting
//! the second, and reading a coordinator's role.

use gpuspot_e2e::coordinator::Coordinator;
use gpuspot_e2e::postgres::Postgres;
use gpuspot_e2e::{Api, Cluster, SOON, config_with_timers, wait_until};
use serde_json::Value;

/// A 2 s lease; hosts are lost only well after a takeover (agents may first try the
/// standby, which does not serve them).
pub fn config(pg: &Postgres) -> String {
    let timers = config_with_timers(&[("host_lost_after", "20s")]);
    format!("{timers}\n[store]\nurl = \"{}\"\n\n[ha]\nlease = \"2s\"\n", pg.url())
}

/// A second coordinator on the cluster's database, in its own dir.
pub fn standby(c: &Cluster, pg: &Postgres, name: &str) -> Coordinator {
    standby_with(c, pg, name, "")
}

/// [`standby`] with `extra` config appended.
pub fn standby_with(c: &Cluster, pg: &Postgres, name: &str, extra: &str) -> Coordinator {
    let dir = c.dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = gpuspot_e2e::binaries!().coordinator;
    let token = Some(c.coordinator.admin_token.as_str());
    let config = format!("{}\n{extra}", config(pg));
    Coordinator::start_sharing(&bin, &dir, c.logs(), &config, token)
}

pub fn health(api: &Api) -> Value {
    let (status, body) = api.get("/healthz");
    assert_eq!(status, 200, "{body}");
    body
}

pub fn wait_role(api: &Api, role: &str) -> Value {
    wait_until(SOON, &format!("{} to be {role}", api.base), || match api.try_get("/healthz") {
        Ok((200, body)) if body["role"] == role => Ok(body),
        other => Err(format!("{other:?}")),
    })
}
