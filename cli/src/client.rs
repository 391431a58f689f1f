//! A small blocking HTTP client for the coordinator's `/v1` API.
//!
//! Every request carries `Authorization: Bearer TOKEN` when a token is known. Error answers
//! become [`ApiError`]s, connection failures [`Unreachable`]s, so `main` can print each the
//! way the user expects.

use crate::errors::{ApiError, Unreachable, UsageError};
use anyhow::Context;
use reqwest::Method;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Time allowed for an ordinary request (connect, send, each read).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Talks to one coordinator.
pub struct Client {
    base: String,
    /// Further coordinators from a comma-separated `GPUSPOT_API`, tried in turn.
    others: Vec<String>,
    token: Option<String>,
    http: Http,
}

impl Client {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Client> {
        let mut urls = crate::failover::split(base).into_iter();
        Ok(Client {
            base: urls.next().unwrap_or_default(),
            others: urls.collect(),
            token: token.filter(|t| !t.is_empty()),
            http: build_http(Some(REQUEST_TIMEOUT))?,
        })
    }

    /// The API's base URL, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Like [`Client::post_json`], for a request whose answer may take up to `timeout`.
    /// [`Client::post`] with its own time limit (a command that runs for a while).
    pub fn post_within<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> anyhow::Result<Answer<T>> {
        let http = build_http(Some(timeout))?;
        let text = self.send(self.request(&http, Method::POST, path).json(body))?.text()?;
        let sent = serde_json::from_str(&text).with_context(|| {
            format!("the coordinator's answer to {path} is not JSON: {text:.200}")
        })?;
        Answer::read(path, sent)
    }

    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::GET, path, None)
    }

    /// `GET path`, read as a `T` of [`gpuspot_api`].
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Answer<T>> {
        Answer::read(path, self.get_json(path)?)
    }

    /// [`Client::get_list`], each item read as a `T`.
    pub fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        at_most: Option<usize>,
    ) -> anyhow::Result<Answer<Vec<T>>> {
        Answer::read(path, self.get_list(path, at_most)?)
    }

    /// `POST path` with `body`, the answer read as a `T`.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Answer<T>> {
        Answer::read(path, self.json(Method::POST, path, Some(&serde_json::to_value(body)?))?)
    }

    /// `PATCH path` with `body`, the answer read as a `T`.
    pub fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Answer<T>> {
        Answer::read(path, self.json(Method::PATCH, path, Some(&serde_json::to_value(body)?))?)
    }

    /// `DELETE path`, the answer read as a `T`.
    pub fn delete_as<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Answer<T>> {
        Answer::read(path, self.delete(path)?)
    }

    /// A list route's items, page after page as its `Link: <…>; rel="next"` headers lead,
    /// until there are none or `at_most` items came (docs/contracts.md#http-api).
    pub fn get_list(&self, path: &str, at_most: Option<usize>) -> anyhow::Result<Value> {
        let (mut items, mut next) = (Vec::new(), Some(path.to_owned()));
        while let Some(path) = next.take() {
            let response = self.send(self.request(&self.http, Method::GET, &path))?;
            next = next_link(response.headers());
            let text = response.text().context("reading the response")?;
            let page: Value = serde_json::from_str(&text).with_context(|| {
                format!("the coordinator's answer to {path} is not JSON: {text:.200}")
            })?;
            match page {
                Value::Array(page) => items.extend(page),
                other => return Ok(other),
            }
            if let Some(at_most) = at_most.filter(|n| items.len() >= *n) {
                items.truncate(at_most);
                break;
            }
        }
        Ok(Value::Array(items))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::DELETE, path, None)
    }

    /// A plain-text resource (instance logs), as-is.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.send(self.request(&self.http, Method::GET, path))?;
        response.text().context("reading the response body")
    }

    /// Opens a long-lived GET (server-sent events). Each read of the returned response gives
    /// up after `idle`, so a quiet stream can be told apart from a busy one.
    pub fn open_stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
        idle: Duration,
    ) -> anyhow::Result<Response> {
        let http = build_http(Some(idle))?;
        let mut request =
            self.request(&http, Method::GET, path).header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        self.send(request)
    }

    fn json(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self.request(&self.http, method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let text = self.send(request)?.text().context("reading the response")?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the coordinator's answer to {path} is not JSON: {text:.200}"))
    }

    fn request(&self, http: &Http, method: Method, path: &str) -> RequestBuilder {
        let request = http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a 4xx/5xx answer becomes an [`ApiError`].
    fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let (http, request) = request.build_split();
        let request = request.map_err(|e| self.transport_error(e))?;
        let response = crate::failover::execute(&http, request, &self.others)
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            let reason = status.canonical_reason().unwrap_or("error").to_owned();
            let body = response.text().unwrap_or_default();
            return Err(ApiError::from_body(status.as_u16(), &reason, &body).into());
        }
        Ok(response)
    }

    fn transport_error(&self, err: reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            let cause = root_cause(&err);
            return Unreachable { url: self.base.clone(), cause }.into();
        }
        if err.is_builder() {
            let cause = root_cause(&err);
            return UsageError(format!("invalid API URL {:?}: {cause}", self.base)).into();
        }
        anyhow::Error::new(err).context(format!("request to {} failed", self.base))
    }
}

/// An answer as the coordinator sent it (what `-o json` prints, unchanged) and as read
/// into its [`gpuspot_api`] type (what every other output is made from).
#[derive(Clone, Debug)]
pub struct Answer<T> {
    pub sent: Value,
    pub body: T,
}

impl<T: DeserializeOwned> Answer<T> {
    fn read(path: &str, sent: Value) -> anyhow::Result<Answer<T>> {
        let body = T::deserialize(&sent).with_context(|| {
            format!("the coordinator's answer to {path} is not what this CLI understands")
        })?;
        Ok(Answer { sent, body })
    }
}

fn build_http(timeout: Option<Duration>) -> anyhow::Result<Http> {
    Http::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// The path of a `Link` header's `rel="next"` target (`</v1/x?after=a>; rel="next"`).
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let values = headers.get_all(reqwest::header::LINK).into_iter();
    values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then_some(())?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        target.starts_with('/').then(|| target.to_owned())
    })
}

/// The innermost cause's text ("Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Percent-encodes one path segment (a GPU model may contain spaces or slashes).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("NVIDIA GeForce RTX 5090"), "NVIDIA%20GeForce%20RTX%205090");
        assert_eq!(encode_segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(encode_segment("H100"), "H100");
    }

    #[test]
    fn the_next_page_is_the_link_marked_next() {
        let mut headers = reqwest::header::HeaderMap::new();
        let link =
            "</v1/x?limit=2&after=i-1>; rel=\"prev\", </v1/x?limit=2&after=i-3>; rel=\"next\"";
        headers.insert(reqwest::header::LINK, link.parse().unwrap());
        assert_eq!(next_link(&headers).as_deref(), Some("/v1/x?limit=2&after=i-3"));
        headers
            .insert(reqwest::header::LINK, "<http://elsewhere/x>; rel=\"next\"".parse().unwrap());
        assert_eq!(next_link(&headers), None, "only a path on the same API is followed");
    }

    #[test]
    fn trailing_slash_is_trimmed() {
        let client = Client::new("http://127.0.0.1:1/", Some(String::new()));
        let client = client.expect("client builds");
        assert_eq!(client.base, "http://127.0.0.1:1");
        assert!(client.token.is_none());
    }
}
