//! Billing end to end (docs/contracts.md#billing, #http-api, seed 000): tenants see only their own
//! instances, events, account and ledger; a balance below zero ends every instance of the account
//! after the grace (hold or not) unless a payment comes first; and the ledger stays exact to the
//! micro-unit across a coordinator killed in the middle of metering.

use gpuspot_e2e::billing::{Account, assert_ledger_adds_up, charged, create_account};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::{GUEST_PROLOGUE, guest_key, patch, socket_of, spot, throughout};
use gpuspot_e2e::values::{NANOS_PER_SECOND as SEC, micros, millis, money, now_nanos, signed};
use gpuspot_e2e::values::{time, unix_nanos};
use gpuspot_e2e::{
    Agent, Cluster, SOON, assert_error, cluster, config_with_timers, holds, is_alive, request, s,
    sh, wait_until,
};
use serde_json::{Value, json};

/// A host with `gpus` H100s (pool "H100", list 2.58 per GPU-hour).
fn h100_host(c: &Cluster, gpus: u32) -> Agent {
    c.agent(&c.write_profile("h100-host", "NVIDIA H100 80GB HBM3", gpus, 16 * gpus, 64 * gpus))
}

/// `account` creates an instance from `body` (202); its id.
fn create_as(account: &Account, body: &Value) -> String {
    s(&account.api.create(body), "id").to_owned()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|i| s(i, "id")).collect()
}

#[test]
fn accounts_see_only_their_own_instances_events_and_ledger() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (alice, bob) = (create_account(&c.api, "alice"), create_account(&c.api, "bob"));
    alice.pay(&c.api, "100.00");
    bob.pay(&c.api, "100.00");
    let job = |name| request(name, &["RTX 5090"], 1, &sh("exec sleep 60"));
    let b_id = create_as(&bob, &job("bobs"));
    let a_id = create_as(&alice, &job("alices"));
    c.wait_state(&b_id, "running");
    c.wait_state(&a_id, "running");

    let mine = alice.api.instances();
    assert_eq!(ids(&mine), vec![a_id.as_str()], "alice lists {mine:?}");
    assert!(ids(&c.api.instances()).iter().any(|i| *i == b_id), "the admin sees bob's");
    assert!(ids(&c.api.instances()).iter().any(|i| *i == a_id), "the admin sees alice's");
    let theirs = format!("/v1/instances/{b_id}");
    assert_error(&alice.api.get(&theirs), 404, None, "alice reads bob's instance");
    assert_error(&alice.api.get(&format!("{theirs}/logs")), 404, None, "alice reads bob's logs");
    let rename = patch(&alice.api, &theirs, &json!({ "name": "mine-now" }));
    assert_error(&rename, 404, None, "alice renames bob's instance");
    assert_error(&alice.api.delete(&theirs), 404, None, "alice deletes bob's instance");
    let untouched = c.api.instance(&b_id);
    assert_eq!((s(&untouched, "state"), s(&untouched, "name")), ("running", "bobs"));

    let bobs_account = format!("/v1/accounts/{}", bob.id);
    assert_error(&alice.api.get(&bobs_account), 404, None, "alice reads bob's account");
    let ledger = format!("{bobs_account}/ledger");
    assert_error(&alice.api.get(&ledger), 404, None, "alice reads bob's ledger");
    let payment = alice.api.post(&format!("{bobs_account}/payments"), &json!({"amount": "1.00"}));
    assert_error(&payment, 403, Some("forbidden"), "alice pays into bob's account");
    assert_error(&alice.api.get("/v1/hosts"), 403, None, "alice lists hosts");
    let for_bob = json!({ "account_id": bob.id, "name": "x", "gpu": { "models": ["RTX 5090"] },
        "billing": { "mode": "regular" }, "command": ["true"] });
    assert_error(&alice.api.post("/v1/instances", &for_bob), 403, None, "alice creates for bob");
    assert_eq!(s(&c.api.get_ok(&bobs_account), "name"), "bob", "the admin reads bob's account");
    assert_eq!(s(&alice.show(), "name"), "alice");

    // Alice's stream, replayed from the start up to her own instance running, holds
    // nothing of bob's; the admin's holds both.
    let mut stream = EventStream::open(&alice.api, Some(0));
    stream.wait_for(SOON, "alice's instance_running", |e| e.is("instance_running", &a_id));
    // Market-wide price moves are public; everything else must be alice's own.
    let foreign: Vec<_> = stream
        .seen
        .iter()
        .filter(|e| e.account_id() != alice.id && e.kind != "price_changed")
        .collect();
    assert!(foreign.is_empty(), "alice sees {foreign:?}");
    let mut admin = EventStream::open(&c.api, Some(0));
    admin.wait_for(SOON, "bob's instance_running", |e| e.is("instance_running", &b_id));
    admin.wait_for(SOON, "alice's instance_running", |e| e.is("instance_running", &a_id));

    // Both get charged, each on their own ledger only.
    wait_until(SOON, "a charge on alice's ledger", || {
        let ledger = alice.ledger();
        holds(charged(&ledger, &a_id) > 0, || format!("{ledger:?}"))
    });
    let ledger = alice.ledger();
    assert!(ledger.iter().all(|e| e["instance_id"].is_null() || s(e, "instance_id") == a_id));
    let bobs = c.api.get_ok(&ledger_path(&bob));
    assert!(bobs.as_array().is_some_and(|l| l.iter().all(|e| s(e, "instance_id") != a_id)));
}

fn ledger_path(account: &Account) -> String {
    format!("/v1/accounts/{}/ledger", account.id)
}

/// An account with nothing paid in and a spot instance in a long hold: its first charge
/// makes it overdue. The instance (running) and its socket.
fn overdue_spot(c: &Cluster, account: &Account) -> (Value, std::path::PathBuf) {
    let script = format!("{GUEST_PROLOGUE}exec sleep 120");
    let id = create_as(account, &spot("spot", &["H100"], 1, "1.00", &sh(&script)));
    let running = c.wait_state(&id, "running");
    (running, socket_of(c, &id))
}

#[test]
fn overdue_account_is_shut_down_after_the_grace_even_in_hold() {
    let grace = 4 * SEC;
    let config = config_with_timers(&[("hold_period", "60s"), ("overdue_grace", "4s")]);
    let c = cluster!(&config);
    let a = h100_host(&c, 2);
    let broke = create_account(&c.api, "broke");
    let (running, socket) = overdue_spot(&c, &broke);
    let id = s(&running, "id").to_owned();
    let pid = a.workload_pid(&id);

    let noticed = c.wait_state(&id, "termination_scheduled");
    assert_eq!(s(&noticed, "termination_reason"), "overdue", "{noticed}");
    let tt = time(&noticed, "termination_time");
    assert!(tt < time(&noticed, "hold_until"), "in hold, still noticed: {noticed}");
    let account = broke.show();
    assert_eq!(account["overdue"], true, "{account}");
    assert!(money(&account, "balance") < 0, "{account}");
    assert_eq!(time(&account, "overdue_deadline"), tt, "{account} vs {noticed}");
    let since = time(&account, "overdue_since");
    assert_eq!(tt - since, grace, "{account}");

    let body = wait_until(SOON, "the guest to see its termination time", || {
        let (status, body) = guest_key(&socket, "spot_termination_time");
        if status == 200 { Ok(body) } else { Err(format!("{status} {body}")) }
    });
    assert_eq!(unix_nanos(&body), tt - tt.rem_euclid(SEC), "{body}");
    assert_eq!(guest_key(&socket, "termination_reason"), (200, "\"overdue\"".into()));
    let more = spot("more", &["H100"], 1, "1.00", &sh("exec sleep 60"));
    let refused = broke.api.post("/v1/instances", &more);
    assert_error(&refused, 402, Some("payment_required"), "a new instance while overdue");

    throughout(tt, "termination_scheduled before the overdue deadline", || {
        let alive = is_alive(pid);
        let instance = c.api.instance(&id);
        if now_nanos() >= tt {
            return Ok(());
        }
        let waiting = s(&instance, "state") == "termination_scheduled";
        holds(alive && waiting, || format!("alive={alive} {instance}"))
    });
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "overdue", "{ended}");
    let late = time(&ended, "ended_at") - tt;
    assert!((0..=2 * SEC).contains(&late), "ended {} from the deadline", signed(late));
    assert_ledger_adds_up(&broke.ledger(), money(&broke.show(), "balance"));
}

#[test]
fn payment_inside_the_grace_cancels_the_shutdown() {
    let config = config_with_timers(&[("hold_period", "60s"), ("overdue_grace", "5s")]);
    let c = cluster!(&config);
    let a = h100_host(&c, 2);
    let late_payer = create_account(&c.api, "late-payer");
    let mut stream = EventStream::open(&late_payer.api, Some(0));
    let (running, socket) = overdue_spot(&c, &late_payer);
    let id = s(&running, "id").to_owned();
    let pid = a.workload_pid(&id);
    let noticed = c.wait_state(&id, "termination_scheduled");
    assert_eq!(s(&noticed, "termination_reason"), "overdue", "{noticed}");
    let old_deadline = time(&noticed, "termination_time");
    // The agent hears of the notice once it is committed, a moment after the API shows it.
    wait_until(SOON, "the guest to see its termination time", || {
        let (status, body) = guest_key(&socket, "spot_termination_time");
        holds(status == 200, || format!("{status} {body}"))
    });

    // The operator books the account's payment, inside the grace.
    let after = late_payer.pay(&c.api, "1.00");
    assert!(now_nanos() < old_deadline, "the payment came too late to test anything");
    assert_eq!(after["overdue"], false, "{after}");
    assert!(after["overdue_deadline"].is_null() && money(&after, "balance") >= 0, "{after}");
    let back = c.api.instance(&id);
    assert_eq!(s(&back, "state"), "running", "{back}");
    assert!(back["termination_time"].is_null() && back["termination_reason"].is_null(), "{back}");
    wait_until(SOON, "the socket to drop the termination", || {
        let (status, body) = guest_key(&socket, "spot_termination_time");
        holds(status == 404 && body.trim() == "404 page not found", || format!("{status} {body}"))
    });
    assert_eq!(guest_key(&socket, "termination_reason").0, 404);
    stream.wait_for(SOON, "termination_cancelled", |e| e.is("termination_cancelled", &id));

    throughout(old_deadline + 2 * SEC, "running past the old deadline", || {
        let instance = c.api.instance(&id);
        let running = s(&instance, "state") == "running" && is_alive(pid);
        holds(running, || instance.to_string())
    });
    let account = late_payer.show();
    assert_eq!(account["overdue"], false, "{account}");
    // The meter keeps charging the running instance: read the ledger between two equal
    // balances, so no charge lands between the two reads.
    let (ledger, balance) = wait_until(SOON, "a ledger between two equal balances", || {
        let before = money(&late_payer.show(), "balance");
        let ledger = late_payer.ledger();
        let after = money(&late_payer.show(), "balance");
        holds(before == after, || format!("{before} then {after}")).map(|()| (ledger, before))
    });
    assert_ledger_adds_up(&ledger, balance);
}

#[test]
fn ledger_is_exact_across_a_coordinator_killed_mid_metering() {
    let mut c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let _h = h100_host(&c, 4);
    let payer = create_account(&c.api, "payer");
    payer.pay(&c.api, "100.00");
    // (models, GPUs, list price, seconds)
    let runs = [("RTX 5090", 1, "0.90", 3), ("RTX 5090", 3, "0.90", 4), ("H100", 2, "2.58", 3)];
    let ids: Vec<String> = runs
        .iter()
        .map(|(model, gpus, _, secs)| {
            let body = request("metered", &[model], *gpus, &sh(&format!("exec sleep {secs}")));
            create_as(&payer, &body)
        })
        .collect();
    for id in &ids {
        c.wait_state(id, "running");
    }
    wait_until(SOON, "every instance to have been charged at least once", || {
        let ledger = payer.ledger();
        holds(ids.iter().all(|id| charged(&ledger, id) > 0), || format!("{ledger:?}"))
    });
    c.coordinator.kill();
    c.coordinator.restart();

    let ended: Vec<Value> = ids.iter().map(|id| c.wait_state(id, "terminated")).collect();
    let ledger = payer.ledger();
    for ((_, gpus, list, _), instance) in runs.iter().zip(&ended) {
        assert_eq!(s(instance, "termination_reason"), "exited", "{instance}");
        let ms = millis(instance, "ended_at") - millis(instance, "started_at");
        let expected = micros(list) as i128 * *gpus as i128 * ms / 3_600_000;
        let id = s(instance, "id");
        assert_eq!(charged(&ledger, id) as i128, expected, "{id} ran {ms} ms: {ledger:?}");
        eprintln!("{id}: {gpus} GPU(s) × {list} × {ms} ms = {expected} micro-units, as charged");
    }
    let account = payer.show();
    assert_ledger_adds_up(&ledger, money(&account, "balance"));
    let total: i64 = ids.iter().map(|id| charged(&ledger, id)).sum();
    assert_eq!(money(&account, "balance"), 100_000_000 - total, "{account}");
}
