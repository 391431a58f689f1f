//! Event delivery to webhooks (the seeds' email/SMS notice): every committed event is
//! POSTed as JSON to the operator's webhook (config `[webhook]`), and events of an account
//! to that account's `webhook_url`; in order, retried with exponential backoff until
//! accepted (2xx) or `max_attempts` is spent. A slow receiver delays, never drops, later
//! events — unless it falls so far behind that the live feed overflows, which is logged.

use crate::config::WebhookSettings;
use crate::core::cluster::Event;
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
            .header("X-Gpuspot-Event", &event.kind)
            .header("X-Gpuspot-Event-Id", event.id.to_string())
            .json(event)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        tracing::warn!(event = event.id, attempt, %failure, "webhook delivery failed");
        if attempt < settings.max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
    tracing::error!(event = event.id, url = %settings.url, "webhook gave up on this event");
}
