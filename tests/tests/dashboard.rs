//! The dashboard at `/` in a real headless browser (Debian's chromium and chromedriver,
//! scripts/install-test-deps.sh): what a user sees with a wrong token, as the admin (pools
//! with their price charts, hosts with units, a queued multi-GPU instance, an account's
//! ledger, live events) and as an account (its own balance, quota, ledger and inbox);
//! terminating an instance, scaling a replica set and reading a message from the page. Screenshots of every step go to `target/screenshots/dashboard-*.png`.
//! Also: no route takes a token from a cookie (a cookie is readable by every port of the
//! host, tenants' pages behind the gateway included), and the assets carry a strict CSP.

use gpuspot_e2e::browser::{Browser, screenshot_dir};
use gpuspot_e2e::deploy::{Deployments, regular_spec};
use gpuspot_e2e::{Agent, Api, Cluster, SOON, cluster, holds, request, s, sh, wait_until};
use serde_json::{Value, json};

/// A name no page may interpret: it must show as text, never as markup.
const HOSTILE: &str = "<img src=x onerror=alert(1)>acme";

struct Scene {
    account_id: String,
    account_token: String,
    running: String,
    queued: String,
    deployment: String,
    /// Killed when dropped: kept for the whole test.
    _agent: Agent,
}

/// An agent with two RTX 4090s, a paid account, a running and a queued 9-GPU instance and
/// a one-replica replica set.
fn set_up(c: &Cluster) -> Scene {
    let agent = c.agent(&c.write_profile("dash-host", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let (status, account) = c.api.post("/v1/accounts", &json!({ "name": HOSTILE }));
    assert_eq!(status, 201, "{account}");
    let account_id = s(&account, "id").to_owned();
    let (status, paid) =
        c.api.post(&format!("/v1/accounts/{account_id}/payments"), &json!({ "amount": "25.00" }));
    assert_eq!(status, 201, "{paid}");
    let running = c.api.create(&request("web-1", &["RTX 4090"], 1, &sh("exec sleep 600")));
    let running = s(&running, "id").to_owned();
    c.wait_state(&running, "running");
    let queued = c.api.create(&request(HOSTILE, &["RTX 4090", "H100"], 9, &sh("exec sleep 1")));
    let queued = s(&queued, "id").to_owned();
    assert_eq!(s(&c.api.instance(&queued), "state"), "queued");
    let deployment = Deployments::new(&c.api).create(&json!({
        "name": "svc", "mode": "replicaset", "replicas": 1,
        "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh("exec sleep 600") },
    }));
    let deployment = s(&deployment, "id").to_owned();
    // Placed before the browser looks, so its row is stable when the test types into it.
    let deployments = Deployments::new(&c.api);
    wait_until(SOON, "the replica to run", || {
        let d = deployments.get(&deployment);
        let running =
            d["instances"].as_array().is_some_and(|l| l.iter().any(|i| s(i, "state") == "running"));
        holds(running, || d.to_string())
    });
    let account_token = s(&account, "token").to_owned();
    Scene { account_id, account_token, running, queued, deployment, _agent: agent }
}

/// Types `token` into the token field and presses "use".
fn use_token(b: &Browser, token: &str) {
    b.type_into("#token", token);
    b.click("#use-token");
}

fn wrong_token_shows_an_error(b: &Browser, base: &str) {
    b.goto(base);
    let banner = b.wait_for(
        "the no-token banner",
        "const e = document.getElementById('error'); return !e.hidden && e.innerText",
    );
    assert!(banner.as_str().unwrap_or("").contains("No token"), "{banner}");
    use_token(b, "gst_not-a-real-token");
    let banner = b.wait_for(
        "the 401 banner",
        "const e = document.getElementById('error'); \
         return !e.hidden && e.innerText.includes('401') && e.innerText",
    );
    assert!(banner.as_str().unwrap_or("").contains("invalid token"), "{banner}");
    let rows = b.js("return document.querySelectorAll('#instances tbody tr').length", vec![]);
    assert_eq!(rows, 0, "a wrong token must not leave data on the page");
    b.screenshot("01-wrong-token");
}

/// Every pool row holds an SVG chart with at least one price point and a drawn line.
fn pools_have_charts(b: &Browser) {
    let charts = b.wait_for(
        "a price chart with points for every pool",
        "const rows = [...document.querySelectorAll('#pools tbody tr')]; \
         const ok = rows.length === 4 && rows.every(r => { \
           const c = r.querySelector('svg.chart'); \
           return c && +c.dataset.points > 0 && c.querySelector('polyline[points]'); }); \
         return ok && rows.map(r => r.dataset.id + ':' + r.querySelector('svg.chart').dataset.points)",
    );
    assert!(charts.to_string().contains("RTX 4090"), "{charts}");
    b.screenshot("02-pools");
}

/// The text of the row for `id` in the table `#table`, once it is there.
fn row_text_of(b: &Browser, table: &str, id: &str) -> String {
    row_text_where(b, table, id, |_| true)
}

/// The text of the row for `id` in `#table` once `wanted` holds for it.
fn row_text_where(b: &Browser, table: &str, id: &str, wanted: impl Fn(&str) -> bool) -> String {
    let script = "const r = [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')] \
                  .find(r => r.dataset.id === arguments[1]); return r ? r.innerText : null";
    wait_until(SOON, &format!("row {id} in #{table}"), || {
        match b.js(script, vec![json!(table), json!(id)]) {
            Value::String(text) if wanted(&text) => Ok(text),
            other => Err(other.to_string()),
        }
    })
}

fn admin_sees_hosts_and_instances(b: &Browser, c: &Cluster, scene: &Scene) {
    let host = c.host("dash-host").expect("host");
    let hosts = row_text_of(b, "hosts", s(&host, "id"));
    assert!(hosts.contains("dash-host") && hosts.contains("2 x"), "{hosts}");
    assert!(hosts.contains("/2"), "units free/total: {hosts}");
    let queued = row_text_of(b, "instances", &scene.queued);
    assert!(queued.contains("9 x RTX 4090|H100"), "a queued instance shows its request: {queued}");
    assert!(queued.contains(HOSTILE), "the hostile name shows as text: {queued}");
    let running = row_text_of(b, "instances", &scene.running);
    assert!(running.contains("1 x") && running.contains("running"), "{running}");
    let injected = b.js("return document.querySelectorAll('main img').length", vec![]);
    assert_eq!(injected, 0, "a tenant's name became markup");
    b.screenshot("03-hosts-instances");
}

fn admin_sees_the_ledger(b: &Browser, scene: &Scene) {
    let account = row_text_of(b, "accounts", &scene.account_id);
    assert!(account.contains(HOSTILE) && account.contains("25.00"), "{account}");
    b.click(&format!("#accounts button.show-ledger[data-id='{}']", scene.account_id));
    let ledger = b.wait_for(
        "the account's ledger with its payment",
        "const t = document.getElementById('ledger').innerText; \
         return t.includes('payment') && t.includes('25.00') && t",
    );
    let title = b.js("return document.getElementById('ledger-title').innerText", vec![]);
    assert!(title.to_string().contains(&scene.account_id), "{title} / {ledger}");
    b.screenshot("04-accounts-ledger");
}

/// An instance created through the API shows up in the feed, pushed over EventSource.
fn live_events_arrive(b: &Browser, c: &Cluster) {
    b.wait_for(
        "the event stream to be live",
        "return document.getElementById('events-status').innerText === 'live'",
    );
    let created = c.api.create(&request("evt-1", &["RTX 4090"], 1, &sh("exec sleep 600")));
    let id = s(&created, "id").to_owned();
    let script = "return [...document.querySelectorAll('#events li')] \
                  .some(li => li.dataset.kind === 'instance_created' && li.innerText.includes(arguments[0]))";
    wait_until(SOON, "instance_created in the live feed", || {
        holds(b.js(script, vec![json!(id)]) == true, || "not in #events".into())
    });
    b.screenshot("05-live-events");
}

fn terminate_from_the_page(b: &Browser, c: &Cluster, scene: &Scene) {
    b.click(&format!("#instances button.terminate[data-id='{}']", scene.running));
    let asked = b.accept_dialog();
    assert!(asked.contains(&scene.running) && asked.contains("web-1"), "{asked}");
    c.wait_state(&scene.running, "terminated");
    // Ended instances are hidden by default, like the CLI's list; "all" shows them.
    b.js(
        "const s = document.getElementById('instances-state'); s.value = 'all'; \
          s.dispatchEvent(new Event('input'))",
        vec![],
    );
    row_text_where(b, "instances", &scene.running, |t| t.contains("terminated"));
    let button = format!(
        "return !!document.querySelector(\"button.terminate[data-id='{}']\")",
        scene.running
    );
    assert_eq!(b.js(&button, vec![]), false, "an ended instance has no terminate button");
    b.screenshot("06-terminated");
}

fn scale_from_the_page(b: &Browser, c: &Cluster, scene: &Scene) {
    let input = format!("#deployments input.replicas[data-id='{}']", scene.deployment);
    b.type_into(&input, "2");
    b.click(&format!("#deployments button.scale[data-id='{}']", scene.deployment));
    let deployments = Deployments::new(&c.api);
    wait_until(SOON, "the replica set to have 2 replicas", || {
        let d = deployments.get(&scene.deployment);
        holds(d["replicas"] == 2, || d.to_string())
    });
    let shown = b.wait_for(
        "the page to show 2 replicas",
        &format!(
            "const i = document.querySelector(\"{input}\"); return i && i.value === '2' && i.value"
        ),
    );
    assert_eq!(shown, "2");
    b.screenshot("07-scaled");
}

/// An account token: no admin sections, only its own instances.
fn account_sees_its_own(b: &Browser, c: &Cluster, scene: &Scene) {
    let tenant = Api::new(&c.api.base, Some(&scene.account_token));
    let own = tenant.create(&request("mine", &["RTX 4090"], 1, &sh("exec sleep 600")));
    use_token(b, &scene.account_token);
    b.wait_for(
        "the account view",
        "return document.getElementById('who').innerText === 'account token' && \
         document.getElementById('hosts-section').hidden && \
         document.getElementById('accounts-section').hidden",
    );
    row_text_where(b, "instances", s(&own, "id"), |t| t.contains("mine"));
    let rows = b.js("return document.querySelectorAll('#instances tbody tr').length", vec![]);
    assert_eq!(rows, 1, "an account sees only its own instances");
    let banner = b.js("return document.getElementById('error').hidden", vec![]);
    assert_eq!(banner, true, "an account token is not an error");
    let feed = b.js("return document.getElementById('events').innerText", vec![]);
    assert!(!feed.to_string().contains(&scene.running), "the admin's events stayed: {feed}");
    b.screenshot("08-account-view");
}

/// An account sees its own balance, quota, ledger and inbox (issue 25.5), its hostile name
/// as text, and marks a message read from the page.
fn account_sees_its_balance_ledger_and_inbox(b: &Browser, c: &Cluster, scene: &Scene) {
    let tenant = Api::new(&c.api.base, Some(&scene.account_token));
    let mut impossible = request("nope", &["RTX 4090"], 9, &sh("true"));
    impossible["on_unavailable"] = json!("fail");
    let failed = tenant.create(&impossible);
    let message = wait_until(SOON, "a message about the failed request", || {
        let inbox = tenant.get_ok("/v1/messages");
        let found = inbox.as_array().and_then(|l| l.first()).cloned();
        found.ok_or_else(|| inbox.to_string())
    });
    assert_eq!(s(&message, "instance_id"), s(&failed, "id"), "{message}");
    let me = b.wait_for(
        "the account's own row",
        "const r = document.querySelector('#me tbody tr');          return r && r.innerText.includes('25.00') && r.innerText",
    );
    let me = me.as_str().unwrap_or_default();
    assert!(me.contains(HOSTILE) && me.contains(&scene.account_id), "{me}");
    let markup = b.js("return document.querySelectorAll('#me img, #messages img').length", vec![]);
    assert_eq!(markup, 0, "a hostile name stays text");
    let ledger = b.wait_for(
        "the account's ledger",
        "const r = document.querySelector('#my-ledger tbody tr'); return r && r.innerText",
    );
    assert!(ledger.to_string().contains("payment") && ledger.to_string().contains("25.00"));
    let id = s(&message, "id");
    let row = row_text_where(b, "messages", id, |t| t.contains("mark read"));
    assert!(row.contains(s(&message, "subject")), "{row}");
    b.screenshot("09-account-inbox");
    b.click(&format!("#messages button.mark-read[data-id='{id}']"));
    row_text_where(b, "messages", id, |t| t.contains("yes"));
    let read = tenant.get_ok("/v1/messages?unread=true");
    assert_eq!(read.as_array().map(Vec::len), Some(0), "marked read on the server: {read}");
}

#[test]
fn the_dashboard_shows_the_cluster_and_acts_on_it_in_a_real_browser() {
    let c = cluster!();
    let scene = set_up(&c);
    let b = Browser::start(1500, 2000);
    eprintln!("screenshots in {}", screenshot_dir().display());
    let base = format!("{}/", c.coordinator.url());
    wrong_token_shows_an_error(&b, &base);
    use_token(&b, &c.coordinator.admin_token);
    pools_have_charts(&b);
    admin_sees_hosts_and_instances(&b, &c, &scene);
    admin_sees_the_ledger(&b, &scene);
    live_events_arrive(&b, &c);
    terminate_from_the_page(&b, &c, &scene);
    scale_from_the_page(&b, &c, &scene);
    account_sees_its_own(&b, &c, &scene);
    account_sees_its_balance_ledger_and_inbox(&b, &c, &scene);
}

/// `GET path` with the token as a cookie and no `Authorization` header.
fn with_cookie(api: &Api, path: &str, token: &str) -> reqwest::blocking::Response {
    let client = reqwest::blocking::Client::builder().no_proxy().build().expect("client");
    let cookie = format!("other=1; gpuspot_token={token}");
    client.get(format!("{}{path}", api.base)).header("Cookie", cookie).send().expect("GET")
}

#[test]
fn tokens_come_only_in_the_header_and_the_assets_carry_a_csp() {
    let c = cluster!();
    let admin = &c.coordinator.admin_token;
    for path in ["/v1/events", "/v1/instances"] {
        let answer = with_cookie(&c.api, path, admin);
        assert_eq!(answer.status(), 401, "{path} must not take the cookie");
        let body: Value = answer.json().expect("JSON error");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    let client = reqwest::blocking::Client::builder().no_proxy().build().expect("client");
    let url = format!("{}/v1/instances", c.api.base);
    let lower = client.get(&url).header("Authorization", format!("bearer {admin}")).send();
    assert_eq!(lower.expect("GET").status(), 200, "the scheme's name is case-insensitive");
    for (path, kind) in
        [("/", "text/html"), ("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")]
    {
        let answer = with_cookie(&c.api, path, "");
        assert_eq!(answer.status(), 200, "{path}");
        let headers = answer.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    }
}
