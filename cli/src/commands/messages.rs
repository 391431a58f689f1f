//! `gpuspot messages [--unread] [--long]` and `gpuspot messages read ID`: the inbox.

use super::Ctx;
use crate::args::{MessagesArgs, MessagesCmd};
use crate::client::encode_segment;
use crate::output::{Table, field, items};
use serde_json::Value;

pub fn run(ctx: &Ctx, args: &MessagesArgs) -> anyhow::Result<()> {
    if let Some(MessagesCmd::Read { id }) = &args.cmd {
        let path = format!("/v1/messages/{}/read", encode_segment(id));
        let message = ctx.client.post_json(&path, &serde_json::json!({}))?;
        return ctx.emit(&message, print_message);
    }
    let path = if args.unread { "/v1/messages?unread=true" } else { "/v1/messages" };
    let answer = ctx.client.get_json(path)?;
    ctx.emit(&answer, |v| {
        if args.long {
            items(v, "messages").iter().for_each(print_message);
            return;
        }
        let mut table = Table::new(&["ID", "AT", "READ", "MAIL", "SUBJECT"]);
        for m in items(v, "messages") {
            let read = if m["read"].as_bool() == Some(true) { "yes" } else { "no" };
            let row = vec![field(m, "id"), field(m, "at"), read.into(), field(m, "mail")];
            table.row(row.into_iter().chain([field(m, "subject")]).collect());
        }
        table.print();
    })
}

fn print_message(message: &Value) {
    println!("{}  {}", field(message, "at"), field(message, "id"));
    println!("Subject: {}\n", field(message, "subject"));
    println!("{}", field(message, "body").trim_end());
    println!();
}
