//! The queries list routes take (docs/contracts.md#http-api): `?state=` (comma-separated names of
//! the list's states), `?limit=` and `?after=` (the id of the last item of the previous page, in
//! creation order), each checked with a 400 `invalid_query` naming the parameter; and their answer:
//! a JSON array, with `Link: </v1/…?after=ID>; rel="next"` (RFC 8288) when more items follow.

use super::error::{HttpError, QueryError};
use crate::core::listing::{Listing, Page};
use actix_web::HttpResponse;
use serde::Deserialize;
use serde::Serialize;

/// The limits of `?limit=`: the default and the most one page holds.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub default: usize,
    pub max: usize,
}

/// Instances, deployments, hosts, accounts and snapshots.
pub const LISTS: Bounds = Bounds { default: 1000, max: 1000 };

/// A list with states: `?state=`, `?limit=`, `?after=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// Only items in these states, comma-separated (e.g. `queued,running`); an unknown
    /// state answers 400.
    state: Option<String>,
    /// At most this many, 1 to 1000 (default 1000). When more follow, the answer's `Link`
    /// header (`rel="next"`) gives the next page's URL.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The id of the last item of the previous page: the list continues after it, in
    /// creation order.
    after: Option<String>,
}

/// A list without states: `?limit=`, `?after=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many, 1 to 1000 (default 1000). When more follow, the answer's `Link`
    /// header (`rel="next"`) gives the next page's URL.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The id of the last item of the previous page: the list continues after it, in
    /// creation order.
    after: Option<String>,
}

impl StateQuery {
    /// The listing asked for; `known` are the list's states.
    pub fn listing(&self, known: &[&'static str]) -> Result<Listing, HttpError> {
        Ok(Listing {
            states: states(self.state.as_deref(), known)?,
            after: after(self.after.as_deref())?,
            limit: limit(self.limit.as_deref(), LISTS)?,
        })
    }
}

impl PageQuery {
    pub fn listing(&self) -> Result<Listing, HttpError> {
        Ok(Listing {
            states: Vec::new(),
            after: after(self.after.as_deref())?,
            limit: limit(self.limit.as_deref(), LISTS)?,
        })
    }
}

fn invalid(message: String) -> HttpError {
    QueryError::Invalid(message).into()
}

/// `?state=a,b`: each one of `known`; none given is every state.
pub fn states(text: Option<&str>, known: &[&'static str]) -> Result<Vec<&'static str>, HttpError> {
    let Some(text) = text else { return Ok(Vec::new()) };
    let mut wanted = Vec::new();
    for name in text.split(',').map(str::trim) {
        let Some(state) = known.iter().find(|k| **k == name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(invalid(format!(
                "state: unknown state {shown:?} (one of {})",
                known.join(", ")
            )));
        };
        if !wanted.contains(state) {
            wanted.push(*state);
        }
    }
    Ok(wanted)
}

/// `?limit=N` within `bounds`; absent is the default.
pub fn limit(text: Option<&str>, bounds: Bounds) -> Result<usize, HttpError> {
    let Some(text) = text else { return Ok(bounds.default) };
    match text.parse::<usize>() {
        Ok(n) if (1..=bounds.max).contains(&n) => Ok(n),
        _ => {
            let shown: String = text.chars().take(32).collect();
            Err(invalid(format!(
                "limit: expected a whole number from 1 to {}, not {shown:?}",
                bounds.max
            )))
        }
    }
}

/// `?after=ID`: an id of at most 256 bytes.
pub fn after(text: Option<&str>) -> Result<Option<String>, HttpError> {
    match text {
        None => Ok(None),
        Some(id) if !id.is_empty() && id.len() <= 256 => Ok(Some(id.to_owned())),
        Some(_) => Err(invalid("after: expected an id of 1 to 256 bytes".to_owned())),
    }
}

/// The page as a JSON array of `view`s; when more follow, a `Link` to the next page:
/// `path` with `query` (the page's other parameters, as given) and `after` the last id.
pub fn answer<T, V: Serialize>(
    path: &str,
    query: &[(&str, String)],
    page: &Page<T>,
    view: impl Fn(&T) -> V,
    id: impl Fn(&T) -> String,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(last) = page.items.last().filter(|_| page.more) {
        let mut pairs: Vec<(&str, String)> = query.to_vec();
        pairs.push(("after", id(last)));
        // Every value was checked or is an id of ours; encoding cannot fail on strings.
        if let Ok(encoded) = serde_urlencoded::to_string(&pairs) {
            response.insert_header(("Link", format!("<{path}?{encoded}>; rel=\"next\"")));
        }
    }
    response.json(page.items.iter().map(view).collect::<Vec<_>>())
}

/// The query a [`StateQuery`] listing repeats in its next page's link.
pub fn repeated(listing: &Listing) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if !listing.states.is_empty() {
        pairs.push(("state", listing.states.join(",")));
    }
    pairs.push(("limit", listing.limit.to_string()));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const KNOWN: &[&str] = &["queued", "running", "terminated"];

    #[test]
    fn states_are_checked_and_named() {
        assert_eq!(states(None, KNOWN).unwrap(), Vec::<&str>::new());
        assert_eq!(states(Some("running, queued,running"), KNOWN).unwrap(), ["running", "queued"]);
        let error = states(Some("queued,bogus"), KNOWN).unwrap_err();
        assert_eq!(error.code, "invalid_query");
        assert!(error.message.starts_with("state: unknown state \"bogus\""), "{}", error.message);
        assert!(states(Some(""), KNOWN).is_err(), "an empty state is no state");
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None, LISTS).unwrap(), 1000);
        assert_eq!(limit(Some("1"), LISTS).unwrap(), 1);
        for bad in ["0", "1001", "-1", "two", "", "1e3"] {
            let error = limit(Some(bad), LISTS).unwrap_err();
            assert!(error.message.starts_with("limit:"), "{bad}: {}", error.message);
        }
        assert!(after(Some("")).is_err() && after(Some(&"x".repeat(257))).is_err());
    }

    #[test]
    fn the_next_page_is_linked_only_when_more_follow() {
        let page = Page { items: vec!["i-1", "i-2"], more: true };
        let query = [("state", "queued,running".to_owned()), ("limit", "2".to_owned())];
        let response =
            answer("/v1/instances", &query, &page, |i| Value::from(*i), |i| i.to_string());
        let link = response.headers().get("Link").unwrap().to_str().unwrap();
        assert_eq!(link, "</v1/instances?state=queued%2Crunning&limit=2&after=i-2>; rel=\"next\"");
        let last = Page { items: vec!["i-3"], more: false };
        let response =
            answer("/v1/instances", &query, &last, |i| Value::from(*i), |i| i.to_string());
        assert!(response.headers().get("Link").is_none());
    }
}
