//! `gpuspot accounts list|create|set-email|set-webhook|quota|show|pay|ledger|rotate-token|
//! disable|enable` and `gpuspot whoami`; an account goes by name or id (an account token: its
//! own name).

use super::{Ctx, lookup};
use crate::args::{AccountsCmd, Limit, QuotaArgs};
use crate::client::{Answer, encode_segment};
use crate::errors::usage;
use crate::output::{Table, cell, opt, record, time};
use gpuspot_api::{Account, AccountWithToken, LedgerEntry, PaymentReceipt, Quota, Whoami};
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
    let named = |id: &str| lookup::id_of::<Account>(ctx, &lookup::ACCOUNT, id);
    match cmd {
        AccountsCmd::List => list(ctx),
        AccountsCmd::Create { name, email, webhook_url } => create(ctx, &name, email, webhook_url),
        AccountsCmd::SetWebhook { id, url } => {
            let url = if url.is_empty() { Value::Null } else { Value::String(url) };
            let body = json!({ "webhook_url": url });
            change(ctx, &named(&id)?, &body)
        }
        AccountsCmd::Quota(args) => change(ctx, &named(&args.id)?, &quota_body(&args)?),
        AccountsCmd::SetEmail { id, email } => {
            let email = if email.is_empty() { Value::Null } else { Value::String(email) };
            change(ctx, &named(&id)?, &json!({ "email": email }))
        }
        AccountsCmd::Show { id } => show(ctx, &named(&id)?),
        AccountsCmd::Pay { id, amount } => pay(ctx, &named(&id)?, &amount),
        AccountsCmd::Ledger { id } => ledger(ctx, &named(&id)?),
        AccountsCmd::RotateToken { id } => {
            let token_path = format!("{}/token", path(&named(&id)?));
            let account: Answer<AccountWithToken> = ctx.client.post(&token_path, &json!({}))?;
            ctx.show(&account, |a| show_account(&a.account, Some(&a.token)))
        }
        AccountsCmd::Disable { id } => set_disabled(ctx, &named(&id)?, true),
        AccountsCmd::Enable { id } => set_disabled(ctx, &named(&id)?, false),
    }
}

/// `gpuspot whoami`: the token's account (`role: admin` for the admin token, with the
/// operator account it acts for).
pub fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let me = ctx.client.get::<Whoami>("/v1/whoami")?;
    let order = ["role", "name", "id", "balance", "overdue_since", "quota", "usage", "email"];
    ctx.show(&me, |me| print!("{}", record(me, &order)))
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.list::<Account>("/v1/accounts", None)?;
    ctx.show(&answer, |accounts| {
        let mut headers = vec!["ID", "NAME", "BALANCE", "OVERDUE SINCE", "DISABLED", "EMAIL"];
        if ctx.wide() {
            headers.extend(["QUOTA", "USAGE", "AGE"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for account in accounts {
            let mut row = vec![
                cell(&account.id),
                cell(&account.name),
                cell(account.balance),
                opt(account.overdue_since.as_ref().map(time)),
                cell(account.disabled),
                opt(account.email.as_deref()),
            ];
            if ctx.wide() {
                let (quota, usage) = (&account.quota, &account.usage);
                row.push(format!(
                    "max_gpus={}, max_instances={}",
                    opt(quota.max_gpus),
                    opt(quota.max_instances)
                ));
                row.push(format!("gpus={}, instances={}", usage.gpus, usage.instances));
                row.push(lookup::age(Some(account.created_at), now));
            }
            table.row(row);
        }
        table.print();
    })
}

fn set_disabled(ctx: &Ctx, id: &str, disabled: bool) -> anyhow::Result<()> {
    change(ctx, id, &json!({ "disabled": disabled }))
}

/// `PATCH /v1/accounts/{id}` with `body`; prints the changed account.
fn change(ctx: &Ctx, id: &str, body: &Value) -> anyhow::Result<()> {
    let account = ctx.client.patch::<Account>(&path(id), body)?;
    ctx.show(&account, |a| show_account(a, None))
}

fn path(id: &str) -> String {
    format!("/v1/accounts/{}", encode_segment(id))
}

/// `key: value` lines, the quota and usage in words; the token when there is one (shown
/// this once).
fn show_account(account: &Account, token: Option<&str>) {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        account: &'a Account,
        quota: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
    }
    let shown = Shown { account, quota: quota_text(&account.quota), token };
    print!("{}", record(&shown, SHOW_ORDER));
}

/// `max_gpus=8, max_instances=unlimited`.
fn quota_text(quota: &Quota) -> String {
    let limit = |n: Option<u32>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    format!("max_gpus={}, max_instances={}", limit(quota.max_gpus), limit(quota.max_instances))
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
    let account: Answer<AccountWithToken> = ctx.client.post("/v1/accounts", &body)?;
    ctx.show(&account, |a| show_account(&a.account, Some(&a.token)))
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let account = ctx.client.get::<Account>(&path(id))?;
    ctx.show(&account, |a| show_account(a, None))
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
    let answer: Answer<PaymentReceipt> =
        ctx.client.post(&format!("{}/payments", path(id)), &body)?;
    ctx.show(&answer, |receipt| println!("{}", paid(receipt, id)))
}

/// `paid 10.00 to acme (a-…): balance 12.50`.
fn paid(receipt: &PaymentReceipt, id: &str) -> String {
    let (entry, name) = (&receipt.entry, &receipt.account.name);
    format!("paid {} to {name} ({id}): balance {}", entry.amount, entry.balance_after)
}

fn ledger(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let answer = ctx.client.list::<LedgerEntry>(&format!("{}/ledger", path(id)), None)?;
    ctx.show(&answer, |entries| {
        let headers = ["AT", "KIND", "AMOUNT", "INSTANCE", "BALANCE AFTER"];
        let mut table = Table::new(&headers);
        for entry in entries {
            table.row(vec![
                time(&entry.at),
                cell(entry.kind),
                cell(entry.amount),
                opt(entry.instance_id.as_ref()),
                cell(entry.balance_after),
            ]);
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
        let quota = Quota { max_gpus: None, max_instances: Some(1) };
        assert_eq!(quota_text(&quota), "max_gpus=unlimited, max_instances=1");
    }

    #[test]
    fn a_payment_prints_one_line_not_json() {
        let account = json!({"id": "a-1", "name": "acme", "balance": "12.50", "overdue": false,
            "overdue_since": null, "overdue_deadline": null, "webhook_url": null,
            "email": null, "disabled": false, "created_at": "2026-12-03T12:00:00Z",
            "quota": {"max_gpus": null, "max_instances": null},
            "usage": {"gpus": 0, "instances": 0}});
        let entry = json!({"id": 1, "at": "2026-12-03T12:00:00Z", "kind": "payment",
            "amount": "10.00", "instance_id": null, "balance_after": "12.50"});
        let receipt: PaymentReceipt =
            serde_json::from_value(json!({"account": account, "entry": entry})).expect("read");
        assert_eq!(paid(&receipt, "a-1"), "paid 10.00 to acme (a-1): balance 12.50");
    }
}
