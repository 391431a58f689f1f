//! A small load generator for scripts/bench.sh: POSTs `--count` copies of a request body to
//! `/v1/instances` over `--concurrency` keep-alive connections and reports the rate of
//! `202 Accepted` answers (each one a placement decision committed to SQLite first).
//!
//! `loadgen --url http://127.0.0.1:8080 --token T --count 2000 --concurrency 32
//!  --body '{"gpu":{"models":["H100"],"count":1},"command":["sleep","inf"]}' [--ids FILE]`
//! prints `accepted=… failed=… seconds=… per_s=…`; `--ids` writes the created ids.

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Options {
    url: String,
    token: String,
    count: usize,
    concurrency: usize,
    body: String,
    ids: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<String> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1).cloned()
    };
    let need = |name: &str| value(name).with_context(|| format!("{name} is required"));
    Ok(Options {
        url: need("--url")?,
        token: need("--token")?,
        count: need("--count")?.parse().context("--count")?,
        concurrency: value("--concurrency")
            .map_or(Ok(32), |v| v.parse())
            .context("--concurrency")?,
        body: need("--body")?,
        ids: value("--ids"),
    })
}

#[derive(Default)]
struct Tally {
    accepted: Vec<String>,
    failed: usize,
    first_error: Option<String>,
}

/// One connection's share: takes the next request number until all are sent.
async fn worker(client: reqwest::Client, options: Arc<Options>, next: Arc<AtomicUsize>) -> Tally {
    let mut tally = Tally::default();
    let url = format!("{}/v1/instances", options.url);
    while next.fetch_add(1, Ordering::Relaxed) < options.count {
        let sent = client
            .post(&url)
            .bearer_auth(&options.token)
            .header("content-type", "application/json")
            .body(options.body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                response.json::<serde_json::Value>().await.map_err(|e| e.to_string())
            }
            Ok(response) => {
                Err(format!("{}: {}", response.status(), response.text().await.unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(created) => {
                tally.accepted.push(created["id"].as_str().unwrap_or_default().to_owned())
            }
            Err(e) => {
                tally.failed += 1;
                tally.first_error.get_or_insert(e);
            }
        }
    }
    tally
}

async fn run(options: Options) -> anyhow::Result<()> {
    let options = Arc::new(options);
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| tokio::spawn(worker(client.clone(), options.clone(), next.clone())))
        .collect();
    let mut total = Tally::default();
    for handle in workers {
        let tally = handle.await?;
        total.accepted.extend(tally.accepted);
        total.failed += tally.failed;
        total.first_error = total.first_error.or(tally.first_error);
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &options.ids {
        std::fs::write(path, total.accepted.join("\n") + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    if let Some(e) = &total.first_error {
        eprintln!("loadgen: first error: {e}");
    }
    println!(
        "accepted={} failed={} seconds={seconds:.3} per_s={:.0}",
        total.accepted.len(),
        total.failed,
        total.accepted.len() as f64 / seconds
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(options))
}
