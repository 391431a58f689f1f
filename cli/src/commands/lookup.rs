//! What commands share beyond one request: an instance, deployment, host or account named by
//! its name (a host by its hostname) or its id, the `--state`/`--all` filter of lists, and
//! ages (`5s`, `3m`, `2h`, `4d`) instead of timestamps.

use super::Ctx;
use crate::args::ListFilter;
use crate::client::encode_segment;
use crate::errors::{ApiError, usage};
use crate::output::{field, items};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// States an instance never leaves.
pub const ENDED: [&str; 2] = ["terminated", "failed"];

/// Something the CLI lets a user name: what it is called, where its list is, which field
/// holds the name, its states and which of them mean it is over (lists hide those by
/// default), and the command that lists them all.
pub struct Noun {
    pub kind: &'static str,
    pub list: &'static str,
    pub name_field: &'static str,
    pub states: &'static [&'static str],
    pub ended: &'static [&'static str],
    pub listing: &'static str,
}

pub const INSTANCE: Noun = Noun {
    kind: "instance",
    list: "/v1/instances",
    name_field: "name",
    states: &["queued", "scheduled", "running", "termination_scheduled", "stopping"],
    ended: &ENDED,
    listing: "gpuspot instances list --all",
};
pub const DEPLOYMENT: Noun = Noun {
    kind: "deployment",
    list: "/v1/deployments",
    name_field: "name",
    states: &["waiting", "running"],
    ended: &["deleted", "completed", "failed"],
    listing: "gpuspot deployments list --all",
};
pub const HOST: Noun = Noun {
    kind: "host",
    list: "/v1/hosts",
    name_field: "hostname",
    states: &[],
    ended: &[],
    listing: "gpuspot hosts",
};
pub const ACCOUNT: Noun = Noun {
    kind: "account",
    list: "/v1/accounts",
    name_field: "name",
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
    id_of(ctx, &INSTANCE, name_or_id)
}

/// The id `name_or_id` names: an id as it is, else the one live item of that name (or, with
/// none live, the newest ended one); [`Unknown`] when it is neither. When the list cannot
/// be read (an account token asking for accounts) the word is used as an id and the request
/// itself says what is wrong.
pub fn id_of(ctx: &Ctx, noun: &Noun, name_or_id: &str) -> anyhow::Result<String> {
    let Ok(list) = ctx.client.get_list(noun.list, None) else {
        return Ok(name_or_id.to_owned());
    };
    match pick(noun, items(&list, "items"), name_or_id)? {
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
fn pick(noun: &Noun, all: &[Value], name_or_id: &str) -> anyhow::Result<Option<String>> {
    if all.iter().any(|i| field(i, "id") == name_or_id) {
        return Ok(Some(name_or_id.to_owned()));
    }
    let named: Vec<&Value> =
        all.iter().filter(|i| field(i, noun.name_field) == name_or_id).collect();
    let mut owners: Vec<String> = named.iter().map(|i| field(i, "account_id")).collect();
    owners.sort();
    owners.dedup();
    if owners.len() > 1 {
        // The admin sees every tenant's: a name must not pick another tenant's by accident.
        return usage(format!(
            "{name_or_id:?} names items of several accounts ({}): give an id",
            owners.join(", ")
        ));
    }
    let live: Vec<&&Value> = named.iter().filter(|i| !noun.is_ended(i)).collect();
    match (live.as_slice(), named.last()) {
        ([one], _) => Ok(Some(field(one, "id"))),
        ([], Some(newest)) => Ok(Some(field(newest, "id"))),
        ([], None) => Ok(None),
        (many, _) => {
            let ids: Vec<String> = many.iter().map(|i| field(i, "id")).collect();
            usage(format!(
                "{name_or_id:?} names {} of them ({}): give an id",
                ids.len(),
                ids.join(", ")
            ))
        }
    }
}

impl Noun {
    pub fn is_ended(&self, item: &Value) -> bool {
        self.ended.contains(&field(item, "state").as_str())
    }

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
    pub fn list(&self, ctx: &Ctx, filter: &ListFilter) -> anyhow::Result<Value> {
        ctx.client.get_list(&self.query(filter), filter.limit.map(|l| l as usize))
    }
}

pub fn is_ended(instance: &Value) -> bool {
    ENDED.contains(&field(instance, "state").as_str())
}

/// How long ago an RFC 3339 time was, in its largest whole unit.
pub fn age(time: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(at) = time.and_then(|t| t.parse::<DateTime<Utc>>().ok()) else {
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
    use serde_json::json;

    #[test]
    fn ages_read_at_a_glance() {
        let now: DateTime<Utc> = "2026-12-03T12:00:00Z".parse().unwrap();
        let age = |t: &str| age(Some(t), now);
        assert_eq!(age("2026-12-03T11:59:55.123456789Z"), "4s");
        assert_eq!(age("2026-12-03T11:50:00Z"), "10m");
        assert_eq!(age("2026-12-03T07:00:00Z"), "5h");
        assert_eq!(age("2026-11-29T12:00:00Z"), "4d");
        assert_eq!(super::age(None, now), "-");
    }

    #[test]
    fn names_resolve_to_the_live_one_and_never_across_accounts() {
        let list = json!([
            {"id": "i-1", "name": "web", "state": "terminated", "account_id": "a-op"},
            {"id": "i-2", "name": "web", "state": "running", "account_id": "a-op"},
            {"id": "i-3", "name": "db", "state": "terminated", "account_id": "a-op"},
            {"id": "i-4", "name": "job", "state": "terminated", "account_id": "a-op"},
            {"id": "i-5", "name": "job", "state": "running", "account_id": "a-tenant"},
        ]);
        let all = list.as_array().unwrap();
        let pick = |name| pick(&INSTANCE, all, name).ok();
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
