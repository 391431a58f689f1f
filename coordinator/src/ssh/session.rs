//! One SSH client: the user name is the instance id and the password an API token. After
//! login, each session channel waits for a `pty-req` (optional) and then `shell` or `exec`,
//! opens an exec stream through the [`Gateway`](crate::api::exec::Gateway) and relays
//! until the command ends (its exit status is sent) or the client leaves (the command is
//! killed). Window changes become resizes.

use super::Access;
use crate::actors::Scope;
use crate::api::exec::ExecStart;
use crate::api::exec_ws::INTERACTIVE_TIMEOUT;
use crate::quic::exec::ExecChannel;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{ExecInput, ExecOutput};
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status sent when the command ended without a code of its own (a signal, the
/// timeout, or it never ran).
const NO_STATUS: u32 = 255;

pub struct Client {
    access: Arc<Access>,
    peer: std::net::SocketAddr,
    /// Set by a successful login.
    login: Option<(Scope, InstanceId)>,
    /// Raised by a successful login: the connection's login deadline no longer applies.
    logged_in: Arc<AtomicBool>,
}

impl Client {
    pub fn new(
        access: Arc<Access>,
        peer: std::net::SocketAddr,
        logged_in: Arc<AtomicBool>,
    ) -> Self {
        Client { access, peer, login: None, logged_in }
    }
}

impl Handler for Client {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let id = InstanceId(user.to_owned());
        let allowed = match self.access.scope_for(password) {
            Some(scope) => match self.access.gateway().visible(scope.clone(), &id).await {
                Ok(()) => Some(scope),
                Err(_) => None,
            },
            None => None,
        };
        // A wrong token and another account's instance look the same from outside.
        let Some(scope) = allowed else {
            tracing::info!(peer = %self.peer, instance = %id, "SSH login refused");
            return Ok(Auth::reject());
        };
        tracing::info!(peer = %self.peer, instance = %id, "SSH login");
        self.logged_in.store(true, Ordering::Relaxed);
        self.login = Some((scope, id));
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some((scope, id)) = self.login.clone() else {
            return Ok(false);
        };
        tokio::spawn(drive(channel, self.access.clone(), scope, id));
        Ok(true)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

fn size(cols: u32, rows: u32) -> (u16, u16) {
    let fit = |n: u32| u16::try_from(n).unwrap_or(u16::MAX).max(1);
    (fit(cols), fit(rows))
}

/// Runs one session channel: waits for what to run, runs it, relays.
async fn drive(mut channel: Channel<Msg>, access: Arc<Access>, scope: Scope, id: InstanceId) {
    let mut start = ExecStart {
        command: Vec::new(),
        tty: false,
        size: None,
        stdin: true,
        timeout: INTERACTIVE_TIMEOUT,
    };
    loop {
        match channel.wait().await {
            Some(ChannelMsg::RequestPty { col_width, row_height, .. }) => {
                start.tty = true;
                start.size = Some(size(col_width, row_height));
            }
            Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                start.size = Some(size(col_width, row_height));
            }
            Some(ChannelMsg::RequestShell { .. }) => {
                start.command = vec!["/bin/sh".into()];
                break;
            }
            Some(ChannelMsg::Exec { command, .. }) => {
                let line = String::from_utf8_lossy(&command).into_owned();
                start.command = vec!["/bin/sh".into(), "-c".into(), line];
                break;
            }
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    }
    match access.gateway().open(scope, &id, start).await {
        Ok(exec) => relay(channel, exec).await,
        Err(e) => finish(&channel, Some(&e.message), NO_STATUS).await,
    }
}

async fn relay(mut channel: Channel<Msg>, mut exec: ExecChannel) {
    loop {
        tokio::select! {
            message = channel.wait() => match message {
                Some(ChannelMsg::Data { data }) => drop(exec.stdin(&data).await),
                Some(ChannelMsg::Eof) => drop(exec.input.send(ExecInput::Eof).await),
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    let (cols, rows) = size(col_width, row_height);
                    drop(exec.input.send(ExecInput::Resize { cols, rows }).await);
                }
                // The client left: dropping `exec` ends the command.
                Some(ChannelMsg::Close) | None => return,
                Some(_) => {}
            },
            frame = exec.output.recv() => match frame {
                Some(ExecOutput::Data(data)) => {
                    if channel.data(&data[..]).await.is_err() {
                        return;
                    }
                }
                Some(ExecOutput::Exit { code, timed_out }) => {
                    let note = timed_out.then_some("gpuspot: the session reached its time limit");
                    let status = code.and_then(|c| u32::try_from(c).ok()).unwrap_or(NO_STATUS);
                    return finish(&channel, note, status).await;
                }
                Some(ExecOutput::Error { reason }) => {
                    return finish(&channel, Some(&reason), NO_STATUS).await;
                }
                None => return finish(&channel, Some("the exec stream ended"), NO_STATUS).await,
            },
        }
    }
}

/// Ends a channel: an optional message on stderr, the exit status, EOF and close.
async fn finish(channel: &Channel<Msg>, message: Option<&str>, status: u32) {
    if let Some(message) = message {
        let line = format!("{message}\r\n");
        let _ = channel.extended_data(1, line.as_bytes()).await;
    }
    let _ = channel.exit_status(status).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}
