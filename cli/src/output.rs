//! Terminal output: tables (comfy-table) fitted to the terminal, `key: value`
//! listings, and cells made from the answers' fields (times and money are shown as the API
//! writes them; a missing or empty field shows as `-`).

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ColumnConstraint, Width};
use gpuspot_api::Range;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Display;

/// A borderless table (comfy-table): a header row, then rows; columns two spaces apart.
/// On a terminal (or with `COLUMNS` set) it fits the width by wrapping the last column;
/// piped, rows stay one line each so `grep` and `awk` see whole rows.
pub struct Table {
    inner: comfy_table::Table,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut inner = comfy_table::Table::new();
        inner.load_preset(comfy_table::presets::NOTHING);
        inner.set_header(headers.iter().copied());
        inner.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        if let Some(width) = columns_from_env() {
            inner.set_width(width);
        }
        Table { inner }
    }

    /// Adds a row; missing cells print empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.inner.add_row(cells);
    }

    /// The table as lines, without trailing spaces.
    pub fn render(&mut self) -> String {
        self.keep_all_but_the_last_column_whole();
        let mut out = String::new();
        for line in self.inner.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(mut self) {
        print!("{}", self.render());
    }

    /// Ids, states and prices must stay greppable: only the last column (a reason, a
    /// message) wraps when the terminal is narrow.
    fn keep_all_but_the_last_column_whole(&mut self) {
        let count = self.inner.column_count();
        for (i, column) in self.inner.column_iter_mut().enumerate() {
            column.set_padding((0, 2));
            let constraint = match i + 1 < count {
                true => ColumnConstraint::ContentWidth,
                false => ColumnConstraint::LowerBoundary(Width::Fixed(LAST_COLUMN_MIN)),
            };
            column.set_constraint(constraint);
        }
    }
}

/// The narrowest the wrapped last column gets (a table wider than the terminal beats a
/// column of one letter per line).
const LAST_COLUMN_MIN: u16 = 24;

/// `COLUMNS`, as shells and `less` use it, when set to a width.
fn columns_from_env() -> Option<u16> {
    std::env::var("COLUMNS").ok()?.trim().parse().ok().filter(|&w| w > 0)
}

/// A field as one cell: its text, `-` when empty.
pub fn cell(value: impl Display) -> String {
    let text = value.to_string();
    if text.is_empty() { "-".to_owned() } else { text }
}

/// An optional field as one cell: `-` when absent or empty.
pub fn opt(value: Option<impl Display>) -> String {
    value.map_or_else(|| "-".to_owned(), cell)
}

/// A list field as one cell: its items joined by `, `, `-` when empty.
pub fn joined(values: &[impl Display]) -> String {
    let texts: Vec<String> = values.iter().map(ToString::to_string).collect();
    if texts.is_empty() { "-".to_owned() } else { texts.join(", ") }
}

/// A time as the API writes it (RFC 3339, UTC, `Z`).
pub fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// [`fields`] of a record of the API, the way the coordinator writes it.
pub fn record(item: &impl Serialize, first: &[&str]) -> String {
    match serde_json::to_value(item) {
        Ok(value) => fields(&value, first),
        Err(e) => format!("(cannot show: {e})\n"),
    }
}

/// [`record`] less the keys in `drop`, with the keys in `set` shown as the text given.
pub fn record_with(
    item: &impl Serialize,
    first: &[&str],
    drop: &[&str],
    set: Vec<(&str, String)>,
) -> String {
    let Ok(Value::Object(mut map)) = serde_json::to_value(item) else {
        return record(item, first);
    };
    map.retain(|key, _| !drop.contains(&key.as_str()));
    for (key, text) in set {
        map.insert(key.to_owned(), Value::String(text));
    }
    fields(&Value::Object(map), first)
}

/// A JSON value as one short cell: strings bare, `null`/absent as `-`, scalar arrays joined,
/// flat objects as `key=value, …`.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) if items.iter().all(is_scalar) => {
            items.iter().map(|item| text(Some(item))).collect::<Vec<_>>().join(", ")
        }
        Some(Value::Object(map)) if map.values().all(is_scalar) => {
            map.iter().map(|(k, v)| format!("{k}={}", text(Some(v)))).collect::<Vec<_>>().join(", ")
        }
        Some(other) => other.to_string(),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// A range as a person writes it: `16-64`, `≥16`, `≤64`, `32`; `-` for none (any).
pub fn range_text(range: &Range) -> String {
    match (range.min, range.max) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}-{max}"),
        (Some(min), None) => format!("≥{min}"),
        (None, Some(max)) => format!("≤{max}"),
        (None, None) => "-".to_owned(),
    }
}

/// `key: value` lines: the `first` keys in that order (when present), then the rest sorted.
pub fn fields(object: &Value, first: &[&str]) -> String {
    let Some(map) = object.as_object() else {
        return format!("{}\n", text(Some(object)));
    };
    let mut keys: Vec<&str> = first.iter().copied().filter(|k| map.contains_key(*k)).collect();
    let mut rest: Vec<&str> =
        map.keys().map(String::as_str).filter(|k| !first.contains(k)).collect();
    rest.sort_unstable();
    keys.extend(rest);
    let width = keys.iter().map(|k| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for key in keys {
        let label = format!("{key}:");
        out.push_str(&format!("{label:<width$} {}\n", text(map.get(key))));
    }
    out
}

/// Pretty JSON, as `--json` prints it.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_widths_follow_content() {
        let mut table = Table::new(&["ID", "STATE", "REASON"]);
        table.row(vec!["i-1".into(), "running".into(), "-".into()]);
        table.row(vec!["i-22222".into(), "queued".into(), "no capacity".into()]);
        let expected = "\
ID       STATE    REASON
i-1      running  -
i-22222  queued   no capacity
";
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn table_counts_characters_not_bytes_and_tolerates_short_rows() {
        let mut table = Table::new(&["BILLING", "PRICE"]);
        table.row(vec!["spot ≤1.20".into(), "0.52".into()]);
        table.row(vec!["regular".into()]);
        assert_eq!(table.render(), "BILLING     PRICE\nspot ≤1.20  0.52\nregular\n");
    }

    #[test]
    fn a_narrow_terminal_wraps_only_the_last_column() {
        let mut table = Table::new(&["ID", "STATE", "REASON"]);
        table.inner.set_width(60);
        table.row(vec![
            "i-0123456789abcdef".into(),
            "queued".into(),
            "no known host can satisfy 9 x [RTX 4090]".into(),
        ]);
        let out = table.render();
        assert!(out.lines().all(|l| l.chars().count() <= 60), "{out}");
        assert!(
            out.lines().nth(1).is_some_and(|l| l.starts_with("i-0123456789abcdef  queued  ")),
            "{out}"
        );
        assert!(out.lines().count() > 2, "the reason wrapped: {out}");
        let mut narrow = Table::new(&["ID", "REASON"]);
        narrow.inner.set_width(20);
        narrow.row(vec!["i-0123456789abcdef".into(), "no known host can satisfy it".into()]);
        let out = narrow.render();
        assert!(out.lines().nth(1).is_some_and(|l| l.contains("no known host")), "{out}");
    }

    #[test]
    fn values_render_as_cells() {
        assert_eq!(text(None), "-");
        assert_eq!(text(Some(&Value::Null)), "-");
        assert_eq!(text(Some(&json!("1.20"))), "1.20");
        assert_eq!(text(Some(&json!(3))), "3");
        assert_eq!(text(Some(&json!(["a", "b"]))), "a, b");
        assert_eq!(text(Some(&json!({"gpus": 1, "max": null}))), "gpus=1, max=-");
        assert_eq!(text(Some(&json!({"k": [1]}))), r#"{"k":[1]}"#);
    }

    #[test]
    fn typed_cells_read_as_the_api_writes_them() {
        let at: DateTime<Utc> = "2026-12-03T11:59:55.123456789Z".parse().unwrap();
        assert_eq!(time(&at), json!(at).as_str().unwrap());
        let whole: DateTime<Utc> = "2026-12-03T12:00:00Z".parse().unwrap();
        assert_eq!(time(&whole), json!(whole).as_str().unwrap());
        assert_eq!(opt(None::<&str>), "-");
        assert_eq!(opt(Some("")), "-");
        assert_eq!(cell(3), "3");
        assert_eq!(joined(&["a", "b"]), "a, b");
        assert_eq!(joined(&[] as &[&str]), "-");
    }

    #[test]
    fn ranges_read_as_written() {
        let range = |min, max| range_text(&Range { min, max });
        assert_eq!(range(Some(16), Some(64)), "16-64");
        assert_eq!(range(Some(16), None), "≥16");
        assert_eq!(range(None, Some(64)), "≤64");
        assert_eq!(range(Some(32), Some(32)), "32");
        assert_eq!(range(None, None), "-");
    }

    #[test]
    fn fields_put_chosen_keys_first() {
        let object = json!({"zeta": 1, "id": "i-1", "exit_code": null, "alpha": "x"});
        let out = fields(&object, &["id", "exit_code", "missing"]);
        let expected = "\
id:        i-1
exit_code: -
alpha:     x
zeta:      1
";
        assert_eq!(out, expected);
    }
}
