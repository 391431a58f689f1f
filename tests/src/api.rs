//! A blocking client for the coordinator's HTTP API: every call returns the status and the
//! body as JSON (a non-JSON body comes back as a JSON string), and never panics on an HTTP
//! error status, so scenarios can assert on errors as easily as on successes.

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: Option<String>,
    client: Client,
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Api {
        let client = Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            // Under the coordinator's 75 s keep-alive, so a pooled connection is never reused
            // just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Api { base: base.trim_end_matches('/').to_owned(), token: token.map(str::to_owned), client }
    }

    /// The same API without credentials.
    pub fn anonymous(&self) -> Api {
        Api { token: None, ..self.clone() }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    fn send(&self, builder: RequestBuilder, what: &str) -> (u16, Value) {
        match self.try_send(builder) {
            Ok(answer) => answer,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    fn try_send(&self, builder: RequestBuilder) -> Result<(u16, Value), reqwest::Error> {
        let response = builder.send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(Method::GET, path), &format!("GET {path}"))
    }

    /// One page of a list route: the status, the body and the `Link: <…>; rel="next"`
    /// header's target (a path with its query), if the answer has one.
    pub fn get_page(&self, path: &str) -> (u16, Value, Option<String>) {
        let response = self.request(Method::GET, path).send();
        let response = response.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), next)
    }

    /// Every item of a list route, page by page through its `Link` headers; also how many
    /// pages it took. Each page must answer 200 with a JSON array.
    pub fn all_pages(&self, path: &str) -> (Vec<Value>, usize) {
        let (mut items, mut pages, mut next) = (Vec::new(), 0, Some(path.to_owned()));
        while let Some(path) = next.take() {
            let (status, body, link) = self.get_page(&path);
            assert_eq!(status, 200, "GET {path}: {body}");
            items.extend(as_list(body));
            pages += 1;
            assert!(pages <= 10_000, "{path}: pages without end");
            next = link;
        }
        (items, pages)
    }

    /// Like [`Api::get`], but a connection failure is an `Err` (for polling a server that
    /// may be down).
    pub fn try_get(&self, path: &str) -> Result<(u16, Value), String> {
        self.try_send(self.request(Method::GET, path)).map_err(|e| format!("GET {path}: {e}"))
    }

    /// Like [`Api::post`], but a connection failure is an `Err` (for a server that may die).
    pub fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let builder = self.request(Method::POST, path).json(body);
        self.try_send(builder).map_err(|e| format!("POST {path}: {e}"))
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(Method::POST, path).json(body), &format!("POST {path}"))
    }

    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(Method::PATCH, path).json(body), &format!("PATCH {path}"))
    }

    /// POST with a raw body sent as `application/json` (for malformed-JSON checks).
    pub fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let builder = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        self.send(builder, &format!("POST {path}"))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(Method::DELETE, path), &format!("DELETE {path}"))
    }

    /// GET that must answer 200; the body.
    pub fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, StatusCode::OK.as_u16(), "GET {path}: {body}");
        body
    }

    pub fn instance(&self, id: &str) -> Value {
        self.get_ok(&format!("/v1/instances/{id}"))
    }

    /// Every instance the token sees, read page by page (a list answers at most 1,000).
    pub fn instances(&self) -> Vec<Value> {
        self.all_pages("/v1/instances").0
    }

    /// Every host, read page by page.
    pub fn hosts(&self) -> Vec<Value> {
        self.all_pages("/v1/hosts").0
    }

    /// The workload's output so far.
    pub fn logs(&self, id: &str) -> String {
        let (status, body) = self.get(&format!("/v1/instances/{id}/logs"));
        assert_eq!(status, 200, "GET logs of {id}: {body}");
        match body {
            Value::String(text) => text,
            other => other.to_string(),
        }
    }

    /// Creates an instance; must answer 202. The created instance.
    pub fn create(&self, request: &Value) -> Value {
        let (status, body) = self.post("/v1/instances", request);
        assert_eq!(status, 202, "POST /v1/instances {request}: {body}");
        assert!(body["id"].is_string(), "POST /v1/instances answered without an id: {body}");
        body
    }
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// The target of a `Link` header's `rel="next"` entry: `</v1/x?after=a>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let next = params.split(';').any(|p| p.trim() == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        next.then(|| target.to_owned())
    })
}

/// `value["field"]` as a string, or "" when absent or not a string.
pub fn s<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or("")
}

/// A regular instance request for `count` GPUs of any of `models` running `command`.
pub fn request(name: &str, models: &[&str], count: u32, command: &[&str]) -> Value {
    serde_json::json!({
        "name": name,
        "gpu": { "models": models, "count": count },
        "billing": { "mode": "regular" },
        "command": command,
    })
}

/// `sh -c SCRIPT` as a command.
pub fn sh(script: &str) -> Vec<&str> {
    vec!["sh", "-c", script]
}

/// Asserts an error answer: `status`, and the body `{"error":{"code","message"}}` with
/// `code` when given.
pub fn assert_error(answer: &(u16, Value), status: u16, code: Option<&str>, what: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{what}: expected {status}, got {got} {body}");
    let error = &body["error"];
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{what}: error body is not {{\"error\":{{\"code\",\"message\"}}}}: {body}"
    );
    if let Some(code) = code {
        assert_eq!(error["code"], code, "{what}: {body}");
    }
}
