//! Event delivery to webhooks (the seeds' email/SMS notice): every committed event is
//! POSTed as JSON to the operator's webhook (config `[webhook]`), and events of an account
//! to that account's `webhook_url`; in order, retried with exponential backoff until
//! accepted (2xx) or `max_attempts` is spent. A slow receiver delays, never drops, later
//! events — unless it falls so far behind that the live feed overflows, which is logged.

use crate::config::WebhookSettings;
use crate::core::cluster::Event;
use crate::metrics::{METRICS, Metrics};
use std::time::Duration;
use tokio::sync::broadcast;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(60);

const ACCOUNT_ATTEMPTS: u32 = 8;

pub fn spawn(
    operator: Option<WebhookSettings>,
    directory: std::sync::Arc<crate::directory::Directory>,
    mut events: broadcast::Receiver<Event>,
) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks disabled");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(settings) = &operator {
                        deliver(&client, settings, &event).await;
                    }
                    let account = event.account_id.as_ref().and_then(|a| directory.webhook_of(a));
                    if let Some(url) = account {
                        let settings = WebhookSettings { url, max_attempts: ACCOUNT_ATTEMPTS };
                        deliver(&client, &settings, &event).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(skipped = n, "webhook receiver fell behind; events skipped")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

async fn deliver(client: &reqwest::Client, settings: &WebhookSettings, event: &Event) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=settings.max_attempts {
        let sent = client
            .post(&settings.url)
            .header("X-Gpuspot-Event", event.kind.as_str())
            .header("X-Gpuspot-Event-Id", event.id.to_string())
            .json(event)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                Metrics::delivery(&METRICS.webhook_deliveries, "delivered");
                return;
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        tracing::warn!(event = event.id, attempt, %failure, "webhook delivery failed");
        Metrics::delivery(&METRICS.webhook_deliveries, "failed");
        if attempt < settings.max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
    tracing::error!(event = event.id, url = %settings.url, "webhook gave up on this event");
    Metrics::delivery(&METRICS.webhook_deliveries, "given_up");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A webhook receiver on 127.0.0.1 that answers 503 `failures` times, then 204, and
    /// hands over every request body it got.
    async fn flaky_receiver(
        failures: usize,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for attempt in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut request = vec![0u8; 64 * 1024];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&request[..n]).to_string();
                let _ = tx.send(text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned());
                let status =
                    if attempt < failures { "503 Service Unavailable" } else { "204 No Content" };
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, rx)
    }

    fn event() -> Event {
        Event {
            id: 42,
            at: chrono::Utc::now(),
            kind: crate::core::events::EventKind::TerminationScheduled,
            account_id: None,
            instance_id: Some("i-1".into()),
            host_id: None,
            data: crate::core::events::EventData::from_value(
                serde_json::json!({ "reason": "reclaimed_price" }),
            ),
            subject: None,
            message: None,
        }
    }

    #[tokio::test]
    async fn a_failing_receiver_gets_the_event_again_until_it_accepts() {
        let (url, mut bodies) = flaky_receiver(2).await;
        let settings = WebhookSettings { url, max_attempts: 5 };
        let client = reqwest::Client::new();
        deliver(&client, &settings, &event()).await;
        let mut got = Vec::new();
        while let Ok(body) = bodies.try_recv() {
            got.push(body);
        }
        assert_eq!(got.len(), 3, "two failures, then accepted");
        let delivered: Event = serde_json::from_str(&got[2]).unwrap();
        assert_eq!(delivered.id, 42);
        assert_eq!(delivered.kind, crate::core::events::EventKind::TerminationScheduled);
    }

    #[tokio::test]
    async fn delivery_gives_up_after_max_attempts() {
        let (url, mut bodies) = flaky_receiver(usize::MAX).await;
        let settings = WebhookSettings { url, max_attempts: 2 };
        deliver(&reqwest::Client::new(), &settings, &event()).await;
        let mut count = 0;
        while bodies.try_recv().is_ok() {
            count += 1;
        }
        assert_eq!(count, 2);
    }
}
