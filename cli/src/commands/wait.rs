//! `--wait` and `--timeout` for every command that waits (instances create/delete,
//! deployments create/delete): what is waited for is polled, each change of its state and
//! reason is printed as it happens (one line on stderr, so that stdout stays the answer a
//! script reads), and the wait gives up with an error once `--timeout` has passed.

use crate::args::WaitArgs;
use gpuspot_api::{Instance, InstanceState};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Between two looks at what is waited for.
const POLL: Duration = Duration::from_millis(250);

/// Where one look found what is waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not there yet.
    Pending,
    /// Done: what was waited for happened.
    Reached,
    /// It ended another way (e.g. an instance failed instead of running): no use waiting.
    Ended,
}

/// One look: the line that says where it stands (`queued: <reason>`) and whether that ends
/// the wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub line: String,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "gave up waiting for {what} after {}: it is {line}",
        humantime::format_duration(*after)
    )]
    TimedOut { what: String, after: Duration, line: String },
}

/// The part of a wait that decides, given the time: which lines are news and when the
/// timeout has passed.
#[derive(Debug)]
pub struct Progress {
    last: Option<String>,
    deadline: Option<Instant>,
}

impl Progress {
    pub fn new(start: Instant, timeout: Option<Duration>) -> Progress {
        // A timeout past what an Instant holds is no timeout at all.
        Progress { last: None, deadline: timeout.and_then(|t| start.checked_add(t)) }
    }

    /// `line` when it differs from the last one seen, None when it says nothing new.
    pub fn news<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        if self.last.as_deref() == Some(line) {
            return None;
        }
        self.last = Some(line.to_owned());
        Some(line)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

/// Looks with `look` until it says [`Outcome::Reached`] or [`Outcome::Ended`] (the last
/// answer is returned; the caller says what an end means), printing each new status line
/// to stderr; fails with [`WaitError::TimedOut`] once `args.timeout` has passed. `what`
/// completes "waiting for …" (`i-1 to run`).
pub fn until<T>(
    args: &WaitArgs,
    what: &str,
    mut look: impl FnMut() -> anyhow::Result<(T, Status)>,
) -> anyhow::Result<T> {
    let mut progress = Progress::new(Instant::now(), args.timeout);
    loop {
        let (answer, status) = match look() {
            Ok(found) => found,
            // A coordinator restarting (or a standby taking over) is no reason to stop
            // waiting: the wait goes on, as long as the timeout allows.
            Err(error) if transient(&error) && !progress.expired(Instant::now()) => {
                let first = error.to_string().lines().next().unwrap_or_default().to_owned();
                if let Some(line) = progress.news(&format!("no answer yet: {first}")) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                std::thread::sleep(POLL);
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(line) = progress.news(&status.line) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
        if status.outcome != Outcome::Pending {
            return Ok(answer);
        }
        if progress.expired(Instant::now()) {
            let after = args.timeout.unwrap_or_default();
            let (what, line) = (what.to_owned(), status.line);
            return Err(WaitError::TimedOut { what, after, line }.into());
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a failed look may succeed if tried again: the coordinator unreachable, or an
/// answer that says so (5xx), or a request that timed out.
fn transient(error: &anyhow::Error) -> bool {
    if error.downcast_ref::<crate::errors::Unreachable>().is_some() {
        return true;
    }
    if let Some(api) = error.downcast_ref::<crate::errors::ApiError>() {
        return api.status >= 500;
    }
    error.chain().any(|cause| {
        cause.downcast_ref::<reqwest::Error>().is_some_and(|e| e.is_timeout() || e.is_request())
    })
}

/// `STATE[ on HOST][: REASON]`: an instance's state, where it runs, and why it is as it is.
pub fn instance_line(instance: &Instance, hostnames: &HashMap<String, String>) -> String {
    use InstanceState::{Running, Scheduled, Stopping, TerminationScheduled};
    let mut line = instance.state.to_string();
    let host_id = instance.host_id.as_ref().map_or("", |h| h.as_str());
    if !host_id.is_empty()
        && matches!(instance.state, Scheduled | Running | TerminationScheduled | Stopping)
    {
        let host = hostnames.get(host_id).map_or(host_id, String::as_str);
        line = format!("{line} on {host}");
    }
    with_reason(line, instance.reason.as_deref())
}

/// `line: REASON` when there is a reason.
pub fn with_reason(line: String, reason: Option<&str>) -> String {
    match reason.map(str::trim) {
        Some(reason) if !reason.is_empty() => format!("{line}: {reason}"),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_news() {
        let start = Instant::now();
        let mut progress = Progress::new(start, Some(Duration::from_secs(5)));
        assert_eq!(progress.news("queued: no capacity"), Some("queued: no capacity"));
        assert_eq!(progress.news("queued: no capacity"), None);
        assert_eq!(progress.news("running on host-a"), Some("running on host-a"));
        assert!(!progress.expired(start + Duration::from_secs(4)));
        assert!(progress.expired(start + Duration::from_secs(5)));
        assert!(!Progress::new(start, None).expired(start + Duration::from_secs(86_400)));
        let forever = Progress::new(start, Some(Duration::MAX));
        assert!(!forever.expired(start + Duration::from_secs(86_400)));
    }

    #[test]
    fn instance_lines_name_the_host_and_the_reason() {
        let names = HashMap::from([("h-1".to_owned(), "host-a".to_owned())]);
        let line = |state, host: Option<&str>, reason: Option<&str>| {
            let mut instance = crate::commands::instances::tests::instance("i-1", state);
            instance.host_id = host.map(Into::into);
            instance.reason = reason.map(Into::into);
            instance_line(&instance, &names)
        };
        let queued = line(InstanceState::Queued, None, Some("waiting for capacity"));
        assert_eq!(queued, "queued: waiting for capacity");
        assert_eq!(line(InstanceState::Running, Some("h-1"), None), "running on host-a");
        assert_eq!(line(InstanceState::Running, Some("h-2"), None), "running on h-2");
        let ended = line(InstanceState::Terminated, Some("h-1"), Some("stopped by user"));
        assert_eq!(ended, "terminated: stopped by user");
    }

    #[test]
    fn a_timeout_says_what_and_where_it_stands() {
        let error = WaitError::TimedOut {
            what: "i-1 to run".into(),
            after: Duration::from_secs(90),
            line: "queued: waiting for capacity".into(),
        };
        assert_eq!(
            error.to_string(),
            "gave up waiting for i-1 to run after 1m 30s: it is queued: waiting for capacity"
        );
    }

    fn reached() -> anyhow::Result<((), Status)> {
        Ok(((), Status { line: "running".into(), outcome: Outcome::Reached }))
    }

    #[test]
    fn an_unreachable_coordinator_is_waited_out_and_a_refusal_is_not() {
        let args = WaitArgs { wait: true, timeout: Some(Duration::from_secs(30)) };
        let mut looks = 0;
        let answer = until(&args, "i-1 to run", || {
            looks += 1;
            if looks < 3 {
                let cause = "connection refused".to_owned();
                return Err(crate::errors::Unreachable { url: "http://x".into(), cause }.into());
            }
            reached()
        });
        assert!(answer.is_ok() && looks == 3, "{answer:?} after {looks} looks");
        let refused = until(&args, "i-1 to run", || -> anyhow::Result<((), Status)> {
            Err(crate::errors::ApiError::from_body(404, "Not Found", "{}").into())
        });
        assert!(refused.is_err(), "a 404 is waited on");
    }
}
