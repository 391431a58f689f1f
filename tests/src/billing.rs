//! Accounts for the billing scenarios (docs/contracts.md#billing): an account created by the admin,
//! with an [`Api`] that uses its own token, payments and the ledger in micro-units.

use crate::api::{Api, s};
use crate::values::{micros, money};
use serde_json::{Value, json};

/// An account and a client that acts as it.
pub struct Account {
    pub id: String,
    pub name: String,
    pub api: Api,
}

/// `POST /v1/accounts` as the admin; must answer 201 with a token.
pub fn create_account(admin: &Api, name: &str) -> Account {
    create_account_with(admin, &json!({ "name": name }))
}

/// [`create_account`] with a whole body, e.g. `{"name", "email"}`.
pub fn create_account_with(admin: &Api, request: &Value) -> Account {
    let name = s(request, "name");
    let (status, body) = admin.post("/v1/accounts", request);
    assert_eq!(status, 201, "POST /v1/accounts: {body}");
    let token = s(&body, "token");
    assert!(!token.is_empty(), "no token for the new account: {body}");
    assert_eq!(money(&body, "balance"), 0, "a new account starts at zero: {body}");
    Account {
        id: s(&body, "id").to_owned(),
        name: name.to_owned(),
        api: Api::new(&admin.base, Some(token)),
    }
}

impl Account {
    /// `POST /v1/accounts/{id}/payments` made by `payer`; must answer 201. The account after.
    pub fn pay(&self, payer: &Api, amount: &str) -> Value {
        let path = format!("/v1/accounts/{}/payments", self.id);
        let (status, body) = payer.post(&path, &json!({ "amount": amount }));
        assert_eq!(status, 201, "POST {path}: {body}");
        assert_eq!(money(&body["entry"], "amount"), micros(amount), "{body}");
        body["account"].clone()
    }

    /// `GET /v1/accounts/{id}` as the account itself.
    pub fn show(&self) -> Value {
        self.api.get_ok(&format!("/v1/accounts/{}", self.id))
    }

    /// The ledger as the account sees it, oldest first.
    pub fn ledger(&self) -> Vec<Value> {
        let body = self.api.get_ok(&format!("/v1/accounts/{}/ledger", self.id));
        let mut entries = body.as_array().cloned().unwrap_or_else(|| panic!("ledger: {body}"));
        entries.sort_by_key(|e| e["id"].as_u64());
        entries
    }
}

/// The charges booked for instance `id` in `ledger`, in micro-units (positive).
pub fn charged(ledger: &[Value], id: &str) -> i64 {
    ledger
        .iter()
        .filter(|e| s(e, "kind") == "charge" && s(e, "instance_id") == id)
        .map(|e| -money(e, "amount"))
        .sum()
}

/// Checks that the ledger adds up: each `balance_after` is the running sum of the
/// amounts, and the last one (or zero) is `balance`.
pub fn assert_ledger_adds_up(ledger: &[Value], balance: i64) {
    let mut sum = 0;
    for entry in ledger {
        sum += money(entry, "amount");
        assert_eq!(money(entry, "balance_after"), sum, "running sum broken at {entry}");
    }
    assert_eq!(sum, balance, "the balance is not the sum of the ledger: {ledger:?}");
}

/// A paid-up account with a running, long-lived instance (one RTX 5090 of the seed's host
/// A); (account, instance id).
pub fn running_instance(c: &crate::Cluster, name: &str) -> (Account, String) {
    let account = create_account(&c.api, name);
    account.pay(&c.api, "100.00");
    let request = crate::request(name, &["RTX 5090"], 1, &["sleep", "600"]);
    let id = s(&account.api.create(&request), "id").to_owned();
    c.wait_state(&id, "running");
    (account, id)
}
