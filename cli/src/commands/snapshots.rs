//! `gpuspot snapshots [list]` and `gpuspot snapshots show ID`: the snapshots kept for
//! instances and deployments (DESIGN §8).

use super::Ctx;
use crate::args::SnapshotsCmd;
use crate::client::encode_segment;
use crate::output::{Table, field, fields, items};

const SHOW_ORDER: &[&str] =
    &["id", "instance_id", "deployment_id", "account_id", "size", "sha256", "created_at"];

pub fn run(ctx: &Ctx, cmd: Option<SnapshotsCmd>) -> anyhow::Result<()> {
    match cmd.unwrap_or(SnapshotsCmd::List) {
        SnapshotsCmd::List => list(ctx),
        SnapshotsCmd::Show { id } => {
            let snapshot =
                ctx.client.get_json(&format!("/v1/snapshots/{}", encode_segment(&id)))?;
            ctx.emit(&snapshot, |v| print!("{}", fields(v, SHOW_ORDER)))
        }
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get_list("/v1/snapshots", None)?;
    ctx.emit(&answer, |v| {
        let mut headers = vec!["ID", "INSTANCE", "DEPLOYMENT", "SIZE", "AGE"];
        if ctx.wide() {
            headers.extend(["ACCOUNT", "SHA256"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for snapshot in items(v, "snapshots") {
            let created = snapshot.get("created_at").and_then(serde_json::Value::as_str);
            let mut row = vec![
                field(snapshot, "id"),
                field(snapshot, "instance_id"),
                field(snapshot, "deployment_id"),
                field(snapshot, "size"),
                super::lookup::age(created, now),
            ];
            if ctx.wide() {
                row.extend([field(snapshot, "account_id"), field(snapshot, "sha256")]);
            }
            table.row(row);
        }
        table.print();
    })
}
