//! Readiness probes (docs/contracts.md#serving): for each running workload that has one, a task
//! GETs its HTTP path on the workload's first host port every interval and reports each change of
//! verdict. Ready means a 2xx or 3xx answer within the interval (at most 2 s); anything else,
//! refused connections included, is not ready. A workload starts not ready.

use gpuspot_common::InstanceId;
use gpuspot_common::protocol::ReadinessProbe;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest a single probe may take.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest interval between probes of one workload.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// What one workload is probed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    pub instance_id: InstanceId,
    pub port: u16,
    pub probe: ReadinessProbe,
}

type Verdicts = Arc<Mutex<HashMap<InstanceId, bool>>>;

pub struct Probes {
    tasks: HashMap<InstanceId, (ProbeTarget, JoinHandle<()>)>,
    verdicts: Verdicts,
    changes_tx: mpsc::UnboundedSender<(InstanceId, bool)>,
    changes: mpsc::UnboundedReceiver<(InstanceId, bool)>,
}

impl Default for Probes {
    fn default() -> Self {
        let (changes_tx, changes) = mpsc::unbounded_channel();
        Self { tasks: HashMap::new(), verdicts: Default::default(), changes_tx, changes }
    }
}

impl Probes {
    /// Probes exactly `targets`: new ones start, gone ones stop (and forget their verdict).
    pub fn sync(&mut self, targets: Vec<ProbeTarget>) {
        let wanted: HashMap<InstanceId, ProbeTarget> =
            targets.into_iter().map(|t| (t.instance_id.clone(), t)).collect();
        self.tasks.retain(|id, (target, task)| {
            let keep = wanted.get(id) == Some(target);
            if !keep {
                task.abort();
                self.verdicts.lock().expect("verdicts").remove(id);
            }
            keep
        });
        for (id, target) in wanted {
            if !self.tasks.contains_key(&id) {
                let task = tokio::spawn(probe_loop(
                    target.clone(),
                    self.verdicts.clone(),
                    self.changes_tx.clone(),
                ));
                self.tasks.insert(id, (target, task));
            }
        }
    }

    /// The next change of verdict of a probe that still runs.
    pub async fn next(&mut self) -> (InstanceId, bool) {
        loop {
            let (id, ready) = self.changes.recv().await.expect("the sender lives in self");
            if self.tasks.contains_key(&id) {
                return (id, ready);
            }
        }
    }

    /// Every verdict reached so far, for a new session.
    pub fn verdicts(&self) -> Vec<(InstanceId, bool)> {
        let verdicts = self.verdicts.lock().expect("verdicts");
        verdicts.iter().map(|(id, ready)| (id.clone(), *ready)).collect()
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

async fn probe_loop(
    target: ProbeTarget,
    verdicts: Verdicts,
    changes: mpsc::UnboundedSender<(InstanceId, bool)>,
) {
    let interval = Duration::from_millis(target.probe.interval_ms).max(MIN_INTERVAL);
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(interval.min(MAX_PROBE_TIMEOUT))
        .build();
    let Ok(client) = client else {
        tracing::warn!(instance = %target.instance_id, "cannot build the readiness probe's client");
        return;
    };
    let url = format!("http://127.0.0.1:{}{}", target.port, target.probe.http_path);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        ticks.tick().await;
        let ready = match client.get(&url).send().await {
            Ok(answer) => answer.status().is_success() || answer.status().is_redirection(),
            Err(_) => false,
        };
        if last != Some(ready) {
            last = Some(ready);
            tracing::info!(instance = %target.instance_id, ready, "readiness changed");
            verdicts.lock().expect("verdicts").insert(target.instance_id.clone(), ready);
            let _ = changes.send((target.instance_id.clone(), ready));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> ProbeTarget {
        ProbeTarget {
            instance_id: InstanceId("i-probe".into()),
            port,
            probe: ReadinessProbe { http_path: "/healthz".into(), interval_ms: 100 },
        }
    }

    /// Serves `status` to every request on a fresh loopback port.
    async fn server(status: &'static str) -> (u16, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (port, task)
    }

    async fn next_verdict(probes: &mut Probes) -> bool {
        tokio::time::timeout(Duration::from_secs(10), probes.next()).await.expect("a verdict").1
    }

    #[tokio::test]
    async fn a_healthy_server_turns_ready_and_a_dead_one_unready() {
        let (port, server) = server("200 OK").await;
        let mut probes = Probes::default();
        probes.sync(vec![target(port)]);
        assert!(next_verdict(&mut probes).await);
        server.abort();
        let _ = server.await;
        assert!(!next_verdict(&mut probes).await);
        assert_eq!(probes.verdicts(), vec![(InstanceId("i-probe".into()), false)]);
        probes.sync(Vec::new());
        assert!(probes.verdicts().is_empty(), "a stopped probe forgets its verdict");
    }

    #[tokio::test]
    async fn an_error_status_is_not_ready() {
        let (port, _server) = server("503 Service Unavailable").await;
        let mut probes = Probes::default();
        probes.sync(vec![target(port)]);
        assert!(!next_verdict(&mut probes).await);
    }
}
