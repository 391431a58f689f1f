//! docs/contracts.md#market's two market rules end to end (seeds 000, 002, 003): a running spot bid
//! below the market price is reclaimed for price once its hold is over, with nobody else waiting;
//! and a `fixed_at_start` pool keeps each instance at its start price while the market moves,
//! reclaiming it only for capacity. The test config's timers: hold 4 s, notice 3 s, price tick 1 s.
//! With no competition the H100 pool (list 2.58, ratios 0.1/0.2) prices at 0.258 idle, rising to
//! 0.516 when full.

use gpuspot_e2e::market::{GUEST_PROLOGUE, guest_key, market_price, socket_of, spot, throughout};
use gpuspot_e2e::values::{NANOS_PER_SECOND as SEC, money, now_nanos, signed, time};
use gpuspot_e2e::{Agent, Cluster, SOON, TEST_CONFIG, cluster, holds, request, s, sh, wait_until};
use serde_json::Value;

const H100: &str = "NVIDIA H100 80GB HBM3";
/// The full pool's surplus price: 0.2 × 2.58.
const FULL_POOL_PRICE: i64 = 516_000;

fn h100_host(c: &Cluster, gpus: u32) -> Agent {
    c.agent(&c.write_profile("rules-host", H100, gpus, 16 * gpus, 64 * gpus))
}

/// A spot instance of `count` H100s bidding `bid`, once running.
fn running_spot(c: &Cluster, name: &str, count: u32, bid: &str, script: &str) -> Value {
    let created = c.api.create(&spot(name, &["H100"], count, bid, &sh(script)));
    c.wait_state(s(&created, "id"), "running")
}

/// `GET /v1/pools`' entry for H100.
fn h100_pool(c: &Cluster) -> Value {
    let pools = c.api.get_ok("/v1/pools");
    let pool = pools.as_array().and_then(|p| p.iter().find(|p| p["model"] == "H100")).cloned();
    pool.unwrap_or_else(|| panic!("no H100 pool: {pools}"))
}

/// Waits until the market price of H100 is the full pool's surplus price.
fn wait_for_full_pool_price(c: &Cluster) {
    wait_until(SOON, "the market price to rise to 0.516", || {
        let price = market_price(&c.api, "H100");
        holds(price == FULL_POOL_PRICE, || format!("price {price}"))
    });
}

/// The instance ends at its deadline `tt` (within 2 s) for `reason`.
fn ends_at_deadline(c: &Cluster, id: &str, tt: i128, reason: &str) {
    let ended = c.wait_state(id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), reason, "{ended}");
    let late = time(&ended, "ended_at") - tt;
    assert!((0..=2 * SEC).contains(&late), "ended {} from the deadline: {ended}", signed(late));
}

#[test]
fn a_bid_below_the_rising_price_is_reclaimed_after_its_hold_without_competition() {
    let c = cluster!();
    let _host = h100_host(&c, 4);
    assert_eq!(h100_pool(&c)["pricing"], "market");
    let cheap = running_spot(&c, "cheap", 1, "0.30", &format!("{GUEST_PROLOGUE}exec sleep 120"));
    let id = s(&cheap, "id").to_owned();
    let hold_until = time(&cheap, "hold_until");
    // Filling the pool raises the surplus price past the cheap bid; nobody else waits.
    let filler = running_spot(&c, "filler", 3, "1.00", "exec sleep 120");
    wait_for_full_pool_price(&c);
    let during_hold = c.api.instance(&id);
    if now_nanos() < hold_until {
        assert_eq!(s(&during_hold, "state"), "running", "{during_hold}");
        assert_eq!(money(&during_hold, "price"), 300_000, "billed at its bid: {during_hold}");
    }

    let noticed = c.wait_state(&id, "termination_scheduled");
    assert_eq!(s(&noticed, "termination_reason"), "reclaimed_price", "{noticed}");
    let tt = time(&noticed, "termination_time");
    let decided = tt - 3 * SEC;
    assert!(decided >= hold_until, "noticed {} inside the hold", signed(hold_until - decided));
    assert!(decided - hold_until <= 2 * SEC, "noticed {} late", signed(decided - hold_until));
    let queued = c.api.instances().into_iter().filter(|i| s(i, "state") == "queued").count();
    assert_eq!(queued, 0, "nobody else was waiting");

    let socket = socket_of(&c, &id);
    let (status, body) = guest_key(&socket, "spot_termination_time");
    assert_eq!(status, 200, "{body}");
    let shown = gpuspot_e2e::values::unix_nanos(&body);
    assert_eq!(shown, tt - tt.rem_euclid(SEC), "the socket shows {body}, the API {noticed}");
    assert_eq!(guest_key(&socket, "termination_reason"), (200, "\"reclaimed_price\"".into()));

    ends_at_deadline(&c, &id, tt, "reclaimed_price");
    let filler = c.api.instance(s(&filler, "id"));
    let untouched = s(&filler, "state") == "running" && filler["termination_time"].is_null();
    assert!(untouched, "the bid above the price was reclaimed: {filler}");
}

#[test]
fn a_fixed_at_start_pool_keeps_the_start_price_and_reclaims_only_for_capacity() {
    let pool = "model = \"H100\"\nlist_price = \"2.58\"\n";
    assert!(TEST_CONFIG.contains(pool), "the test config's H100 pool changed");
    let config = TEST_CONFIG.replace(pool, &format!("{pool}pricing = \"fixed_at_start\"\n"));
    let c = cluster!(&config);
    let _host = h100_host(&c, 4);
    assert_eq!(h100_pool(&c)["pricing"], "fixed_at_start");
    let cheap = running_spot(&c, "cheap", 1, "0.30", "exec sleep 120");
    let id = s(&cheap, "id").to_owned();
    let start_price = money(&cheap, "price");
    assert!(start_price < 300_000, "started above the idle price: {cheap}");
    let filler = running_spot(&c, "filler", 3, "1.00", "exec sleep 120");
    let filler_start_price = money(&filler, "price");
    wait_for_full_pool_price(&c);

    // Past the hold, with the market above its bid, it stays at the price it started at.
    let until = time(&cheap, "hold_until").max(time(&filler, "hold_until")) + 2 * SEC;
    throughout(until, "the start price and no notice", || {
        let (now, other) = (c.api.instance(&id), c.api.instance(s(&filler, "id")));
        let kept = s(&now, "state") == "running"
            && now["termination_time"].is_null()
            && money(&now, "price") == start_price
            && money(&other, "price") == filler_start_price;
        holds(kept || now_nanos() >= until, || format!("{now} / {other}"))
    });
    assert_eq!(market_price(&c.api, "H100"), FULL_POOL_PRICE, "the market moved meanwhile");

    let regular = c.api.create(&request("regular", &["H100"], 1, &sh("exec sleep 120")));
    let noticed = c.wait_state(&id, "termination_scheduled");
    assert_eq!(s(&noticed, "termination_reason"), "reclaimed_capacity", "{noticed}");
    let tt = time(&noticed, "termination_time");
    ends_at_deadline(&c, &id, tt, "reclaimed_capacity");
    let placed = c.wait_state(s(&regular, "id"), "running");
    assert!(time(&placed, "started_at") >= tt, "placed before the deadline: {placed}");
    let filler = c.api.instance(s(&filler, "id"));
    assert!(filler["termination_time"].is_null(), "the higher bid was reclaimed: {filler}");
}
