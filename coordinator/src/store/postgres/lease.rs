//! The leadership lease in PostgreSQL (docs/architecture.md, standby coordinators): one
//! row with the holder, its epoch, its expiry and the holder's advertised addresses. Every
//! time is the database's clock, so coordinators' clocks never need to agree. Taking the
//! lease bumps the epoch; the leader's commits check that epoch (see
//! [`super::write::check_fence`]), which is what fences a leader that lost it.

use super::super::StoreError;
use postgres::GenericClient;
use std::time::Duration;

/// Who a coordinator is, as the lease row records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Unique per process run: a restarted coordinator is a new candidate.
    pub holder: String,
    /// Where clients reach its API (`http://…`), sent to them by the standbys.
    pub http_url: String,
    /// Where agents reach it (`HOST:PORT`), sent to them by the standbys.
    pub quic_addr: String,
}

impl Candidate {
    /// Its addresses, as standbys name them once it leads.
    pub fn addrs(&self) -> crate::ha::LeaderAddrs {
        crate::ha::LeaderAddrs { http: self.http_url.clone(), quic: self.quic_addr.clone() }
    }
}

/// The lease as a standby reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub epoch: i64,
    pub http_url: String,
    pub quic_addr: String,
    /// Whether it has not expired by the database's clock.
    pub live: bool,
}

fn millis(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// Takes the lease if it has expired; the new epoch when taken.
pub fn try_take(
    client: &mut impl GenericClient,
    me: &Candidate,
    lease: Duration,
) -> Result<Option<i64>, StoreError> {
    let row = client.query_opt(
        "UPDATE leader_lease SET holder = $1, epoch = epoch + 1, \
         expires_at = clock_timestamp() + $2::BIGINT * interval '1 millisecond', \
         http_url = $3, quic_addr = $4 \
         WHERE id = 1 AND expires_at < clock_timestamp() RETURNING epoch",
        &[&me.holder, &millis(lease), &me.http_url, &me.quic_addr],
    )?;
    Ok(row.map(|r| r.get(0)))
}

/// Extends the lease of `epoch`; false when another coordinator has taken it since.
pub fn renew(
    client: &mut impl GenericClient,
    epoch: i64,
    lease: Duration,
) -> Result<bool, StoreError> {
    let renewed = client.execute(
        "UPDATE leader_lease SET expires_at = clock_timestamp() + $2::BIGINT * interval '1 millisecond' \
         WHERE id = 1 AND epoch = $1",
        &[&epoch, &millis(lease)],
    )?;
    Ok(renewed == 1)
}

/// Gives the lease up at a clean stop, so a standby takes over at once.
pub fn release(client: &mut impl GenericClient, epoch: i64) -> Result<(), StoreError> {
    client.execute(
        "UPDATE leader_lease SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1",
        &[&epoch],
    )?;
    Ok(())
}

pub fn read(client: &mut impl GenericClient) -> Result<LeaseRow, StoreError> {
    let row = client.query_one(
        "SELECT holder, epoch, http_url, quic_addr, expires_at > clock_timestamp() \
         FROM leader_lease WHERE id = 1",
        &[],
    )?;
    Ok(LeaseRow {
        holder: row.get(0),
        epoch: row.get(1),
        http_url: row.get(2),
        quic_addr: row.get(3),
        live: row.get(4),
    })
}
