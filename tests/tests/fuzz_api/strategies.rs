//! Generators of fuzz inputs: random JSON built from the API's field names and the values
//! its handlers branch on, edits of a valid body at its JSON pointers, routes and tokens.

use super::target::{ROUTES, Route, Token};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

const FIELDS: [&str; 25] = [
    "name",
    "account_id",
    "gpu",
    "models",
    "count",
    "cpu_cores",
    "memory_gib",
    "min",
    "max",
    "billing",
    "mode",
    "max_price",
    "command",
    "env",
    "snapshot",
    "enabled",
    "restore_from",
    "replicas",
    "completions",
    "parallelism",
    "retry_limit",
    "specs",
    "template",
    "webhook_url",
    "amount",
];

/// Strings the handlers branch on, and amounts around the limits of i64 micro-units.
const STRINGS: [&str; 24] = [
    "",
    " ",
    "H100",
    "RTX 5090",
    "spot",
    "regular",
    "replicaset",
    "job",
    "container",
    "1.20",
    "0",
    "-1",
    "0.000001",
    "0.0000001",
    "9223372036854.775807",
    "9223372036854.775808",
    "-9223372036854.775808",
    "1e3",
    "NaN",
    "https://",
    "\u{0}",
    "é🚀",
    "../../etc/passwd",
    "'; DROP TABLE accounts; --",
];

/// Integers at type boundaries; 10000 (the largest replica count allowed) is left out so
/// that a case cannot queue ten thousand instances.
const NUMBERS: [i64; 11] =
    [0, 1, -1, 2, 9, 10_001, 4_294_967_295, 4_294_967_296, i64::MAX, i64::MIN, -4_294_967_296];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        select(NUMBERS.to_vec()).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::from)),
        select(STRINGS.to_vec()).prop_map(Value::from),
        prop_oneof![".{0,24}", "a{200,300}"].prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELDS.to_vec()).prop_map(str::to_owned), 1 => ".{0,12}"]
}

pub fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An edit of a valid body at one of its JSON pointers (chosen modulo their number).
#[derive(Clone, Debug)]
pub enum Edit {
    Set(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(at, v)| Edit::Set(at, v)),
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), key(), json_value()).prop_map(|(at, k, v)| Edit::Add(at, k, v)),
    ]
}

fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out));
        }
        _ => {}
    }
    out.push(at);
}

pub fn apply(body: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(body, String::new(), &mut all);
    let pick = |at: &usize| all[at % all.len()].clone();
    match edit {
        Edit::Set(at, value) => {
            if let Some(target) = body.pointer_mut(&pick(at)) {
                *target = value.clone();
            }
        }
        Edit::Remove(at) => {
            let pointer = pick(at);
            let Some((parent, last)) = pointer.rsplit_once('/') else { return };
            let last = last.replace("~1", "/").replace("~0", "~");
            match body.pointer_mut(parent) {
                Some(Value::Object(map)) => drop(map.remove(&last)),
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        Edit::Add(at, key, value) => match body.pointer_mut(&pick(at)) {
            Some(Value::Object(map)) => drop(map.insert(key.clone(), value.clone())),
            Some(Value::Array(items)) => items.push(value.clone()),
            _ => {}
        },
    }
}

pub fn route() -> impl Strategy<Value = Route> {
    select(ROUTES.to_vec())
}

pub fn token() -> impl Strategy<Value = Token> {
    prop_oneof![4 => Just(Token::Account), 4 => Just(Token::Admin), 1 => Just(Token::Wrong),
        1 => Just(Token::Missing)]
}
