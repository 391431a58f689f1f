//! The mail outbox (docs/contracts.md#messages): sends every inbox message that has an address to
//! the mail server of `[smtp]`, from the durable `messages` table rather than from memory, so a
//! server that is down, or a coordinator restart, delays a mail and never loses it. A message is
//! marked sent once the server accepts it and never sent again; a transient failure is retried with
//! doubling waits; a permanent refusal (5xx) is recorded and kept.

use crate::config::SmtpSettings;
use crate::core::cluster::Event;
use crate::core::notices::Message;
use crate::metrics::{METRICS, Metrics};
use crate::store::Store;
use crate::store::messages::{MailOutcome, PendingMail};
use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Mail due is looked for at least this often, and whenever an event is committed.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Messages sent per pass before due work is looked up again.
const BATCH: usize = 50;

/// Starts the outbox task; without a usable transport it logs why and sends nothing (the
/// config was validated, so this is only a resource failure).
pub fn spawn(settings: SmtpSettings, store: Arc<dyn Store>, events: broadcast::Receiver<Event>) {
    let transport = match Transport::from_url(&settings.url) {
        Ok(builder) => builder.timeout(Some(settings.timeout)).build(),
        Err(e) => {
            tracing::error!(error = %e, url = %settings.url, "smtp transport failed; no mail");
            return;
        }
    };
    tokio::spawn(Outbox { settings, store, transport }.run(events));
}

struct Outbox {
    settings: SmtpSettings,
    store: Arc<dyn Store>,
    transport: Transport,
}

impl Outbox {
    async fn run(self, mut events: broadcast::Receiver<Event>) {
        loop {
            let sent_all = self.pass().await;
            if !sent_all {
                continue;
            }
            let wait = self.until_next_due().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                received = events.recv() => {
                    if matches!(received, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
            }
        }
    }

    /// Sends what is due; `false` when a full batch went and more may be due.
    async fn pass(&self) -> bool {
        let store = self.store.clone();
        let due = match tokio::task::spawn_blocking(move || store.mail_due(Utc::now(), BATCH)).await
        {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => return log_store_error(&e),
            Err(e) => return log_store_error(&e),
        };
        let full = due.len() == BATCH;
        for pending in due {
            let outcome = self.attempt(&pending).await;
            let (store, id) = (self.store.clone(), pending.message.id.clone());
            let recorded = tokio::task::spawn_blocking(move || store.record_mail(&id, &outcome));
            if !matches!(recorded.await, Ok(Ok(()))) {
                tracing::error!(message = %pending.message.id, "could not record a mail outcome");
                return true;
            }
        }
        !full
    }

    async fn attempt(&self, pending: &PendingMail) -> MailOutcome {
        let id = &pending.message.id;
        let email = match build(&self.settings, &pending.message, &pending.to) {
            Ok(email) => email,
            Err(error) => {
                tracing::error!(message = %id, %error, "mail cannot be built; not sent");
                return MailOutcome::Failed { error };
            }
        };
        match self.transport.send(email).await {
            Ok(_) => {
                tracing::info!(message = %id, to = %pending.to, "mail sent");
                Metrics::delivery(&METRICS.mail_deliveries, "sent");
                MailOutcome::Sent { at: Utc::now() }
            }
            Err(e) if e.is_permanent() => {
                tracing::error!(message = %id, to = %pending.to, error = %e, "mail refused");
                Metrics::delivery(&METRICS.mail_deliveries, "refused");
                MailOutcome::Failed { error: e.to_string() }
            }
            Err(e) => {
                let wait = self.settings.retry_after(pending.attempts + 1);
                tracing::warn!(message = %id, error = %e, retry_in = ?wait, "mail not sent");
                Metrics::delivery(&METRICS.mail_deliveries, "failed");
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                MailOutcome::Retry { next, error: e.to_string() }
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.next_mail_due()).await {
            Ok(Ok(Some(at))) => (at - Utc::now()).to_std().unwrap_or_default().min(IDLE_POLL),
            _ => IDLE_POLL,
        }
    }
}

fn log_store_error(error: &dyn std::fmt::Display) -> bool {
    tracing::error!(%error, "reading the mail outbox failed");
    true
}

/// The email for `message`: plain text, its Message-ID taken from the message id so that
/// a receiver can tell a resend (after a crash between acceptance and record) from news.
pub fn build(
    settings: &SmtpSettings,
    message: &Message,
    to: &str,
) -> Result<lettre::Message, String> {
    let to = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
    let domain = settings.from.email.domain().to_owned();
    lettre::Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(&message.subject)
        .message_id(Some(format!("<{}@{domain}>", message.id)))
        .date(message.at.into())
        .header(ContentType::TEXT_PLAIN)
        .body(message.body.clone())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_carries_the_message_text_and_its_id() {
        let raw: crate::config::RawSmtp =
            toml::from_str("url = \"smtp://127.0.0.1:1\"\nfrom = \"ops <ops@example.com>\"")
                .unwrap();
        let settings = raw.validate(&mut Vec::new()).unwrap();
        let message = Message {
            id: "m-7".into(),
            account_id: "acc-1".into(),
            at: Utc::now(),
            subject: "Instance a will be terminated".into(),
            body: "Please back up your data.\n".into(),
            instance_id: None,
            read: false,
            event_id: 7,
            mail_to: Some("a@example.com".into()),
            mail: crate::core::notices::MailState::Pending,
        };
        let email = build(&settings, &message, "a@example.com").unwrap();
        let text = String::from_utf8(email.formatted()).unwrap();
        assert!(text.contains("Subject: Instance a will be terminated"), "{text}");
        assert!(text.contains("Message-ID: <m-7@example.com>"), "{text}");
        assert!(text.contains("To: a@example.com"), "{text}");
        assert!(text.contains("Please back up your data."), "{text}");
        assert!(build(&settings, &message, "not an address").is_err());
    }
}
