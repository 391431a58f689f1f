//! Getting into instances (docs/contracts.md#guests): `POST /v1/instances/{id}/exec`, the WebSocket
//! form (a small blocking client), and the SSH door driven with the real OpenSSH client through
//! `sshpass`.

use crate::api::Api;
use crate::coordinator::{Coordinator, TEST_CONFIG};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

/// [`TEST_CONFIG`] with the SSH door on an ephemeral loopback port.
pub fn ssh_config() -> String {
    format!("{TEST_CONFIG}\n[ssh]\nlisten = \"127.0.0.1:0\"\n")
}

/// `POST /v1/instances/{id}/exec`.
pub fn exec(api: &Api, id: &str, command: &[&str], timeout_seconds: u64) -> (u16, Value) {
    let body = json!({ "command": command, "timeout_seconds": timeout_seconds });
    api.post(&format!("/v1/instances/{id}/exec"), &body)
}

/// Runs `script` (`sh -c`) in instance `id` through `api`; (exit code, output).
pub fn run_in(api: &Api, id: &str, script: &str) -> (i64, String) {
    let (status, body) = exec(api, id, &crate::sh(script), 30);
    assert_eq!(status, 200, "exec {script:?} in {id}: {body}");
    (body["exit_code"].as_i64().unwrap_or(-1), crate::s(&body, "output").to_owned())
}

/// `script` fails in `id` and its output does not show `secret`; its output.
pub fn denied(api: &Api, id: &str, script: &str, secret: &str) -> String {
    let (code, output) = run_in(api, id, script);
    assert_ne!(code, 0, "{script:?} succeeded in {id}: {output:?}");
    assert!(!output.contains(secret), "{script:?} in {id} showed the secret: {output:?}");
    output
}

/// The SSH door's port, from the coordinator's `endpoints.json`.
pub fn ssh_port(coordinator: &Coordinator) -> u16 {
    let path = coordinator.data_dir.join("endpoints.json");
    let text = std::fs::read_to_string(&path).expect("endpoints.json");
    let value: Value = serde_json::from_str(&text).expect("endpoints.json is JSON");
    let addr: std::net::SocketAddr =
        value["ssh"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            panic!("endpoints.json names no SSH door: {text}");
        });
    addr.port()
}

/// A login at the SSH door: `sshpass -p PASSWORD ssh … -p PORT USER@127.0.0.1`, with the
/// real OpenSSH client.
pub struct SshLogin<'a> {
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

impl SshLogin<'_> {
    /// Runs `ssh [OPTIONS] USER@127.0.0.1 [REMOTE…]` with `input` on its stdin (then end
    /// of input), bounded to 30 s.
    pub fn run(&self, dir: &Path, options: &[&str], remote: &[&str], input: &str) -> Output {
        let mut command = Command::new("timeout");
        command.args(["30", "sshpass", "-p", self.password, "ssh", "-F", "/dev/null"]);
        command.args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
        command.args(["-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]);
        command.args(["-o", "LogLevel=ERROR", "-p", &self.port.to_string()]);
        command.args(options).arg(format!("{}@127.0.0.1", self.user)).args(remote);
        command.current_dir(dir).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sshpass and ssh (apt-get install openssh-client sshpass)");
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write ssh's stdin");
        drop(stdin);
        child.wait_with_output().expect("ssh's output")
    }

    /// `ssh USER@127.0.0.1 COMMAND` with empty stdin.
    pub fn command(&self, dir: &Path, command: &str) -> Output {
        self.run(dir, &[], &[command], "")
    }
}

/// An interactive exec session over a WebSocket.
pub struct WsSession {
    socket: tungstenite::WebSocket<TcpStream>,
    /// Output received so far.
    pub output: Vec<u8>,
    /// The server's final text frame, once it came.
    pub last: Option<Value>,
}

impl WsSession {
    /// Opens `GET /v1/instances/{id}/exec?QUERY` with `Upgrade: websocket`. A refused upgrade
    /// is `Err((status, body))`.
    pub fn open(api: &Api, id: &str, query: &str) -> Result<WsSession, (u16, String)> {
        let host = api.base.trim_start_matches("http://");
        let url = format!("ws://{host}/v1/instances/{id}/exec?{query}");
        let mut request = url.into_client_request().expect("WebSocket request");
        if let Some(token) = &api.token {
            let value = format!("Bearer {token}").parse().expect("header value");
            request.headers_mut().insert("Authorization", value);
        }
        let stream = TcpStream::connect(host).expect("connect to the API");
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        match tungstenite::client(request, stream) {
            Ok((socket, _)) => Ok(WsSession { socket, output: Vec::new(), last: None }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                Err((response.status().as_u16(), String::from_utf8_lossy(body).into_owned()))
            }
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    /// Sends stdin bytes.
    pub fn type_in(&mut self, text: &str) {
        self.socket.send(Message::binary(text.as_bytes().to_vec())).expect("send stdin");
    }

    /// Sends a control message (`{"eof":true}`, `{"resize":{…}}`).
    pub fn control(&mut self, value: Value) {
        self.socket.send(Message::text(value.to_string())).expect("send control");
    }

    /// The output so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Reads until `done` holds for the session, or panics after `timeout`.
    pub fn read_until(&mut self, timeout: Duration, what: &str, done: impl Fn(&WsSession) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; output so far: {:?}, last: {:?}",
                self.text(),
                self.last
            );
            match self.socket.read() {
                Ok(Message::Binary(bytes)) => self.output.extend_from_slice(&bytes),
                Ok(Message::Text(text)) => self.last = serde_json::from_str(&text).ok(),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("the session broke while waiting for {what}: {e}"),
            }
        }
    }

    /// Reads to the server's final `{"exit_code":…}` frame; returns it.
    pub fn wait_end(&mut self, timeout: Duration) -> Value {
        self.read_until(timeout, "the final exit frame", |s| s.last.is_some());
        self.last.clone().unwrap_or_default()
    }
}
