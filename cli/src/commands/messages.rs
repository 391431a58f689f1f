//! `gpuspot messages [--unread] [--long]` and `gpuspot messages read ID`: the inbox.

use super::Ctx;
use crate::args::{MessagesArgs, MessagesCmd};
use crate::client::encode_segment;
use crate::output::{Table, cell, time};
use gpuspot_api::Message;

pub fn run(ctx: &Ctx, args: &MessagesArgs) -> anyhow::Result<()> {
    if let Some(MessagesCmd::Read { id }) = &args.cmd {
        let path = format!("/v1/messages/{}/read", encode_segment(id));
        let message = ctx.client.post::<Message>(&path, &serde_json::json!({}))?;
        return ctx.show(&message, print_message);
    }
    let path = if args.unread { "/v1/messages?unread=true" } else { "/v1/messages" };
    let answer = ctx.client.get::<Vec<Message>>(path)?;
    ctx.show(&answer, |messages| {
        if args.long {
            messages.iter().for_each(print_message);
            return;
        }
        let mut table = Table::new(&["ID", "AT", "READ", "MAIL", "SUBJECT"]);
        for m in messages {
            let read = if m.read { "yes" } else { "no" };
            let row = vec![cell(&m.id), time(&m.at), read.into(), cell(m.mail), cell(&m.subject)];
            table.row(row);
        }
        table.print();
    })
}

fn print_message(message: &Message) {
    println!("{}  {}", time(&message.at), cell(&message.id));
    println!("Subject: {}\n", cell(&message.subject));
    println!("{}", cell(&message.body).trim_end());
    println!();
}
