//! `gpuspot snapshots [list]` and `gpuspot snapshots show ID`: the snapshots kept for
//! instances and deployments (docs/contracts.md#snapshots).

use super::Ctx;
use crate::args::SnapshotsCmd;
use crate::client::encode_segment;
use crate::output::{Table, cell, opt, record};
use gpuspot_api::Snapshot;

const SHOW_ORDER: &[&str] =
    &["id", "instance_id", "deployment_id", "account_id", "size", "sha256", "created_at"];

pub fn run(ctx: &Ctx, cmd: Option<SnapshotsCmd>) -> anyhow::Result<()> {
    match cmd.unwrap_or(SnapshotsCmd::List) {
        SnapshotsCmd::List => list(ctx),
        SnapshotsCmd::Show { id } => {
            let path = format!("/v1/snapshots/{}", encode_segment(&id));
            let snapshot = ctx.client.get::<Snapshot>(&path)?;
            ctx.show(&snapshot, |s| print!("{}", record(s, SHOW_ORDER)))
        }
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.list::<Snapshot>("/v1/snapshots", None)?;
    ctx.show(&answer, |snapshots| {
        let mut headers = vec!["ID", "INSTANCE", "DEPLOYMENT", "SIZE", "AGE"];
        if ctx.wide() {
            headers.extend(["ACCOUNT", "SHA256"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for snapshot in snapshots {
            let mut row = vec![
                cell(&snapshot.id),
                cell(&snapshot.instance_id),
                opt(snapshot.deployment_id.as_ref()),
                cell(snapshot.size),
                super::lookup::age(Some(snapshot.created_at), now),
            ];
            if ctx.wide() {
                row.extend([cell(&snapshot.account_id), cell(&snapshot.sha256)]);
            }
            table.row(row);
        }
        table.print();
    })
}
