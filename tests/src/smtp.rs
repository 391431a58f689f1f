//! A real mail server for the mail scenarios (docs/contracts.md#messages): Debian's `aiosmtpd`
//! (installed by scripts/install-test-deps.sh) on 127.0.0.1, storing every accepted mail in a
//! Maildir the test reads. It can be stopped and started again on the same port, to play a mail
//! server that is down for a while.

use crate::process::Proc;
use crate::wait::{holds, wait_until};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const AIOSMTPD: &str = "/usr/bin/aiosmtpd";

/// One mail as the server stored it: its headers (unfolded) and its decoded body.
#[derive(Clone, Debug)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map_or("", |(_, v)| v.as_str())
    }
}

pub struct MailServer {
    pub addr: SocketAddr,
    maildir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl MailServer {
    /// A server-to-be on a free loopback port, not started: mail to it fails until
    /// [`MailServer::start`].
    pub fn stopped(dir: &Path) -> MailServer {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let addr = port.expect("a free loopback port");
        // aiosmtpd makes the Maildir (new/, cur/, tmp/) only where no directory is yet.
        let maildir = dir.join("maildir");
        MailServer { addr, maildir, log: dir.join("aiosmtpd.log"), proc: None }
    }

    /// `[smtp]` for a coordinator that mails here, retrying quickly.
    pub fn config(&self) -> String {
        format!(
            "\n[smtp]\nurl = \"smtp://{}\"\nfrom = \"gpuspot <noreply@gpuspot.test>\"\n\
             first_retry = \"300ms\"\nmax_retry = \"1s\"\n",
            self.addr
        )
    }

    pub fn start(&mut self) {
        let mut command = Command::new(AIOSMTPD);
        command.args(["-n", "-l", &self.addr.to_string(), "-c", "aiosmtpd.handlers.Mailbox"]);
        command.arg(&self.maildir);
        self.proc = Some(Proc::spawn("aiosmtpd", command, &self.log));
        let addr = self.addr;
        wait_until(Duration::from_secs(20), "aiosmtpd to listen", || {
            let up = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            holds(up, || crate::process::log_tail(&self.log, 2000))
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<Mail> {
        let mut mails = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else { continue };
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    mails.push(parse(&text));
                }
            }
        }
        mails
    }

    /// Waits for a mail whose subject contains `needle`.
    pub fn wait_for(&self, timeout: Duration, needle: &str) -> Mail {
        wait_until(timeout, &format!("a mail about {needle:?}"), || {
            let mails = self.mails();
            let found = mails.iter().find(|m| m.header("Subject").contains(needle)).cloned();
            found.ok_or_else(|| {
                let subjects: Vec<&str> = mails.iter().map(|m| m.header("Subject")).collect();
                format!("subjects so far: {subjects:?}")
            })
        })
    }

    /// How many mails carry this Message-ID.
    pub fn count_with_id(&self, message_id: &str) -> usize {
        self.mails().iter().filter(|m| m.header("Message-ID") == message_id).count()
    }
}

fn parse(text: &str) -> Mail {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        match headers.last_mut() {
            Some((_, value)) if line.starts_with([' ', '\t']) => {
                value.push(' ');
                value.push_str(line.trim());
            }
            _ => {
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
        }
    }
    let mail = Mail { headers, body: String::new() };
    let quoted = mail.header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable");
    let body = if quoted { decode_quoted_printable(body) } else { body.to_owned() };
    Mail { body, ..mail }
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'=' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.stop();
    }
}
