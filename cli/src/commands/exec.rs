//! `gpuspot instances exec ID [-t] -- CMD…` (docs/contracts.md#guests "Getting in").
//!
//! Without `-t`, `POST /v1/instances/{id}/exec`: prints the output and exits with the
//! command's exit code (124 when it timed out). With `-t`, or without a command (a shell),
//! the WebSocket form: the local terminal goes raw (restored on exit), stdin is forwarded,
//! window changes become resizes, and the exit code is the remote command's.

use super::Ctx;
use crate::args::ExecArgs;
use crate::client::{Answer, encode_segment};
use crate::errors::{ApiError, usage};
use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use gpuspot_api::{ExecResult, SessionEnd};
use serde_json::json;
use std::io::Write as _;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

/// The exit code when the command was killed at its timeout (as `timeout(1)` does).
const TIMED_OUT: i32 = 124;
/// The exit code when the command ended without one (a signal).
const NO_CODE: i32 = 255;
/// Extra time the HTTP request waits beyond the command's own timeout.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

pub fn run(ctx: &Ctx, args: &ExecArgs) -> anyhow::Result<()> {
    if !(1..=3600).contains(&args.timeout) {
        return usage("--timeout must be between 1 and 3600 seconds");
    }
    let code = if args.tty || args.command.is_empty() {
        interactive(ctx, args)?
    } else {
        once(ctx, args)?
    };
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn exec_path(id: &str) -> String {
    format!("/v1/instances/{}/exec", encode_segment(id))
}

/// The JSON form: one request, the whole output at the end.
fn once(ctx: &Ctx, args: &ExecArgs) -> anyhow::Result<i32> {
    let body = json!({ "command": args.command, "timeout_seconds": args.timeout });
    let wait = Duration::from_secs(args.timeout) + ANSWER_GRACE;
    let answer: Answer<ExecResult> = ctx.client.post_within(&exec_path(&args.id), &body, wait)?;
    if ctx.json() {
        crate::output::print_json(&answer.sent)?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(answer.body.output.as_bytes())?;
        out.flush()?;
    }
    Ok(exit_code_of(&answer.body, args.timeout))
}

/// The exit code `gpuspot` ends with, and a note on stderr when there is something to say.
fn exit_code_of(result: &ExecResult, timeout: u64) -> i32 {
    if result.truncated {
        eprintln!("gpuspot: output cut at the first MiB");
    }
    if result.timed_out {
        eprintln!("gpuspot: the command was killed after {timeout}s (--timeout)");
        return TIMED_OUT;
    }
    result.exit_code.unwrap_or(NO_CODE)
}

/// `ws://…/v1/instances/ID/exec?command=…&tty=…&cols=…&rows=…`.
fn ws_url(
    base: &str,
    id: &str,
    command: &[String],
    tty: bool,
    size: Option<(u16, u16)>,
) -> anyhow::Result<String> {
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("https://") {
        return usage(
            "interactive exec needs a plain http:// API URL (this build has no TLS for WebSockets)",
        );
    } else {
        return usage(format!("the API URL {base:?} must start with http://"));
    };
    let mut query: Vec<String> =
        command.iter().map(|c| format!("command={}", encode_segment(c))).collect();
    query.push(format!("tty={tty}"));
    if let Some((cols, rows)) = size {
        query.push(format!("cols={cols}&rows={rows}"));
    }
    Ok(format!("{base}{}?{}", exec_path(id), query.join("&")))
}

fn interactive(ctx: &Ctx, args: &ExecArgs) -> anyhow::Result<i32> {
    let local_tty = terminal::is_terminal();
    let tty = args.tty || (args.command.is_empty() && local_tty);
    let size = if tty { terminal::size() } else { None };
    let url = ws_url(ctx.client.base(), &args.id, &args.command, tty, size)?;
    let mut request =
        url.as_str().into_client_request().context("building the WebSocket request")?;
    if let Some(token) = ctx.client.token() {
        let value = format!("Bearer {token}").parse().context("the token is not a valid header")?;
        request.headers_mut().insert("Authorization", value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = runtime.block_on(async {
        let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(refused)?;
        // Raw only once connected, so that errors before print normally.
        let raw = if tty && local_tty { Some(terminal::RawMode::enter()?) } else { None };
        let code = session(socket, tty && local_tty).await;
        drop(raw);
        code
    });
    // A thread may still be blocked reading stdin: do not wait for it.
    runtime.shutdown_background();
    code
}

/// A refused upgrade carries the API's JSON error; show it like any other.
fn refused(err: tungstenite::Error) -> anyhow::Error {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            ApiError::from_body(
                status.as_u16(),
                status.canonical_reason().unwrap_or("error"),
                &body,
            )
            .into()
        }
        other => anyhow::Error::new(other).context("opening the interactive session"),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Relays stdin, resizes and output until the server's last word; the exit code.
async fn session(socket: Socket, resizes: bool) -> anyhow::Result<i32> {
    let (mut sink, mut stream) = socket.split();
    let mut stdin = spawn_stdin();
    let mut winch = terminal::window_changes(resizes);
    let mut code = NO_CODE;
    let mut stdin_open = true;
    loop {
        let message = tokio::select! {
            chunk = stdin.recv(), if stdin_open => match chunk {
                Some(bytes) => Message::binary(bytes),
                None => {
                    // Nothing more will come; keep reading the output.
                    stdin_open = false;
                    Message::text(json!({ "eof": true }).to_string())
                }
            },
            Some(()) = winch.recv() => match terminal::size() {
                Some((cols, rows)) => {
                    Message::text(json!({ "resize": { "cols": cols, "rows": rows } }).to_string())
                }
                None => continue,
            },
            message = stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    show(&bytes).await?;
                    continue;
                }
                Some(Ok(Message::Text(text))) => {
                    code = last_word(&text, code);
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => return Ok(code),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("the session broke")),
            },
        };
        sink.send(message).await.context("sending to the session")?;
    }
}

async fn show(bytes: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(bytes).await?;
    Ok(stdout.flush().await?)
}

/// The server's final text frame: `{"exit_code":N,"timed_out":B}` or `{"error":"…"}`.
fn last_word(text: &str, code: i32) -> i32 {
    match serde_json::from_str::<SessionEnd>(text) {
        Err(_) => code,
        Ok(SessionEnd::Error { error }) => {
            eprint!("\r\ngpuspot: {error}\r\n");
            NO_CODE
        }
        Ok(SessionEnd::Exit { timed_out: true, .. }) => {
            eprint!("\r\ngpuspot: the session reached its time limit\r\n");
            TIMED_OUT
        }
        Ok(SessionEnd::Exit { exit_code, .. }) => exit_code.unwrap_or(NO_CODE),
    }
}

/// Local stdin, read on a thread of its own (a blocking read cannot be cancelled); the
/// channel closes at end of input.
fn spawn_stdin() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match std::io::Read::read(&mut std::io::stdin().lock(), &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

mod terminal {
    //! The local terminal: raw mode (restored on drop), its size, and window changes.

    /// Whether stdin is a terminal.
    pub fn is_terminal() -> bool {
        // SAFETY: isatty only inspects the descriptor.
        unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
    }

    /// (columns, rows) of the terminal on stdout, or stdin.
    pub fn size() -> Option<(u16, u16)> {
        [libc::STDOUT_FILENO, libc::STDIN_FILENO].into_iter().find_map(|fd| {
            let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
            // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
            let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
            (ok && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
        })
    }

    /// SIGWINCH, as a channel of ticks; one that never ticks when `wanted` is false (or the
    /// signal cannot be watched).
    pub fn window_changes(wanted: bool) -> tokio::sync::mpsc::Receiver<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let Some(mut signals) = wanted.then(|| signal(SignalKind::window_change()).ok()).flatten()
        else {
            return rx;
        };
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// The terminal in raw mode until dropped.
    pub struct RawMode(libc::termios);

    impl RawMode {
        pub fn enter() -> anyhow::Result<RawMode> {
            // SAFETY: tcgetattr fills the zeroed termios we own; cfmakeraw and tcsetattr
            // only read and write it and the terminal's settings.
            unsafe {
                let mut saved: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                let mut raw = saved;
                libc::cfmakeraw(&mut raw);
                if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                Ok(RawMode(saved))
            }
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            // SAFETY: restores the settings saved by `enter`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_url_carries_the_command() {
        let command = vec!["sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()];
        let url = ws_url("http://127.0.0.1:8080", "i-1", &command, true, Some((80, 24))).unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:8080/v1/instances/i-1/exec?command=sh&command=-c&command=echo%20hi&tty=true&cols=80&rows=24"
        );
        assert!(ws_url("https://x", "i-1", &command, false, None).is_err());
    }

    #[test]
    fn exit_codes_follow_the_answer() {
        let result = |exit_code, timed_out| ExecResult {
            exit_code,
            output: String::new(),
            truncated: false,
            timed_out,
        };
        assert_eq!(exit_code_of(&result(Some(3), false), 30), 3);
        assert_eq!(exit_code_of(&result(None, true), 30), TIMED_OUT);
        assert_eq!(exit_code_of(&result(None, false), 30), NO_CODE);
        assert_eq!(last_word(r#"{"exit_code":0,"timed_out":false}"#, NO_CODE), 0);
        assert_eq!(last_word(r#"{"error":"gone"}"#, 0), NO_CODE);
    }
}
