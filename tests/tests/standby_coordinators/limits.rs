//! A standby's API holds against a connection flood as the leader's does: past
//! `[api] max_connections_per_client` a connection is answered 429 and closed, and the
//! standby still answers once the flood is gone (it must stay able to take over).

use super::support::{config, health, standby_with};
use gpuspot_e2e::cluster;
use gpuspot_e2e::postgres::Postgres;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn a_standby_caps_connections_per_client_and_answers_after_a_flood() {
    let pg = Postgres::start();
    let c = cluster!(&config(&pg));
    let b = standby_with(&c, &pg, "b", "[api]\nmax_connections_per_client = 2\n");
    assert_eq!(health(&b.api())["role"], "standby");
    let address = b.url().trim_start_matches("http://").to_owned();
    // Two idle connections hold the client's share; the third is refused at once.
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&address).unwrap()).collect();
    let mut third = TcpStream::connect(&address).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = third.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "the third connection: {answer:?}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    drop(held);
    let after =
        gpuspot_e2e::wait_until(gpuspot_e2e::SOON, "the standby to answer again", || {
            match b.api().try_get("/healthz") {
                Ok((200, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        });
    assert_eq!(after["role"], "standby", "{after}");
}
