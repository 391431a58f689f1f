//! A webhook receiver for the tests: a thread on 127.0.0.1 that answers 200 to every POST
//! and hands the requests on.

use gpuspot_e2e::Cluster;
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A webhook receiver on 127.0.0.1 that answers 200 to every POST and hands on the bodies.
pub struct Receiver {
    port: u16,
    bodies: mpsc::Receiver<String>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, bodies) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = read_request(&mut stream);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                if tx.send(request).is_err() {
                    return;
                }
            }
        });
        Receiver { port, bodies }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The first request received within `within` that contains `needle`.
    pub fn wait_for(&self, needle: &str, within: Duration, c: &Cluster) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.bodies.recv_timeout(left) {
                Ok(body) if body.contains(needle) => return body,
                Ok(body) => seen.push(body),
                Err(_) => break,
            }
        }
        panic!(
            "no {needle} POSTed to {} within {within:?}; got {seen:?}\n{}",
            self.url(),
            c.coordinator.log_tail()
        )
    }
}

/// Headers and a `content-length` body.
fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
    String::from_utf8_lossy(&data).to_string()
}
