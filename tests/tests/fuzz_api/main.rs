//! Fuzzing of the API's JSON bodies with proptest against a real coordinator: random JSON
//! values, valid bodies with random edits, and malformed text are POSTed and PATCHed to the
//! routes that take a body, with the admin token, an account token, a wrong one or none.
//! Every answer must be under 500, every error must be `{"error":{"code","message"}}`, and
//! `/healthz` must still answer after each case. `PROPTEST_CASES` raises the number of
//! cases (see `scripts/fuzz.sh`); the default keeps the e2e run short.

mod strategies;
mod target;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::json;
use strategies::{apply, edit, json_value, route, token};
use target::{ROUTES, Target, Token, valid_body};

const JSON: &str = "application/json";

#[test]
fn random_json_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let inputs = (route(), token(), json_value())
        .prop_map(|(r, t, v)| (r, t, JSON.to_owned(), v.to_string().into_bytes()));
    target.run(128, inputs);
}

#[test]
fn edited_valid_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let inputs = (route(), token(), vec(edit(), 0..4)).prop_map(|(r, t, edits)| {
        let mut body = valid_body(r);
        edits.iter().for_each(|e| apply(&mut body, e));
        (r, t, JSON.to_owned(), body.to_string().into_bytes())
    });
    target.run(256, inputs);
}

#[test]
fn malformed_bodies_never_answer_a_server_error() {
    let target = Target::start();
    let cut = (route(), token(), any::<usize>()).prop_map(|(r, t, at)| {
        let text = valid_body(r).to_string();
        (r, t, JSON.to_owned(), text.as_bytes()[..at % text.len()].to_vec())
    });
    let bytes = (route(), token(), vec(any::<u8>(), 0..256))
        .prop_map(|(r, t, b)| (r, t, JSON.to_owned(), b));
    let deep = (route(), token(), 100usize..5_000).prop_map(|(r, t, depth)| {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        (r, t, JSON.to_owned(), text.into_bytes())
    });
    let content_type = prop_oneof![
        select(vec!["text/plain", "", "application/json; charset=latin1"]).prop_map(String::from),
        "[ -~]{0,24}",
    ];
    let typed = (route(), token(), content_type)
        .prop_map(|(r, t, ct)| (r, t, ct, valid_body(r).to_string().into_bytes()));
    let duplicate = (route(), token()).prop_map(|(r, t)| {
        let text = valid_body(r).to_string();
        let twice = format!("{},{}", &text[..text.len() - 1], &text[1..]);
        (r, t, JSON.to_owned(), twice.into_bytes())
    });
    target.run(128, prop_oneof![cut, bytes, deep, typed, duplicate]);
}

#[test]
fn a_body_over_the_size_limit_is_refused_not_a_crash() {
    let target = Target::start();
    let name = "x".repeat(2 << 20);
    let body = json!({ "name": name, "gpu": { "models": ["H100"] }, "command": ["true"] });
    for route in ROUTES {
        for token in [Token::Admin, Token::Account] {
            let answer = target.check(route, token, JSON, body.to_string().into_bytes());
            answer.unwrap_or_else(|e| panic!("{route:?}: {e}"));
        }
    }
}
