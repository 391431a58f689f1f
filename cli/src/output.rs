//! Terminal output: a table printer whose column widths come from the content, `key: value`
//! listings, and tolerant renderings of JSON values (times and money are shown as the API
//! gives them; a missing or null field shows as `-`).

use serde_json::Value;

/// A plain-text table: a header row, then rows; columns two spaces apart.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells print empty, extra cells are kept.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.headers.len()]).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&render_line(line, &widths));
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

fn render_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, width) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count());
        line.extend(std::iter::repeat_n(' ', pad));
    }
    line.trim_end().to_owned()
}

/// A JSON value as one short cell: strings bare, `null`/absent as `-`, scalar arrays joined.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) if items.iter().all(is_scalar) => {
            items.iter().map(|item| text(Some(item))).collect::<Vec<_>>().join(", ")
        }
        Some(other) => other.to_string(),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// `text` of one field of an object.
pub fn field(object: &Value, key: &str) -> String {
    text(object.get(key))
}

/// The items of a list answer: a JSON array, or an object holding the array under `key`
/// (or under `items`), so a wrapped list still prints.
pub fn items<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    let list = match answer {
        Value::Array(_) => Some(answer),
        Value::Object(map) => map.get(key).or_else(|| map.get("items")),
        _ => None,
    };
    list.and_then(Value::as_array).map_or(&[], Vec::as_slice)
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
    fn values_render_as_cells() {
        assert_eq!(text(None), "-");
        assert_eq!(text(Some(&Value::Null)), "-");
        assert_eq!(text(Some(&json!("1.20"))), "1.20");
        assert_eq!(text(Some(&json!(3))), "3");
        assert_eq!(text(Some(&json!(["a", "b"]))), "a, b");
        assert_eq!(text(Some(&json!({"k": 1}))), r#"{"k":1}"#);
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

    #[test]
    fn lists_may_be_wrapped() {
        let bare = json!([{"id": 1}]);
        let wrapped = json!({"instances": [{"id": 1}, {"id": 2}]});
        assert_eq!(items(&bare, "instances").len(), 1);
        assert_eq!(items(&wrapped, "instances").len(), 2);
        assert!(items(&json!(null), "instances").is_empty());
    }
}
