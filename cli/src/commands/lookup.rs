//! What commands share beyond one request: an instance, deployment, host or account named by
//! its name (a host by its hostname) or its id, the `--state`/`--all` filter of lists, and
//! ages (`5s`, `3m`, `2h`, `4d`) instead of timestamps.

use super::Ctx;
use crate::args::ListFilter;
use crate::client::Answer;
use crate::client::encode_segment;
use crate::errors::{ApiError, usage};
use chrono::{DateTime, Utc};
use gpuspot_api::{Account, Deployment, Host, Instance};
use serde::de::DeserializeOwned;

/// States an instance never leaves.
pub const ENDED: [&str; 2] = ["terminated", "failed"];

/// What [`id_of`] reads of each item of a list: its id, its name, whose it is and its
/// state.
pub trait Named {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn owner(&self) -> Option<&str> {
        None
    }
    fn state(&self) -> &str {
        ""
    }
}

impl Named for Instance {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn owner(&self) -> Option<&str> {
        Some(self.account_id.as_str())
    }
    fn state(&self) -> &str {
        self.state.as_str()
    }
}

impl Named for Deployment {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn owner(&self) -> Option<&str> {
        Some(self.account_id.as_str())
    }
    fn state(&self) -> &str {
        self.state.as_str()
    }
}

impl Named for Host {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> &str {
        &self.hostname
    }
}

impl Named for Account {
    fn id(&self) -> &str {
        self.id.as_str()
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Something the CLI lets a user name: what it is called, where its list is, its states
/// and which of them mean it is over (lists hide those by default), and the command that
/// lists them all.
pub struct Noun {
    pub kind: &'static str,
    pub list: &'static str,
    pub states: &'static [&'static str],
    pub ended: &'static [&'static str],
    pub listing: &'static str,
}

pub const INSTANCE: Noun = Noun {
    kind: "instance",
    list: "/v1/instances",
    states: &["queued", "scheduled", "running", "termination_scheduled", "stopping"],
    ended: &ENDED,
    listing: "gpuspot instances list --all",
};
pub const DEPLOYMENT: Noun = Noun {
    kind: "deployment",
    list: "/v1/deployments",
    states: &["waiting", "running"],
    ended: &["deleted", "completed", "failed"],
    listing: "gpuspot deployments list --all",
};
pub const HOST: Noun =
    Noun { kind: "host", list: "/v1/hosts", states: &[], ended: &[], listing: "gpuspot hosts" };
pub const ACCOUNT: Noun = Noun {
    kind: "account",
    list: "/v1/accounts",
    states: &[],
    ended: &[],
    listing: "gpuspot accounts list",
};

/// A word that is neither a name nor an id of its kind.
#[derive(Debug, thiserror::Error)]
#[error("no {kind} is named {word:?} or has that id (`{listing}` lists them)")]
pub struct Unknown {
    kind: &'static str,
    word: String,
    listing: &'static str,
}

/// The id of the instance `name_or_id` names (see [`id_of`]).
pub fn instance_id(ctx: &Ctx, name_or_id: &str) -> anyhow::Result<String> {
    id_of::<Instance>(ctx, &INSTANCE, name_or_id)
}

/// The id `name_or_id` names: an id as it is, else the one live item of that name (or, with
/// none live, the newest ended one); [`Unknown`] when it is neither. When the list cannot
/// be read (an account token asking for accounts) the word is used as an id and the request
/// itself says what is wrong.
pub fn id_of<T: Named + DeserializeOwned>(
    ctx: &Ctx,
    noun: &Noun,
    name_or_id: &str,
) -> anyhow::Result<String> {
    let Ok(list) = ctx.client.list::<T>(noun.list, None) else {
        return Ok(name_or_id.to_owned());
    };
    match pick(noun, &list.body, name_or_id)? {
        Some(id) => Ok(id),
        None => known_id(ctx, noun, name_or_id),
    }
}

/// `word` when the API knows it as an id (a list need not hold everything: one page of
/// many), else [`Unknown`].
fn known_id(ctx: &Ctx, noun: &Noun, word: &str) -> anyhow::Result<String> {
    let path = format!("{}/{}", noun.list, encode_segment(word));
    match ctx.client.get_json(&path) {
        Ok(_) => Ok(word.to_owned()),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 404) => {
            Err(Unknown { kind: noun.kind, word: word.to_owned(), listing: noun.listing }.into())
        }
        Err(e) => Err(e),
    }
}

/// [`id_of`] over the list `all` (oldest first); None when nothing there has that name or id.
fn pick<T: Named>(noun: &Noun, all: &[T], name_or_id: &str) -> anyhow::Result<Option<String>> {
    if all.iter().any(|i| i.id() == name_or_id) {
        return Ok(Some(name_or_id.to_owned()));
    }
    let named: Vec<&T> = all.iter().filter(|i| i.name() == name_or_id).collect();
    let mut owners: Vec<&str> = named.iter().filter_map(|i| i.owner()).collect();
    owners.sort();
    owners.dedup();
    if owners.len() > 1 {
        // The admin sees every tenant's: a name must not pick another tenant's by accident.
        return usage(format!(
            "{name_or_id:?} names items of several accounts ({}): give an id",
            owners.join(", ")
        ));
    }
    let live: Vec<&&T> = named.iter().filter(|i| !noun.ended.contains(&i.state())).collect();
    match (live.as_slice(), named.last()) {
        ([one], _) => Ok(Some(one.id().to_owned())),
        ([], Some(newest)) => Ok(Some(newest.id().to_owned())),
        ([], None) => Ok(None),
        (many, _) => {
            let ids: Vec<&str> = many.iter().map(|i| i.id()).collect();
            usage(format!(
                "{name_or_id:?} names {} of them ({}): give an id",
                ids.len(),
                ids.join(", ")
            ))
        }
    }
}

impl Noun {
    /// The list's path with the query that asks the server for what `filter` shows: with
    /// `--state` only those states; without, every state not ended unless `--all`.
    pub fn query(&self, filter: &ListFilter) -> String {
        let states: Vec<&str> = match (filter.states.is_empty(), filter.all) {
            (false, _) => filter.states.iter().map(String::as_str).collect(),
            (true, false) => self.states.to_vec(),
            (true, true) => Vec::new(),
        };
        let chunk = filter.limit.map_or(filter.chunk_size, |l| l.min(filter.chunk_size));
        let mut query = format!("{}?limit={chunk}", self.list);
        if !states.is_empty() {
            query.push_str(&format!("&state={}", encode_segment(&states.join(","))));
        }
        query
    }

    /// The items `filter` shows, every page of them (or its `--limit`).
    pub fn list<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        filter: &ListFilter,
    ) -> anyhow::Result<Answer<Vec<T>>> {
        ctx.client.list(&self.query(filter), filter.limit.map(|l| l as usize))
    }
}

/// How long ago a time was, in its largest whole unit.
pub fn age(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = time else {
        return "-".to_owned();
    };
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        let now: DateTime<Utc> = "2026-12-03T12:00:00Z".parse().unwrap();
        let age = |t: &str| age(Some(t.parse().unwrap()), now);
        assert_eq!(age("2026-12-03T11:59:55.123456789Z"), "4s");
        assert_eq!(age("2026-12-03T11:50:00Z"), "10m");
        assert_eq!(age("2026-12-03T07:00:00Z"), "5h");
        assert_eq!(age("2026-11-29T12:00:00Z"), "4d");
        assert_eq!(super::age(None, now), "-");
    }

    #[test]
    fn names_resolve_to_the_live_one_and_never_across_accounts() {
        struct Item(&'static str, &'static str, &'static str, &'static str);
        impl Named for Item {
            fn id(&self) -> &str {
                self.0
            }
            fn name(&self) -> &str {
                self.1
            }
            fn state(&self) -> &str {
                self.2
            }
            fn owner(&self) -> Option<&str> {
                Some(self.3)
            }
        }
        let all = [
            Item("i-1", "web", "terminated", "a-op"),
            Item("i-2", "web", "running", "a-op"),
            Item("i-3", "db", "terminated", "a-op"),
            Item("i-4", "job", "terminated", "a-op"),
            Item("i-5", "job", "running", "a-tenant"),
        ];
        let pick = |name| pick(&INSTANCE, &all, name).ok();
        assert_eq!(pick("web").flatten().as_deref(), Some("i-2"), "the live one");
        assert_eq!(pick("db").flatten().as_deref(), Some("i-3"), "else the newest ended one");
        assert_eq!(pick("i-4").flatten().as_deref(), Some("i-4"), "an id is an id");
        assert_eq!(pick("job"), None, "two accounts' items: give an id");
        assert_eq!(pick("other"), Some(None), "neither a name nor an id in the list");
        let unknown = Unknown { kind: "instance", word: "big".into(), listing: INSTANCE.listing };
        assert_eq!(
            unknown.to_string(),
            "no instance is named \"big\" or has that id (`gpuspot instances list --all` lists them)"
        );
    }

    #[test]
    fn the_server_is_asked_for_what_a_list_shows() {
        let default = ListFilter::default();
        let live = "/v1/instances?limit=500&state=queued%2Cscheduled%2Crunning%2C\
                    termination_scheduled%2Cstopping";
        assert_eq!(INSTANCE.query(&default), live, "ended ones are hidden");
        let all = ListFilter { all: true, limit: Some(2), ..ListFilter::default() };
        assert_eq!(INSTANCE.query(&all), "/v1/instances?limit=2");
        let only = ListFilter { states: vec!["terminated".to_owned()], ..ListFilter::default() };
        assert_eq!(INSTANCE.query(&only), "/v1/instances?limit=500&state=terminated");
        assert_eq!(DEPLOYMENT.query(&default), "/v1/deployments?limit=500&state=waiting%2Crunning");
    }
}
