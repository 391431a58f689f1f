//! A real headless browser for the dashboard test: Debian's `chromedriver` (package
//! `chromium-driver`) driving `chromium`, spoken to over WebDriver with fantoccini on plain
//! HTTP (no TLS stack: the driver listens on loopback). Blocking wrappers, since scenarios
//! are synchronous; dropping the [`Browser`] ends the session and kills chromedriver with
//! every chromium process under it, panics included.

use crate::process::{Proc, kill_processes_under, kill_tree};
use crate::wait::wait_until;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
    shots: PathBuf,
    /// Chromium's profile; every chromium process names it on its command line.
    profile: tempfile::TempDir,
    driver: Proc,
}

/// A port nobody listens on now (the kernel's pick; freed again for chromedriver to take).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Where screenshots go: `$CARGO_TARGET_DIR/screenshots`, else the workspace's
/// `target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir.canonicalize().unwrap_or(dir)
}

/// chromedriver on a free loopback port, once it answers; it and its URL.
fn spawn_driver(profile: &Path) -> (Proc, String) {
    let port = free_port();
    let mut command = Command::new(CHROMEDRIVER);
    // Its own process group, so chromium and its helpers die with it; HOME in the profile,
    // so even crashpad (whose database lives under it) names the profile.
    command
        .arg(format!("--port={port}"))
        .current_dir(profile)
        .env("HOME", profile)
        .env_remove("XDG_CONFIG_HOME")
        .process_group(0);
    let driver = Proc::spawn("chromedriver", command, &profile.join("chromedriver.log"));
    let url = format!("http://127.0.0.1:{port}");
    let status = reqwest::blocking::Client::builder().no_proxy().build().expect("client");
    wait_until(Duration::from_secs(20), "chromedriver to answer /status", || {
        let answer = status.get(format!("{url}/status")).send().map_err(|e| e.to_string())?;
        let body: Value = answer.json().map_err(|e| e.to_string())?;
        if body["value"]["ready"] == true { Ok(()) } else { Err(body.to_string()) }
    });
    (driver, url)
}

fn capabilities(profile: &Path, width: u32, height: u32) -> serde_json::Map<String, Value> {
    // As root chromium refuses to start without --no-sandbox; /dev/shm is small in
    // containers, and there is no GPU to draw with.
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    let options = json!({ "binary": CHROMIUM, "args": args });
    let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
    caps.as_object().cloned().unwrap_or_default()
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a `width`×`height` headless
    /// chromium session; screenshots go to [`screenshot_dir`].
    pub fn start(width: u32, height: u32) -> Browser {
        // Never skipped: a machine without them fails here, saying what to install.
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: scripts/install-test-deps.sh installs chromium and \
                 chromium-driver (apt-get install -y chromium chromium-driver)"
            );
        }
        let profile = tempfile::Builder::new().prefix("chromium").tempdir().expect("temp dir");
        let (driver, url) = spawn_driver(profile.path());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = runtime.expect("tokio runtime");
        let caps = capabilities(profile.path(), width, height);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let client = runtime
            .block_on(builder.capabilities(caps).connect(&url))
            .unwrap_or_else(|e| panic!("WebDriver session: {e}\n{}", driver.log_tail(4000)));
        let shots = screenshot_dir();
        Browser { client: Some(client), runtime, shots, profile, driver }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs `script` (a function body: `arguments[0]`…, `return …`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        let run = self.client().execute(script, args);
        self.runtime.block_on(run).unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// Clicks the element `css` selects. The page re-renders a table when its data
    /// changes, so an element found just before may be gone by the click: then it is found
    /// again (a stale element was not clicked).
    pub fn click(&self, css: &str) {
        let client = self.client();
        wait_until(Duration::from_secs(10), &format!("a click on {css}"), || {
            let click = async { client.find(Locator::Css(css)).await?.click().await };
            self.runtime.block_on(click).map_err(|e| e.to_string())
        });
    }

    /// Replaces the text in the input `css` selects with `text`, as typed.
    pub fn type_into(&self, css: &str, text: &str) {
        let client = self.client();
        let typed = async {
            let input = client.find(Locator::Css(css)).await?;
            input.clear().await?;
            input.send_keys(text).await
        };
        self.runtime.block_on(typed).unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Accepts the open `confirm()` dialog; its text.
    pub fn accept_dialog(&self) -> String {
        let client = self.client();
        let accept = async {
            let text = client.get_alert_text().await?;
            client.accept_alert().await?;
            Ok::<_, fantoccini::error::CmdError>(text)
        };
        self.runtime.block_on(accept).unwrap_or_else(|e| panic!("accept dialog: {e}"))
    }

    /// Waits until `script` (run in the page) returns something other than null, false or
    /// ""; that value. `what` names the condition for the timeout message.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        wait_until(Duration::from_secs(30), what, || match self.js(script, vec![]) {
            Value::Null | Value::Bool(false) => Err(self.page_state()),
            Value::String(s) if s.is_empty() => Err(self.page_state()),
            value => Ok(value),
        })
    }

    /// The page's banner and start of its text, for timeout messages.
    fn page_state(&self) -> String {
        let script = "return 'banner: ' + document.getElementById('error').innerText + \
                      '\\npage: ' + document.body.innerText.slice(0, 3000)";
        self.js(script, vec![]).as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the window as `dashboard-NAME.png`; its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.runtime.block_on(self.client().screenshot()).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = self.shots.join(format!("dashboard-{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Bounded: a wedged browser must not hang the test; the kill below ends it.
            // (The timer is made inside the runtime, which it needs.)
            let close =
                async { tokio::time::timeout(Duration::from_secs(5), client.close()).await };
            let _ = self.runtime.block_on(close);
        }
        kill_tree(self.driver.pid());
        self.driver.kill();
        kill_processes_naming(self.profile.path());
        kill_processes_under(self.profile.path());
    }
}

/// Kills every process whose command line names `path`: chromium's helpers that left the
/// process group (the zygote and renderers carry `--user-data-dir`, crashpad its database).
fn kill_processes_naming(path: &Path) {
    let needle = path.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(&needle) {
            kill_tree(pid);
        }
    }
}
