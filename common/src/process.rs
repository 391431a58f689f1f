//! What every gpuspot binary does at its edges: log to stderr filtered by `RUST_LOG`
//! (default `info`) as text or JSON lines (`--log-format`, docs/contracts.md#operating-hosts), and
//! wait for Ctrl-C or SIGTERM to shut down cleanly.

/// The values `--log-format` accepts.
pub const LOG_FORMATS: [&str; 2] = ["text", "json"];

/// Logs to stderr as text, coloured only on a terminal; `RUST_LOG` filters (default
/// `info`). Safe to call twice.
pub fn init_tracing() {
    init_tracing_as("text");
}

/// Like [`init_tracing`]; `"json"` writes one JSON object per line (for log shippers).
pub fn init_tracing_as(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// This machine's hostname, or "localhost" when it cannot be read (a name is only a label).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
