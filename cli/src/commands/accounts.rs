//! `gpuspot accounts list|create|set-email|show|pay|ledger|rotate-token|disable|enable` and
//! `gpuspot whoami`; an account goes by name or id (an account token: its own name).

use super::{Ctx, lookup};
use crate::args::AccountsCmd;
use crate::client::encode_segment;
use crate::errors::usage;
use crate::output::{Table, field, fields, items};
use gpuspot_common::Money;
use serde_json::{Value, json};

const SHOW_ORDER: &[&str] =
    &["id", "name", "email", "balance", "overdue_since", "overdue_deadline", "disabled", "token"];

pub fn run(ctx: &Ctx, cmd: AccountsCmd) -> anyhow::Result<()> {
    let named = |id: &str| lookup::id_of(ctx, &lookup::ACCOUNT, id);
    match cmd {
        AccountsCmd::List => list(ctx),
        AccountsCmd::Create { name, email } => create(ctx, &name, email),
        AccountsCmd::SetEmail { id, email } => {
            let email = if email.is_empty() { Value::Null } else { Value::String(email) };
            let account = ctx.client.patch_json(&path(&named(&id)?), &json!({ "email": email }))?;
            ctx.emit(&account, |v| print!("{}", fields(v, SHOW_ORDER)))
        }
        AccountsCmd::Show { id } => show(ctx, &named(&id)?),
        AccountsCmd::Pay { id, amount } => pay(ctx, &named(&id)?, &amount),
        AccountsCmd::Ledger { id } => ledger(ctx, &named(&id)?),
        AccountsCmd::RotateToken { id } => {
            let token_path = format!("{}/token", path(&named(&id)?));
            let account = ctx.client.post_json(&token_path, &json!({}))?;
            ctx.emit(&account, |v| print!("{}", fields(v, SHOW_ORDER)))
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
    ctx.emit(&account, |v| print!("{}", fields(v, SHOW_ORDER)))
}

fn path(id: &str) -> String {
    format!("/v1/accounts/{}", encode_segment(id))
}

fn create(ctx: &Ctx, name: &str, email: Option<String>) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        return usage("the account name is empty");
    }
    let mut body = json!({ "name": name });
    if let Some(email) = email {
        body["email"] = Value::String(email);
    }
    let account = ctx.client.post_json("/v1/accounts", &body)?;
    ctx.emit(&account, |v| print!("{}", fields(v, SHOW_ORDER)))
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let account = ctx.client.get_json(&path(id))?;
    ctx.emit(&account, |v| print!("{}", fields(v, SHOW_ORDER)))
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
    fn a_payment_prints_one_line_not_json() {
        let answer = json!({"account": {"name": "acme", "balance": "10.00"},
                            "entry": {"amount": "10.00", "balance_after": "10.00"}});
        assert_eq!(paid(&answer, "a-1", "10.00"), "paid 10.00 to acme (a-1): balance 10.00");
        assert_eq!(paid(&json!({}), "a-1", "1.00"), "paid 1.00 to a-1 (a-1): balance -");
    }
}
