//! `gpuspot accounts list|create|set-email|set-webhook|quota|show|pay|ledger|rotate-token|
//! disable|enable` and `gpuspot whoami`; an account goes by name or id (an account token: its
//! own name).

use super::{Ctx, lookup};
use crate::args::{AccountsCmd, Limit, QuotaArgs};
use crate::client::encode_segment;
use crate::errors::usage;
use crate::output::{Table, field, fields, items};
use gpuspot_common::Money;
use serde_json::{Value, json};

const SHOW_ORDER: &[&str] = &[
    "id",
    "name",
    "email",
    "webhook_url",
    "balance",
    "overdue_since",
    "overdue_deadline",
    "disabled",
    "quota",
    "usage",
    "created_at",
    "token",
];

pub fn run(ctx: &Ctx, cmd: AccountsCmd) -> anyhow::Result<()> {
    let named = |id: &str| lookup::id_of(ctx, &lookup::ACCOUNT, id);
    match cmd {
        AccountsCmd::List => list(ctx),
        AccountsCmd::Create { name, email, webhook_url } => create(ctx, &name, email, webhook_url),
        AccountsCmd::SetWebhook { id, url } => {
            let url = if url.is_empty() { Value::Null } else { Value::String(url) };
            let body = json!({ "webhook_url": url });
            let account = ctx.client.patch_json(&path(&named(&id)?), &body)?;
            ctx.emit(&account, show_account)
        }
        AccountsCmd::Quota(args) => {
            let body = quota_body(&args)?;
            let account = ctx.client.patch_json(&path(&named(&args.id)?), &body)?;
            ctx.emit(&account, show_account)
        }
        AccountsCmd::SetEmail { id, email } => {
            let email = if email.is_empty() { Value::Null } else { Value::String(email) };
            let account = ctx.client.patch_json(&path(&named(&id)?), &json!({ "email": email }))?;
            ctx.emit(&account, show_account)
        }
        AccountsCmd::Show { id } => show(ctx, &named(&id)?),
        AccountsCmd::Pay { id, amount } => pay(ctx, &named(&id)?, &amount),
        AccountsCmd::Ledger { id } => ledger(ctx, &named(&id)?),
        AccountsCmd::RotateToken { id } => {
            let token_path = format!("{}/token", path(&named(&id)?));
            let account = ctx.client.post_json(&token_path, &json!({}))?;
            ctx.emit(&account, show_account)
        }
        AccountsCmd::Disable { id } => set_disabled(ctx, &named(&id)?, true),
        AccountsCmd::Enable { id } => set_disabled(ctx, &named(&id)?, false),
    }
}

/// `gpuspot whoami`: the token's account (`role: admin` for the admin token, with the
/// operator account it acts for).
pub fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let me = ctx.client.get_json("/v1/whoami")?;
    let order = ["role", "name", "id", "balance", "overdue_since", "quota", "usage", "email"];
    ctx.emit(&me, |v| print!("{}", fields(v, &order)))
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get_list("/v1/accounts", None)?;
    ctx.emit(&answer, |v| {
        let mut headers = vec!["ID", "NAME", "BALANCE", "OVERDUE SINCE", "DISABLED", "EMAIL"];
        if ctx.wide() {
            headers.extend(["QUOTA", "USAGE", "AGE"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for account in items(v, "accounts") {
            let mut keys = vec!["id", "name", "balance", "overdue_since", "disabled", "email"];
            if ctx.wide() {
                keys.extend(["quota", "usage"]);
            }
            let mut row: Vec<String> = keys.iter().map(|k| field(account, k)).collect();
            if ctx.wide() {
                let created = account.get("created_at").and_then(Value::as_str);
                row.push(lookup::age(created, now));
            }
            table.row(row);
        }
        table.print();
    })
}

fn set_disabled(ctx: &Ctx, id: &str, disabled: bool) -> anyhow::Result<()> {
    let account = ctx.client.patch_json(&path(id), &json!({ "disabled": disabled }))?;
    ctx.emit(&account, show_account)
}

fn path(id: &str) -> String {
    format!("/v1/accounts/{}", encode_segment(id))
}

/// `key: value` lines, the quota and usage in words.
fn show_account(account: &Value) {
    let mut shown = account.clone();
    if let Some(quota) = shown.get_mut("quota") {
        *quota = Value::String(quota_text(quota));
    }
    print!("{}", fields(&shown, SHOW_ORDER));
}

/// `max_gpus=8, max_instances=unlimited`.
fn quota_text(quota: &Value) -> String {
    let limit = |key: &str| match quota.get(key) {
        Some(Value::Null) | None => "unlimited".to_owned(),
        Some(n) => n.to_string(),
    };
    format!("max_gpus={}, max_instances={}", limit("max_gpus"), limit("max_instances"))
}

/// The `PATCH` body of `accounts quota`: the limits named (`null` lifts one), or `null`
/// for the coordinator's default.
fn quota_body(args: &QuotaArgs) -> anyhow::Result<Value> {
    if args.default {
        return Ok(json!({ "quota": null }));
    }
    let limit = |l: Limit| match l {
        Limit::At(n) => json!(n),
        Limit::Unlimited => Value::Null,
    };
    let mut quota = serde_json::Map::new();
    if let Some(l) = args.max_gpus {
        quota.insert("max_gpus".into(), limit(l));
    }
    if let Some(l) = args.max_instances {
        quota.insert("max_instances".into(), limit(l));
    }
    if quota.is_empty() {
        return usage("give --max-gpus N|none, --max-instances N|none or --default");
    }
    Ok(json!({ "quota": quota }))
}

fn create(
    ctx: &Ctx,
    name: &str,
    email: Option<String>,
    webhook_url: Option<String>,
) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        return usage("the account name is empty");
    }
    let mut body = json!({ "name": name });
    if let Some(email) = email {
        body["email"] = Value::String(email);
    }
    if let Some(url) = webhook_url {
        body["webhook_url"] = Value::String(url);
    }
    let account = ctx.client.post_json("/v1/accounts", &body)?;
    ctx.emit(&account, show_account)
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let account = ctx.client.get_json(&path(id))?;
    ctx.emit(&account, show_account)
}

/// The amount as the API wants it: a positive decimal string ("10" → "10.00").
pub fn payment_body(amount: &str) -> anyhow::Result<Value> {
    match amount.parse::<Money>() {
        Ok(money) if money.micros() > 0 => Ok(json!({ "amount": money.to_string() })),
        Ok(_) => usage(format!("a payment must be above zero, not {amount}")),
        Err(e) => usage(format!("bad amount: {e}")),
    }
}

fn pay(ctx: &Ctx, id: &str, amount: &str) -> anyhow::Result<()> {
    let body = payment_body(amount)?;
    let answer = ctx.client.post_json(&format!("{}/payments", path(id)), &body)?;
    ctx.emit(&answer, |v| println!("{}", paid(v, id, &field(&body, "amount"))))
}

/// `paid 10.00 to acme (a-…): balance 12.50`, from the `{account, entry}` answer.
fn paid(answer: &Value, id: &str, amount: &str) -> String {
    let account = answer.get("account").unwrap_or(answer);
    let name = account.get("name").and_then(Value::as_str).unwrap_or(id);
    let balance = match answer.get("entry") {
        Some(entry) => field(entry, "balance_after"),
        None => field(account, "balance"),
    };
    format!("paid {amount} to {name} ({id}): balance {balance}")
}

fn ledger(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let answer = ctx.client.get_list(&format!("{}/ledger", path(id)), None)?;
    ctx.emit(&answer, |v| {
        let headers = ["AT", "KIND", "AMOUNT", "INSTANCE", "BALANCE AFTER"];
        let mut table = Table::new(&headers);
        for entry in items(v, "entries") {
            let keys = ["at", "kind", "amount", "instance_id", "balance_after"];
            table.row(keys.iter().map(|k| field(entry, k)).collect());
        }
        table.print();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::UsageError;

    #[test]
    fn payments_are_validated_and_normalised() {
        assert_eq!(payment_body("10").expect("valid"), json!({"amount": "10.00"}));
        assert_eq!(payment_body("0.5").expect("valid"), json!({"amount": "0.50"}));
        for bad in ["0", "-1.00", "ten", "1.0000001"] {
            let err = payment_body(bad).expect_err(bad);
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}");
        }
    }

    #[test]
    fn quotas_name_their_limits_or_go_back_to_the_default() {
        let args = |gpus, instances, default| QuotaArgs {
            id: "acme".into(),
            max_gpus: gpus,
            max_instances: instances,
            default,
        };
        let body = quota_body(&args(Some(Limit::At(8)), Some(Limit::Unlimited), false));
        assert_eq!(body.expect("valid"), json!({"quota": {"max_gpus": 8, "max_instances": null}}));
        assert_eq!(quota_body(&args(None, None, true)).expect("valid"), json!({"quota": null}));
        assert!(quota_body(&args(None, None, false)).is_err(), "nothing to set");
        let quota = json!({"max_gpus": null, "max_instances": 1});
        assert_eq!(quota_text(&quota), "max_gpus=unlimited, max_instances=1");
    }

    #[test]
    fn a_payment_prints_one_line_not_json() {
        let answer = json!({"account": {"name": "acme", "balance": "10.00"},
                            "entry": {"amount": "10.00", "balance_after": "10.00"}});
        assert_eq!(paid(&answer, "a-1", "10.00"), "paid 10.00 to acme (a-1): balance 10.00");
        assert_eq!(paid(&json!({}), "a-1", "1.00"), "paid 1.00 to a-1 (a-1): balance -");
    }
}
