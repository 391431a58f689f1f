//! `[smtp]`: the mail server customers' notices go through (docs/contracts.md#messages). `url` is
//! lettre's URL form (`smtp://host:25` plain, `smtp://host:587?tls=required` STARTTLS,
//! `smtps://user: pass@host` TLS), `from` the sender mailbox; a failed delivery is retried after
//! `first_retry`, doubling up to `max_retry`, until the server accepts or refuses it for good.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_FROM: &str = "gpuspot <noreply@localhost>";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub url: String,
    pub from: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub first_retry: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_retry: Option<Duration>,
    /// How long one conversation with the server may take (default 30s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub url: String,
    pub from: Mailbox,
    pub first_retry: Duration,
    pub max_retry: Duration,
    pub timeout: Duration,
}

impl SmtpSettings {
    /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn retry_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        self.first_retry.saturating_mul(1 << doublings).min(self.max_retry)
    }
}

impl RawSmtp {
    pub fn validate(self, problems: &mut Vec<String>) -> Option<SmtpSettings> {
        if let Err(e) = AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url) {
            problems.push(format!(
                "smtp.url: {:?} is not an SMTP URL ({e}); e.g. \"smtp://127.0.0.1:25\" or \
                 \"smtps://user:password@mail.example.com\"",
                self.url
            ));
        }
        let from = self.from.as_deref().unwrap_or(DEFAULT_FROM);
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| {
                problems.push(format!(
                    "smtp.from: {from:?} is not a mailbox ({e}); e.g. \"gpuspot <noreply@example.com>\""
                ))
            })
            .ok();
        let first_retry = self.first_retry.unwrap_or(Duration::from_secs(5));
        let max_retry = self.max_retry.unwrap_or(Duration::from_secs(600));
        if first_retry.is_zero() {
            problems.push("smtp.first_retry: must be greater than zero".into());
        }
        if max_retry < first_retry {
            problems.push("smtp.max_retry: must not be below first_retry".into());
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        if timeout.is_zero() {
            problems.push("smtp.timeout: must be greater than zero".into());
        }
        Some(SmtpSettings { url: self.url, from: from?, first_retry, max_retry, timeout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Result<SmtpSettings, Vec<String>> {
        let raw: RawSmtp = toml::from_str(toml).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let settings = raw.validate(&mut problems);
        if problems.is_empty() { Ok(settings.expect("settings")) } else { Err(problems) }
    }

    #[test]
    fn a_url_alone_gives_the_defaults() {
        let smtp = settings("url = \"smtp://127.0.0.1:2525\"").unwrap();
        assert_eq!(smtp.from.to_string(), DEFAULT_FROM);
        assert_eq!(smtp.first_retry, Duration::from_secs(5));
        assert_eq!(smtp.max_retry, Duration::from_secs(600));
    }

    #[test]
    fn bad_values_are_all_reported() {
        let problems =
            settings("url = \"http://x\"\nfrom = \"not a mailbox\"\nfirst_retry = \"0s\"")
                .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("smtp.url"), "{problems:?}");
        assert!(settings("url = \"smtp://h\"\nport = 25").is_err());
    }

    #[test]
    fn retries_double_up_to_the_cap() {
        let smtp =
            settings("url = \"smtp://h\"\nfirst_retry = \"1s\"\nmax_retry = \"5s\"").unwrap();
        let waits: Vec<u64> = (1..=5).map(|a| smtp.retry_after(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }
}
