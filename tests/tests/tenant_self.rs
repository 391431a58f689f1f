//! A tenant sees itself (issue 25.5): `GET /v1/whoami` and `gpuspot whoami` name the token's
//! account with its balance, quota and usage (`admin` for the admin token), and an account's
//! own name works where its id does (`accounts show acme`, `accounts ledger acme`), while
//! another account's name answers exactly as a name nobody has.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::{cli, cli_error, cli_text};
use gpuspot_e2e::values::money;
use gpuspot_e2e::{Api, assert_error, cluster, s};

/// The 404 message for `word`, with the word itself blanked out.
fn not_found_for(api: &Api, path: &str, word: &str) -> String {
    let answer = api.get(path);
    assert_error(&answer, 404, Some("not_found"), path);
    answer.1["error"]["message"].as_str().unwrap_or_default().replace(word, "WORD")
}

#[test]
fn a_tenant_sees_itself_by_whoami_and_by_its_own_name() {
    let c = cluster!();
    let acme = create_account(&c.api, "acme");
    let bob = create_account(&c.api, "bob");
    acme.pay(&c.api, "12.50");

    let me = acme.api.get_ok("/v1/whoami");
    assert_eq!((s(&me, "role"), s(&me, "name"), s(&me, "id")), ("account", "acme", &*acme.id));
    assert_eq!(money(&me, "balance"), 12_500_000, "{me}");
    assert!(me["quota"].is_object() && me["usage"]["instances"] == 0, "{me}");
    let admin = c.api.get_ok("/v1/whoami");
    assert_eq!(s(&admin, "role"), "admin", "{admin}");
    assert_error(&c.api.anonymous().get("/v1/whoami"), 401, Some("unauthorized"), "no token");

    let shown = acme.api.get_ok("/v1/accounts/acme");
    assert_eq!(s(&shown, "id"), acme.id, "its own name finds it: {shown}");
    let ledger = acme.api.get_ok("/v1/accounts/acme/ledger");
    let entries = ledger.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{ledger}");
    assert_eq!(money(&entries[0], "amount"), 12_500_000, "{ledger}");
    // Another account's name reads exactly as a name nobody has: nothing says bob exists.
    for path in ["/v1/accounts/{}", "/v1/accounts/{}/ledger"] {
        let theirs = not_found_for(&acme.api, &path.replace("{}", "bob"), "bob");
        let nobody = not_found_for(&acme.api, &path.replace("{}", "nobody"), "nobody");
        assert_eq!(theirs, nobody, "{path}");
        assert_error(&acme.api.get(&path.replace("{}", &bob.id)), 404, None, "bob's id");
    }
    // The admin may still name any account.
    assert_eq!(s(&c.api.get_ok("/v1/accounts/bob"), "id"), bob.id);

    let Some(whoami) = cli(&acme.api, &["whoami"]) else { return };
    assert_eq!((s(&whoami, "name"), s(&whoami, "id")), ("acme", &*acme.id), "{whoami}");
    let text = cli_text(&acme.api, &["whoami"], &[]).expect("built");
    assert!(text.contains("acme") && text.contains("12.50") && text.contains("quota"), "{text}");
    let text = cli_text(&c.api, &["whoami"], &[]).expect("built");
    assert!(text.lines().next().is_some_and(|l| l.contains("admin")), "{text}");
    let shown = cli(&acme.api, &["accounts", "show", "acme"]).expect("built");
    assert_eq!(s(&shown, "id"), acme.id, "{shown}");
    let ledger = cli(&acme.api, &["accounts", "ledger", "acme"]).expect("built");
    assert_eq!(ledger.as_array().map(Vec::len), Some(1), "{ledger}");
    let refused = cli_error(&acme.api, &["accounts", "show", "bob"]).expect("built");
    assert!(refused.contains("not found") && !refused.contains(&bob.id), "{refused}");
}

/// The ledger grows by an entry per instance per meter tick: the newest entries (what the
/// dashboard shows, "the newest 200") must be one request away, not behind every older page.
#[test]
fn the_newest_ledger_entries_come_first_when_asked() {
    let c = cluster!();
    let acme = create_account(&c.api, "acme");
    for amount in ["1.00", "2.00", "3.00", "4.00", "5.00"] {
        acme.pay(&c.api, amount);
    }
    let amounts = |entries: &[serde_json::Value]| -> Vec<i64> {
        entries.iter().map(|e| money(e, "amount") / 1_000_000).collect()
    };
    let (status, page, next) = acme.api.get_page("/v1/accounts/acme/ledger?order=newest&limit=2");
    assert_eq!(status, 200, "{page}");
    assert_eq!(amounts(page.as_array().expect("a list")), [5, 4], "{page}");
    assert!(next.as_deref().is_some_and(|n| n.contains("order=newest")), "{next:?}");
    let (all, pages) = acme.api.all_pages("/v1/accounts/acme/ledger?order=newest&limit=2");
    assert_eq!((amounts(&all), pages), (vec![5, 4, 3, 2, 1], 3), "older pages follow, once each");
    let (oldest, _) = acme.api.all_pages("/v1/accounts/acme/ledger?limit=2");
    assert_eq!(amounts(&oldest), [1, 2, 3, 4, 5], "oldest first stays the default");
    let refused = acme.api.get("/v1/accounts/acme/ledger?order=sideways");
    assert_error(&refused, 400, Some("invalid_query"), "an unknown order");
    assert!(s(&refused.1["error"], "message").starts_with("order:"), "{}", refused.1);
}

/// Account names need not be unique: for the admin, a name two accounts share answers 409
/// `ambiguous_name` with their ids (as a deployment name does), not a 404 that says no
/// such account exists.
#[test]
fn a_name_two_accounts_share_is_ambiguous_for_the_admin() {
    let c = cluster!();
    let first = create_account(&c.api, "twin");
    let second = create_account(&c.api, "twin");
    let answer = c.api.get("/v1/accounts/twin");
    assert_error(&answer, 409, Some("ambiguous_name"), "a shared name");
    let message = s(&answer.1["error"], "message");
    assert!(message.contains(&first.id) && message.contains(&second.id), "{message}");
    assert_error(&c.api.get("/v1/accounts/twin/ledger"), 409, Some("ambiguous_name"), "ledger");
    // Each account's own token still finds itself by the name.
    assert_eq!(s(&first.api.get_ok("/v1/accounts/twin"), "id"), first.id);
}
