//! A load generator for serving tests and the gateway benchmark: requests at a fixed rate
//! (open loop: a slow answer does not slow the next request) or as fast as `concurrency`
//! clients can go (closed loop: back to back, for a while or until stopped), each outcome
//! and latency recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a run saw.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub sent: usize,
    pub ok: usize,
    /// One line per failed request: status or transport error.
    pub failures: Vec<String>,
    /// Of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let at = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[at]
    }

    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn add(&mut self, outcome: Result<Duration, String>) {
        self.sent += 1;
        match outcome {
            Ok(latency) => {
                self.ok += 1;
                self.latencies.push(latency);
            }
            Err(failure) => self.failures.push(failure),
        }
    }
}

/// A fixed-rate load running on its own thread until [`SteadyLoad::stop`].
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    /// Answers so far, successful or not (closed loop only), to wait on while it runs.
    answered: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<LoadReport>>,
}

impl SteadyLoad {
    /// GETs `url` `rate` times a second.
    pub fn start(url: &str, rate: u32) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, flag) = (url.to_owned(), stop.clone());
        let thread =
            std::thread::spawn(move || runtime().block_on(fixed_rate(url, rate, flag, None)));
        SteadyLoad { stop, answered: Default::default(), thread: Some(thread) }
    }

    /// GETs `url` from `clients` tasks, each sending its next request on the last answer,
    /// so that no moment goes without a request in flight.
    pub fn back_to_back(url: &str, clients: usize) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let until = Until { stop: stop.clone(), answered: answered.clone(), duration: None };
        let url = url.to_owned();
        let thread =
            std::thread::spawn(move || runtime().block_on(closed_loop(url, clients, until)));
        SteadyLoad { stop, answered, thread: Some(thread) }
    }

    /// Answers received so far (a closed loop's; 0 for a fixed rate).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for the answers in flight and reports.
    pub fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("running").join().expect("load thread")
    }
}

impl Drop for SteadyLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("load runtime")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client")
}

async fn one(client: &reqwest::Client, url: &str) -> Result<Duration, String> {
    let started = Instant::now();
    match client.get(url).send().await {
        Ok(answer) if answer.status().is_success() => match answer.bytes().await {
            Ok(_) => Ok(started.elapsed()),
            Err(e) => Err(format!("body: {e}")),
        },
        Ok(answer) => {
            let status = answer.status();
            Err(format!("{status}: {}", answer.text().await.unwrap_or_default()))
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Open loop: one request every 1/rate s until `stop` (or for `duration`).
pub async fn fixed_rate(
    url: String,
    rate: u32,
    stop: Arc<AtomicBool>,
    duration: Option<Duration>,
) -> LoadReport {
    let client = client();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        ticks.tick().await;
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { one(&client, &url).await });
    }
    let mut report = LoadReport::default();
    while let Some(outcome) = tasks.join_next().await {
        report.add(outcome.unwrap_or_else(|e| Err(e.to_string())));
    }
    report.elapsed = started.elapsed();
    report.latencies.sort();
    report
}

/// Closed loop: `concurrency` clients, each sending its next request on the last answer.
pub async fn max_rate(url: String, concurrency: usize, duration: Duration) -> LoadReport {
    let until =
        Until { stop: Default::default(), answered: Default::default(), duration: Some(duration) };
    closed_loop(url, concurrency, until).await
}

/// When a closed loop ends: when `stop` is set or `duration` has passed.
struct Until {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    duration: Option<Duration>,
}

impl Until {
    fn over(&self, started: Instant) -> bool {
        self.stop.load(Ordering::Relaxed) || self.duration.is_some_and(|d| started.elapsed() >= d)
    }
}

async fn closed_loop(url: String, concurrency: usize, until: Until) -> LoadReport {
    let client = client();
    let started = Instant::now();
    let until = Arc::new(until);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, until) = (client.clone(), url.clone(), until.clone());
        tasks.spawn(async move {
            let mut report = LoadReport::default();
            while !until.over(started) {
                report.add(one(&client, &url).await);
                until.answered.fetch_add(1, Ordering::Relaxed);
            }
            report
        });
    }
    let mut report = LoadReport::default();
    while let Some(part) = tasks.join_next().await {
        let part = part.unwrap_or_default();
        report.sent += part.sent;
        report.ok += part.ok;
        report.failures.extend(part.failures);
        report.latencies.extend(part.latencies);
    }
    report.elapsed = started.elapsed();
    report.latencies.sort();
    report
}
