//! The coordinator under fuzzing: the routes that take a JSON body, who calls them, a body
//! each accepts, and [`Target`], which sends one case and checks the answer and `/healthz`.

use gpuspot_e2e::{Api, Cluster, cluster, request, s};
use proptest::prelude::*;
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
pub enum Route {
    CreateInstance,
    CreateDeployment,
    CreateAccount,
    Pay,
    PayUnknownAccount,
    ChangeInstance,
    ChangeDeployment,
}

pub const ROUTES: [Route; 7] = [
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
pub enum Token {
    Admin,
    Account,
    Wrong,
    Missing,
}

/// One coordinator with an account (token and credit), a queued instance and a deployment
/// of that account, so the routes with an id in their path reach their handlers.
pub struct Target {
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
    pub fn start() -> Target {
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
    pub fn check(
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

    pub fn run<S: Strategy<Value = (Route, Token, String, Vec<u8>)>>(&self, cases: u32, inputs: S) {
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
pub fn valid_body(route: Route) -> Value {
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
