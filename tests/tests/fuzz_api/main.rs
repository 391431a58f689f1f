//! Fuzzing of the API's JSON bodies with proptest against a real coordinator: random JSON
//! values, valid bodies with random edits, and malformed text are POSTed and PATCHed to the
//! routes that take a body, with the admin token, an account token, a wrong one or none.
//! Every answer must be under 500, every error must be `{"error":{"code","message"}}`, and
//! `/healthz` must still answer after each case. `PROPTEST_CASES` raises the number of
//! cases (see `scripts/fuzz.sh`); the default keeps the e2e run short.

use gpuspot_e2e::{Api, Cluster, cluster, request, s};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestRunner};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok());
    // A hand-driven runner has no source file to keep regressions next to.
    ProptestConfig {
        cases: cases.unwrap_or(default_cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Routes that take a JSON body.
#[derive(Clone, Copy, Debug)]
enum Route {
    CreateInstance,
    CreateDeployment,
    CreateAccount,
    Pay,
    PayUnknownAccount,
    ChangeInstance,
    ChangeDeployment,
}

const ROUTES: [Route; 7] = [
    Route::CreateInstance,
    Route::CreateDeployment,
    Route::CreateAccount,
    Route::Pay,
    Route::PayUnknownAccount,
    Route::ChangeInstance,
    Route::ChangeDeployment,
];

/// Who calls.
#[derive(Clone, Copy, Debug)]
enum Token {
    Admin,
    Account,
    Wrong,
    Missing,
}

/// One coordinator with an account (token and credit), a queued instance and a deployment
/// of that account, so the routes with an id in their path reach their handlers.
struct Target {
    cluster: Cluster,
    client: Client,
    account_id: String,
    account_token: String,
    instance_id: String,
    deployment_id: String,
    /// How often each status was answered, printed after a run: shows which layers the
    /// inputs reached (400 from parsing, 2xx from the handlers…).
    statuses: RefCell<BTreeMap<u16, u32>>,
}

impl Target {
    fn start() -> Target {
        let cluster = cluster!();
        let (status, account) = cluster.api.post("/v1/accounts", &json!({ "name": "fuzz" }));
        assert_eq!(status, 201, "create account: {account}");
        let account_id = s(&account, "id").to_owned();
        let account_token = s(&account, "token").to_owned();
        let paid = cluster
            .api
            .post(&format!("/v1/accounts/{account_id}/payments"), &json!({ "amount": "1000" }));
        assert_eq!(paid.0, 201, "payment: {}", paid.1);
        let api = Api::new(&cluster.api.base, Some(&account_token));
        let instance = api.create(&request("fuzz", &["H100"], 1, &["sleep", "600"]));
        let (status, deployment) =
            api.post("/v1/deployments", &valid_body(Route::CreateDeployment));
        assert_eq!(status, 202, "create deployment: {deployment}");
        let client = Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Target {
            client,
            account_id,
            account_token,
            instance_id: s(&instance, "id").to_owned(),
            deployment_id: s(&deployment, "id").to_owned(),
            statuses: RefCell::default(),
            cluster,
        }
    }

    fn endpoint(&self, route: Route) -> (Method, String) {
        match route {
            Route::CreateInstance => (Method::POST, "/v1/instances".into()),
            Route::CreateDeployment => (Method::POST, "/v1/deployments".into()),
            Route::CreateAccount => (Method::POST, "/v1/accounts".into()),
            Route::Pay => (Method::POST, format!("/v1/accounts/{}/payments", self.account_id)),
            Route::PayUnknownAccount => (Method::POST, "/v1/accounts/a-nobody/payments".into()),
            Route::ChangeInstance => (Method::PATCH, format!("/v1/instances/{}", self.instance_id)),
            Route::ChangeDeployment => {
                (Method::PATCH, format!("/v1/deployments/{}", self.deployment_id))
            }
        }
    }

    /// Sends `body` and checks the answer; then checks the coordinator still answers.
    fn check(
        &self,
        route: Route,
        token: Token,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), TestCaseError> {
        let (method, path) = self.endpoint(route);
        let what = format!("{method} {path} ({token:?}, {content_type})");
        let mut builder = self.client.request(method, format!("{}{path}", self.cluster.api.base));
        builder = match token {
            Token::Admin => builder.bearer_auth(&self.cluster.coordinator.admin_token),
            Token::Account => builder.bearer_auth(&self.account_token),
            Token::Wrong => builder.bearer_auth("not-a-token"),
            Token::Missing => builder,
        };
        let sent = builder.header("content-type", content_type).body(body).send();
        let response = sent.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        *self.statuses.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(status < 500, "{} answered {}: {}", what, status, text);
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{what} {status}: not JSON ({e}): {text}")))?;
        if status >= 400 {
            let error = &answer["error"];
            prop_assert!(
                error["code"].is_string() && error["message"].is_string(),
                "{} {}: not {{\"error\":{{\"code\",\"message\"}}}}: {}",
                what,
                status,
                text
            );
        }
        let health = self.cluster.api.try_get("/healthz").map_err(TestCaseError::fail)?;
        prop_assert_eq!(health.0, 200, "after {}: /healthz {}", what, health.1);
        Ok(())
    }

    fn run<S: Strategy<Value = (Route, Token, String, Vec<u8>)>>(&self, cases: u32, inputs: S) {
        let mut runner = TestRunner::new(config(cases));
        let outcome = runner.run(&inputs, |(route, token, content_type, body)| {
            self.check(route, token, &content_type, body)
        });
        if let Err(error) = outcome {
            panic!("{error}");
        }
        println!("answers by status: {:?}", self.statuses.borrow());
    }
}

/// A body each route accepts from its account.
fn valid_body(route: Route) -> Value {
    let gpu = json!({ "models": ["H100"], "count": 1 });
    match route {
        Route::CreateInstance => json!({
            "name": "fuzzed", "gpu": gpu, "cpu_cores": { "min": 1, "max": 8 },
            "memory_gib": { "min": 1 }, "billing": { "mode": "spot", "max_price": "1.20" },
            "command": ["sleep", "60"], "env": { "A": "b" }, "snapshot": { "enabled": false },
        }),
        Route::CreateDeployment => json!({
            "name": "fuzzed", "mode": "replicaset", "replicas": 1,
            "specs": [{ "gpu": gpu, "billing": { "mode": "regular" } }],
            "template": { "command": ["sleep", "60"], "env": {}, "snapshot": { "enabled": false } },
        }),
        Route::CreateAccount => json!({ "name": "other", "webhook_url": "http://127.0.0.1:9/" }),
        Route::Pay | Route::PayUnknownAccount => json!({ "amount": "1.50" }),
        Route::ChangeInstance => json!({ "name": "renamed", "env": { "K": "v" } }),
        Route::ChangeDeployment => json!({ "replicas": 1, "template": { "command": ["true"] } }),
    }
}

const FIELDS: [&str; 25] = [
    "name",
    "account_id",
    "gpu",
    "models",
    "count",
    "cpu_cores",
    "memory_gib",
    "min",
    "max",
    "billing",
    "mode",
    "max_price",
    "command",
    "env",
    "snapshot",
    "enabled",
    "restore_from",
    "replicas",
    "completions",
    "parallelism",
    "retry_limit",
    "specs",
    "template",
    "webhook_url",
    "amount",
];

/// Strings the handlers branch on, and amounts around the limits of i64 micro-units.
const STRINGS: [&str; 24] = [
    "",
    " ",
    "H100",
    "RTX 5090",
    "spot",
    "regular",
    "replicaset",
    "job",
    "container",
    "1.20",
    "0",
    "-1",
    "0.000001",
    "0.0000001",
    "9223372036854.775807",
    "9223372036854.775808",
    "-9223372036854.775808",
    "1e3",
    "NaN",
    "https://",
    "\u{0}",
    "é🚀",
    "../../etc/passwd",
    "'; DROP TABLE accounts; --",
];

/// Integers at type boundaries; 10000 (the largest replica count allowed) is left out so
/// that a case cannot queue ten thousand instances.
const NUMBERS: [i64; 11] =
    [0, 1, -1, 2, 9, 10_001, 4_294_967_295, 4_294_967_296, i64::MAX, i64::MIN, -4_294_967_296];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        select(NUMBERS.to_vec()).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::from)),
        select(STRINGS.to_vec()).prop_map(Value::from),
        prop_oneof![".{0,24}", "a{200,300}"].prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELDS.to_vec()).prop_map(str::to_owned), 1 => ".{0,12}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An edit of a valid body at one of its JSON pointers (chosen modulo their number).
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(at, v)| Edit::Set(at, v)),
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), key(), json_value()).prop_map(|(at, k, v)| Edit::Add(at, k, v)),
    ]
}

fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out));
        }
        _ => {}
    }
    out.push(at);
}

fn apply(body: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    let pick = |at: &usize| all[at % all.len()].clone();
    match edit {
        Edit::Set(at, value) => {
            if let Some(target) = body.pointer_mut(&pick(at)) {
                *target = value.clone();
            }
        }
        Edit::Remove(at) => {
            let pointer = pick(at);
            let Some((parent, last)) = pointer.rsplit_once('/') else { return };
            let last = last.replace("~1", "/").replace("~0", "~");
            match body.pointer_mut(parent) {
                Some(Value::Object(map)) => drop(map.remove(&last)),
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        Edit::Add(at, key, value) => match body.pointer_mut(&pick(at)) {
            Some(Value::Object(map)) => drop(map.insert(key.clone(), value.clone())),
            Some(Value::Array(items)) => items.push(value.clone()),
            _ => {}
        },
    }
}

fn route() -> impl Strategy<Value = Route> {
    select(ROUTES.to_vec())
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![4 => Just(Token::Account), 4 => Just(Token::Admin), 1 => Just(Token::Wrong),
        1 => Just(Token::Missing)]
}

const JSON: &str = "application/json";

#[test]
fn random_json_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let inputs = (route(), token(), json_value())
        .prop_map(|(r, t, v)| (r, t, JSON.to_owned(), v.to_string().into_bytes()));
    target.run(128, inputs);
}

#[test]
fn edited_valid_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let inputs = (route(), token(), vec(edit(), 0..4)).prop_map(|(r, t, edits)| {
        let mut body = valid_body(r);
        edits.iter().for_each(|e| apply(&mut body, e));
        (r, t, JSON.to_owned(), body.to_string().into_bytes())
    });
    target.run(256, inputs);
}

#[test]
fn malformed_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let cut = (route(), token(), any::<usize>()).prop_map(|(r, t, at)| {
        let text = valid_body(r).to_string();
        (r, t, JSON.to_owned(), text.as_bytes()[..at % text.len()].to_vec())
    });
    let bytes = (route(), token(), vec(any::<u8>(), 0..256))
        .prop_map(|(r, t, b)| (r, t, JSON.to_owned(), b));
    let deep = (route(), token(), 100usize..5_000).prop_map(|(r, t, depth)| {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        (r, t, JSON.to_owned(), text.into_bytes())
    });
    let content_type = prop_oneof![
        select(vec!["text/plain", "", "application/json; charset=latin1"]).prop_map(String::from),
        "[ -~]{0,24}",
    ];
    let typed = (route(), token(), content_type)
        .prop_map(|(r, t, ct)| (r, t, ct, valid_body(r).to_string().into_bytes()));
    let duplicate = (route(), token()).prop_map(|(r, t)| {
        let text = valid_body(r).to_string();
        let twice = format!("{},{}", &text[..text.len() - 1], &text[1..]);
        (r, t, JSON.to_owned(), twice.into_bytes())
    });
    target.run(128, prop_oneof![cut, bytes, deep, typed, duplicate]);
}

#[test]
fn a_body_over_the_size_limit_is_refused_not_a_crash() {
    let target = Target::start();
    let name = "x".repeat(2 << 20);
    let body = json!({ "name": name, "gpu": { "models": ["H100"] }, "command": ["true"] });
    for route in ROUTES {
        for token in [Token::Admin, Token::Account] {
            let answer = target.check(route, token, JSON, body.to_string().into_bytes());
            answer.unwrap_or_else(|e| panic!("{route:?}: {e}"));
        }
    }
}
