//! `gpuspot instances interrupt NAME [--notice 2m]`: a drill (docs/architecture.md,
//! "Faults and drills"). The instance gets a real termination notice with reason `drill`,
//! as a reclaim would give it; its deployment replaces it and it stops at the deadline.

use super::{Ctx, lookup};
use crate::client::{Answer, encode_segment};
use crate::output::opt;
use gpuspot_api::Instance;
use serde_json::json;

/// The longest notice the API accepts.
const MAX_NOTICE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub fn run(ctx: &Ctx, id: &str, notice: Option<&str>) -> anyhow::Result<()> {
    let body = match notice {
        Some(text) => {
            let parsed = humantime::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("--notice {text:?}: {e} (e.g. 2m)"))?;
            if parsed.is_zero() || parsed > MAX_NOTICE {
                anyhow::bail!("--notice {text:?}: must be between 1s and 24h");
            }
            json!({ "notice": text })
        }
        None => json!({}),
    };
    let id = lookup::instance_id(ctx, id)?;
    let path = format!("/v1/instances/{}/interrupt", encode_segment(&id));
    let noticed: Answer<Instance> = ctx.client.post(&path, &body)?;
    ctx.show(&noticed, |i| {
        let reason = opt(i.termination_reason);
        println!("{} {} ({reason}) until {}", i.id, i.state, opt(i.termination_time))
    })
}
