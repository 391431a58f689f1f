//! `gpuspot pools [list]` (prices and availability, worded as seed 003's spot status page)
//! and `gpuspot pools history MODEL [--hours N]` (points and an ASCII chart).

use super::Ctx;
use crate::args::PoolsCmd;
use crate::chart;
use crate::client::encode_segment;
use crate::errors::usage;
use crate::output::{Table, cell, time};
use gpuspot_api::{Pool, PricePoint};
use gpuspot_common::Money;

const CHART_WIDTH: usize = 60;
const CHART_HEIGHT: usize = 8;

pub fn run(ctx: &Ctx, cmd: Option<PoolsCmd>) -> anyhow::Result<()> {
    match cmd.unwrap_or(PoolsCmd::List) {
        PoolsCmd::List => list(ctx),
        PoolsCmd::History { model, hours } => history(ctx, &model, hours),
    }
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get::<Vec<Pool>>("/v1/pools")?;
    ctx.show(&answer, |pools| {
        let headers = ["MODEL", "LIST PRICE", "MARKET PRICE", "AVAILABILITY", "TOTAL", "NOTICE"];
        let mut table = Table::new(&headers);
        for pool in pools {
            table.row(vec![
                cell(&pool.model),
                cell(pool.list_price),
                cell(pool.market_price),
                availability(pool.available),
                cell(pool.total),
                cell(&pool.notice_period),
            ]);
        }
        table.print();
    })
}

/// "Currently available (n)" or "No capacity currently available".
pub fn availability(available: u32) -> String {
    match available {
        0 => "No capacity currently available".to_owned(),
        n => format!("Currently available ({n})"),
    }
}

fn history(ctx: &Ctx, model: &str, hours: u32) -> anyhow::Result<()> {
    let pools = ctx.client.get::<Vec<Pool>>("/v1/pools")?;
    let models: Vec<String> = pools.body.into_iter().map(|p| p.model).collect();
    let model = pool_named(&models, model)?;
    let model = model.as_str();
    let path = format!("/v1/pools/{}/price-history?hours={hours}", encode_segment(model));
    let answer = ctx.client.get::<Vec<PricePoint>>(&path)?;
    ctx.show(&answer, |points| {
        if points.is_empty() {
            println!("no price history for {model} in the last {hours} h");
            return;
        }
        let mut table = Table::new(&["AT", "PRICE"]);
        for point in points {
            table.row(vec![time(&point.at), cell(point.price)]);
        }
        table.print();
        println!();
        for line in chart_lines(points) {
            println!("{line}");
        }
    })
}

/// The pool a model names: its exact name, the pool whose name the NVML name contains
/// ("NVIDIA GeForce RTX 5090" → "RTX 5090"; the longest wins, so "RTX PRO 6000" beats
/// "RTX 6000"), or the one pool whose name contains it ("5090"); case is ignored.
fn pool_named(models: &[String], given: &str) -> anyhow::Result<String> {
    let wanted = given.trim().to_lowercase();
    if let Some(exact) = models.iter().find(|m| m.to_lowercase() == wanted) {
        return Ok(exact.clone());
    }
    let within = models.iter().filter(|m| wanted.contains(&m.to_lowercase()));
    if let Some(longest) = within.max_by_key(|m| m.len()) {
        return Ok(longest.clone());
    }
    let containing: Vec<&String> =
        models.iter().filter(|m| m.to_lowercase().contains(&wanted)).collect();
    match containing.as_slice() {
        [one] => Ok((*one).clone()),
        [] => usage(format!("no pool for {given:?}; pools: {}", models.join(", "))),
        many => usage(format!(
            "{given:?} matches several pools: {}",
            many.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The chart under the points, with the first and last time beneath it.
fn chart_lines(points: &[PricePoint]) -> Vec<String> {
    let prices: Vec<i64> = points.iter().map(|p| Money::micros(p.price)).collect();
    let mut lines = chart::render(&prices, CHART_WIDTH, CHART_HEIGHT);
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        lines.push(format!("{} → {}", time(&first.at), time(&last.at)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn availability_is_worded_like_seed_003() {
        assert_eq!(availability(3), "Currently available (3)");
        assert_eq!(availability(0), "No capacity currently available");
    }

    #[test]
    fn a_pool_is_found_by_its_nvml_name_too() {
        let models: Vec<String> =
            ["RTX 5090", "RTX 6000", "RTX PRO 6000"].iter().map(|m| m.to_string()).collect();
        let pick = |given| pool_named(&models, given).ok();
        assert_eq!(pick("RTX 5090").as_deref(), Some("RTX 5090"));
        assert_eq!(pick("NVIDIA GeForce RTX 5090").as_deref(), Some("RTX 5090"));
        assert_eq!(pick("NVIDIA RTX PRO 6000 Blackwell").as_deref(), Some("RTX PRO 6000"));
        assert_eq!(pick("rtx 5090").as_deref(), Some("RTX 5090"));
        assert_eq!(pick("5090").as_deref(), Some("RTX 5090"));
        assert_eq!(pick("6000"), None, "ambiguous");
        assert_eq!(pick("H100"), None);
    }

    #[test]
    fn chart_has_a_time_axis() {
        let points: Vec<PricePoint> = serde_json::from_value(json!([
            {"at": "2026-04-08T00:00:00Z", "price": "0.25"},
            {"at": "2026-04-08T01:00:00Z", "price": "0.50"}
        ]))
        .expect("points");
        let lines = chart_lines(&points);
        assert_eq!(lines.len(), CHART_HEIGHT + 1);
        assert!(lines[0].starts_with("0.50 |"));
        assert_eq!(lines[CHART_HEIGHT], "2026-04-08T00:00:00Z → 2026-04-08T01:00:00Z");
    }
}
