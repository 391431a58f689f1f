//! `POST /v1/instances/{id}/exec` (docs/contracts.md#guests "Getting in"): runs a command inside a
//! running instance and answers with its exit code and output once it ends. The interactive form
//! (`GET` with `Upgrade: websocket`) is in [`super::exec_ws`]; both, and the SSH front door, go
//! through [`Gateway`], which checks who may reach which instance and opens the stream.

use super::AppState;
use super::auth::Caller;
use super::error::{ExecError, HttpError, Internal, InvalidBody};
use crate::actors::{ApiRequest, ClusterActor, Scope};
use crate::core::model::InstanceState;
use crate::quic::exec::{self, ExecChannel, ExecLinks};
use actix::Addr;
use actix_web::{HttpResponse, post, web};
use gpuspot_api::{ErrorBody, ExecResult};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{ExecOutput, ExecRequest};
use serde::Deserialize;
use std::time::Duration;
use utoipa_actix_web::service_config::ServiceConfig;

/// Output kept for the JSON answer; the rest is read (so the command is not blocked) and
/// dropped, and the answer says `"truncated": true`.
pub const MAX_OUTPUT: usize = 1 << 20;
/// `timeout_seconds` of the JSON form: 1 ..= this, 30 when absent.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// How long past its own timeout the coordinator waits for the agent's answer.
const ANSWER_GRACE: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(run).service(super::exec_ws::interactive);
}

/// What to run; the instance and caller are given separately.
#[derive(Clone, Debug)]
pub struct ExecStart {
    pub command: Vec<String>,
    pub tty: bool,
    pub size: Option<(u16, u16)>,
    pub stdin: bool,
    pub timeout: Duration,
}

/// Opens exec streams for callers that may reach the instance: the owner or the admin. An
/// instance of another account is not found, as everywhere in the API. It borrows the
/// cluster's address: the cluster actor's unbounded mailbox makes a clone of a started
/// actor's address overflow a counter in actix.
#[derive(Clone, Copy)]
pub struct Gateway<'a> {
    pub cluster: &'a Addr<ClusterActor>,
    pub links: &'a ExecLinks,
}

impl<'a> Gateway<'a> {
    pub fn of(state: &'a AppState) -> Gateway<'a> {
        Gateway { cluster: &state.cluster, links: &state.exec_links }
    }

    /// Whether `scope` sees instance `id` (the SSH door's login check).
    pub async fn visible(&self, scope: Scope, id: &InstanceId) -> Result<(), HttpError> {
        self.instance(scope, id).await.map(drop)
    }

    async fn instance(
        &self,
        scope: Scope,
        id: &InstanceId,
    ) -> Result<crate::core::Instance, HttpError> {
        super::ask(self.cluster, |reply| ApiRequest::GetInstance { scope, id: id.clone(), reply })
            .await
    }

    /// Starts `start` inside instance `id`.
    pub async fn open(
        &self,
        scope: Scope,
        id: &InstanceId,
        start: ExecStart,
    ) -> Result<ExecChannel, HttpError> {
        let instance = self.instance(scope, id).await?;
        let running = matches!(
            instance.state(),
            InstanceState::Running | InstanceState::TerminationScheduled
        );
        let host_id = instance.host_id().filter(|_| running).ok_or_else(|| {
            ExecError::NotRunning { id: id.to_string(), state: instance.state().as_str() }
        })?;
        let unavailable = ExecError::HostUnavailable;
        let connection = self.links.connection(host_id).ok_or_else(|| {
            unavailable(format!(
                "host {host_id} of instance {id} is not connected now; try again when it is back"
            ))
        })?;
        let request = ExecRequest {
            instance_id: id.clone(),
            command: start.command,
            tty: start.tty,
            size: start.size.filter(|_| start.tty),
            stdin: start.stdin,
            timeout_ms: start.timeout.as_millis().try_into().unwrap_or(u64::MAX),
        };
        exec::open(&connection, &request).await.map_err(|e| {
            unavailable(format!("cannot open an exec stream to host {host_id}: {e}")).into()
        })
    }
}

/// An agent could not run the command (it does not run the instance after all, the
/// program is missing…).
pub fn exec_failed(reason: String) -> HttpError {
    ExecError::Failed(reason).into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ExecCommand)]
#[serde(deny_unknown_fields)]
struct ExecBody {
    /// Program and arguments, e.g. `["sh", "-c", "nvidia-smi"]`.
    command: Vec<String>,
    /// 1 to 3600 (default 30).
    #[schema(minimum = 1, maximum = 3600)]
    timeout_seconds: Option<u64>,
}

/// Checks a command line: not empty, a program named, no NUL bytes (they cannot reach argv).
pub fn check_command(command: &[String]) -> Result<(), HttpError> {
    if command.first().is_none_or(|program| program.trim().is_empty()) {
        let problem = "command must name a program to run, e.g. [\"sh\", \"-c\", \"nvidia-smi\"]";
        return Err(InvalidBody(problem.to_owned()).into());
    }
    if command.iter().any(|arg| arg.contains('\0')) {
        return Err(InvalidBody("command must not contain NUL bytes".to_owned()).into());
    }
    Ok(())
}

fn timeout_of(seconds: Option<u64>) -> Result<Duration, HttpError> {
    match seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS) {
        s @ 1..=MAX_TIMEOUT_SECONDS => Ok(Duration::from_secs(s)),
        s => Err(InvalidBody(format!(
            "timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}, not {s}"
        ))
        .into()),
    }
}

/// Runs a command in a running instance and answers when it ends (the interactive form is
/// `GET` on the same path with `Upgrade: websocket`).
#[utoipa::path(
    tag = "exec", operation_id = "exec_instance", request_body = ExecBody,
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The command ended", body = ExecResult),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not running, or the command could not start", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 503, description = "The instance's host is not connected", body = ErrorBody),
        (status = 504, description = "No exit status in time", body = ErrorBody),
    )
)]
#[post("/instances/{id}/exec")]
async fn run(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ExecBody>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let body = body.into_inner();
    check_command(&body.command)?;
    let timeout = timeout_of(body.timeout_seconds)?;
    let start = ExecStart { command: body.command, tty: false, size: None, stdin: false, timeout };
    let channel = Gateway::of(&state).open(caller.scope, &id, start).await?;
    let collected = tokio::time::timeout(timeout + ANSWER_GRACE, collect(channel)).await;
    let outcome = collected.map_err(|_| ExecError::NoExit { id: id.to_string(), timeout })?;
    let Collected { output, truncated, end } = outcome;
    match end {
        ExecOutput::Exit { code, timed_out } => Ok(HttpResponse::Ok().json(ExecResult {
            exit_code: code,
            output: String::from_utf8_lossy(&output).into_owned(),
            truncated,
            timed_out,
        })),
        ExecOutput::Error { reason } => Err(exec_failed(reason)),
        ExecOutput::Data(_) => Err(Internal("exec ended on a data frame".to_owned()).into()),
    }
}

/// A finished command's output (capped at [`MAX_OUTPUT`]) and its last frame.
struct Collected {
    output: Vec<u8>,
    truncated: bool,
    end: ExecOutput,
}

async fn collect(mut channel: ExecChannel) -> Collected {
    let mut output = Vec::new();
    let mut truncated = false;
    while let Some(frame) = channel.output.recv().await {
        match frame {
            ExecOutput::Data(data) => {
                let room = MAX_OUTPUT - output.len();
                truncated |= data.len() > room;
                output.extend_from_slice(&data[..data.len().min(room)]);
            }
            end => return Collected { output, truncated, end },
        }
    }
    let end = ExecOutput::Error { reason: "the exec stream ended without an exit status".into() };
    Collected { output, truncated, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_timeouts_are_checked() {
        assert!(check_command(&[]).is_err());
        assert!(check_command(&[" ".into()]).is_err());
        assert!(check_command(&["echo".into(), "a\0b".into()]).is_err());
        assert!(check_command(&["echo".into(), "hi".into()]).is_ok());
        assert_eq!(timeout_of(None).unwrap(), Duration::from_secs(30));
        assert_eq!(timeout_of(Some(3600)).unwrap(), Duration::from_secs(3600));
        for bad in [0, 3601] {
            let err = timeout_of(Some(bad)).unwrap_err();
            assert_eq!(err.status.as_u16(), 400);
            assert!(err.message.contains("between 1 and 3600"), "{}", err.message);
        }
    }

    #[tokio::test]
    async fn output_is_capped_and_the_exit_comes_through() {
        let (tx, output) = tokio::sync::mpsc::channel(8);
        let (input, _input_rx) = tokio::sync::mpsc::channel(1);
        let channel = ExecChannel { output, input };
        tokio::spawn(async move {
            for _ in 0..3 {
                tx.send(ExecOutput::Data(vec![b'x'; MAX_OUTPUT / 2])).await.unwrap();
            }
            tx.send(ExecOutput::Exit { code: Some(3), timed_out: false }).await.unwrap();
        });
        let collected = collect(channel).await;
        assert_eq!(collected.output.len(), MAX_OUTPUT);
        assert!(collected.truncated);
        assert_eq!(collected.end, ExecOutput::Exit { code: Some(3), timed_out: false });
    }
}
