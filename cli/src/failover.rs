//! Several coordinators behind one `GPUSPOT_API` (docs/contracts.md, standby coordinators):
//! `GPUSPOT_API` may list URLs, comma separated. A request goes to the first; one that
//! cannot connect is tried on the next in turn, and a standby's 307 is followed to the
//! leader with the same method, body and token (a generic HTTP client drops the token on
//! a redirect to another port, so redirects are followed here, not by reqwest).

use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, Request, Response};
use reqwest::header::LOCATION;

/// Redirects followed for one request: a standby points at the leader, which answers.
const MAX_HOPS: usize = 3;

/// The URLs of `list` (`http://a:8080,http://b:8080`), without trailing slashes.
pub fn split(list: &str) -> Vec<String> {
    let urls: Vec<String> = list
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() { vec![list.trim().to_owned()] } else { urls }
}

/// Sends `request` (addressed to the first URL), trying `others` when it cannot connect and
/// following 307/308 redirects.
pub fn execute(http: &Http, request: Request, others: &[String]) -> reqwest::Result<Response> {
    let mut hops = 0;
    let mut next = others.iter();
    let mut current = request;
    loop {
        let retry = current.try_clone();
        match http.execute(current) {
            Err(error) if error.is_connect() => {
                let (Some(mut again), Some(base)) = (retry, next.next()) else { return Err(error) };
                let Some(url) = rebase(again.url(), base) else { return Err(error) };
                *again.url_mut() = url;
                current = again;
            }
            Ok(response) if is_redirect(response.status()) && hops < MAX_HOPS => {
                let target = response.headers().get(LOCATION).and_then(|l| l.to_str().ok());
                let target = target.and_then(|t| response.url().join(t).ok());
                // Never carry the token from https to plain http.
                let target = target.filter(|t| !downgrades(response.url(), t));
                let (Some(mut again), Some(target)) = (retry, target) else { return Ok(response) };
                *again.url_mut() = target;
                hops += 1;
                current = again;
            }
            other => return other,
        }
    }
}

fn downgrades(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    from.scheme() == "https" && to.scheme() != "https"
}

fn is_redirect(status: StatusCode) -> bool {
    status == StatusCode::TEMPORARY_REDIRECT || status == StatusCode::PERMANENT_REDIRECT
}

/// `url`'s path and query on `base`.
fn rebase(url: &reqwest::Url, base: &str) -> Option<reqwest::Url> {
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    reqwest::Url::parse(&format!("{base}{}{query}", url.path())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_splits_on_commas_and_a_path_moves_to_the_next_url() {
        assert_eq!(split("http://a:1/, http://b:2"), vec!["http://a:1", "http://b:2"]);
        assert_eq!(split("http://a:1"), vec!["http://a:1"]);
        let url = reqwest::Url::parse("http://a:1/v1/instances?limit=2").unwrap();
        assert_eq!(rebase(&url, "http://b:2").unwrap().as_str(), "http://b:2/v1/instances?limit=2");
    }

    #[test]
    fn a_redirect_from_https_to_http_is_not_followed() {
        let https = reqwest::Url::parse("https://a:1/v1/x").unwrap();
        let http = reqwest::Url::parse("http://b:2/v1/x").unwrap();
        assert!(downgrades(&https, &http));
        assert!(!downgrades(&http, &https));
        assert!(!downgrades(&http, &http));
    }
}
