//! `loadgen URL (--rate N | --concurrency N) --seconds S`: the load generator of
//! `scripts/bench_gateway.sh`; prints one JSON line (sent, ok, failed, p50_ms, p99_ms, rps).

use gpuspot_e2e::load::{LoadReport, fixed_rate, max_rate};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1)?.parse().ok()
    };
    let url = args.first().filter(|u| u.starts_with("http")).cloned();
    let Some(url) = url else {
        anyhow::bail!("usage: loadgen URL (--rate N | --concurrency N) --seconds S");
    };
    let seconds = Duration::from_secs(flag("--seconds").unwrap_or(10));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = match (flag("--rate"), flag("--concurrency")) {
        (Some(rate), _) => {
            let stop = Arc::new(AtomicBool::new(false));
            runtime.block_on(fixed_rate(url, rate as u32, stop, Some(seconds)))
        }
        (None, Some(n)) => runtime.block_on(max_rate(url, n as usize, seconds)),
        (None, None) => anyhow::bail!("give --rate N or --concurrency N"),
    };
    print(&report);
    Ok(())
}

fn print(report: &LoadReport) {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let line = serde_json::json!({
        "sent": report.sent, "ok": report.ok, "failed": report.failures.len(),
        "p50_ms": ms(report.percentile(0.50)), "p99_ms": ms(report.percentile(0.99)),
        "rps": (report.rps() * 10.0).round() / 10.0,
        "first_failures": report.failures.iter().take(5).collect::<Vec<_>>(),
    });
    println!("{line}");
}
