//! Money and time as the API and the guest write them, turned into integers for exact
//! assertions: money strings ("0.516", "-0.000224") into micro-units, RFC 3339 times and
//! `date +%s.%N` stamps into nanoseconds since the epoch. No floats near money.

use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const NANOS_PER_SECOND: i128 = 1_000_000_000;
pub const NANOS_PER_MILLI: i128 = 1_000_000;

/// A decimal money string in integer micro-units; panics on anything else.
pub fn micros(text: &str) -> i64 {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    assert!(
        !whole.is_empty() && all_digits(whole) && all_digits(frac) && frac.len() <= 6,
        "not a money string: {text:?}"
    );
    let whole: i64 = whole.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let frac: i64 = format!("{frac:0<6}").parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let value = whole * 1_000_000 + frac;
    if negative { -value } else { value }
}

/// `value[field]`, a money string, in micro-units.
pub fn money(value: &Value, field: &str) -> i64 {
    let text = value[field].as_str().unwrap_or_else(|| panic!("no money in {field:?}: {value}"));
    micros(text)
}

/// An RFC 3339 time ("2026-04-08T05:00:00.123456789Z", "…+00:00") in nanoseconds since
/// the epoch; panics on anything else.
pub fn unix_nanos(text: &str) -> i128 {
    parse_rfc3339(text.trim().trim_matches('"'))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {text:?}"))
}

fn parse_rfc3339(text: &str) -> Option<i128> {
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (date, rest) = (text.get(..10)?, text.get(11..)?);
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (y, m, d) = (num(date.get(..4)?)?, num(date.get(5..7)?)?, num(date.get(8..10)?)?);
    let (h, min, s) = (num(rest.get(..2)?)?, num(rest.get(3..5)?)?, num(rest.get(6..8)?)?);
    let mut rest = rest.get(8..)?;
    let mut nanos: i128 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(&format!("{:0<9}", &fraction[..digits]))? as i128;
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (num(rest.get(1..3)?)?, num(rest.get(4..6)?)?);
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, m, d);
    let seconds = days * 86_400 + h * 3600 + min * 60 + s - offset_seconds;
    Some(seconds as i128 * NANOS_PER_SECOND + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `value[field]`, an RFC 3339 time, in nanoseconds since the epoch.
pub fn time(value: &Value, field: &str) -> i128 {
    let text = value[field].as_str().unwrap_or_else(|| panic!("no time in {field:?}: {value}"));
    unix_nanos(text)
}

/// `value[field]` truncated to its whole milliseconds (the fraction cut to 3 digits).
pub fn millis(value: &Value, field: &str) -> i128 {
    time(value, field).div_euclid(NANOS_PER_MILLI)
}

/// A `date +%s.%N` stamp in nanoseconds since the epoch.
pub fn stamp_nanos(text: &str) -> i128 {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let whole: i128 = whole.parse().unwrap_or_else(|e| panic!("stamp {text:?}: {e}"));
    let frac: i128 = format!("{:0<9}", frac.get(..frac.len().min(9)).unwrap_or(""))
        .parse()
        .unwrap_or_else(|e| panic!("stamp {text:?}: {e}"));
    whole * NANOS_PER_SECOND + frac
}

/// The first `KEY=<date +%s.%N>` stamp in a workload's output, in nanoseconds.
pub fn stamp_in(logs: &str, key: &str) -> Option<i128> {
    let prefix = format!("{key}=");
    logs.lines().find_map(|line| {
        let value = line.trim().strip_prefix(&prefix)?;
        Some(stamp_nanos(value.split_whitespace().next()?))
    })
}

/// The wall clock (shared with the coordinator and the agents: all run on this machine).
pub fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or_default()
}

/// Nanoseconds as a `Duration` for messages and arithmetic (negative counts as zero).
pub fn nanos(n: i128) -> Duration {
    Duration::from_nanos(n.clamp(0, u64::MAX as i128) as u64)
}

/// A signed nanosecond difference for messages, e.g. "+0.043s" / "-1.200s".
pub fn signed(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    let abs = n.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1_000_000_000, abs % 1_000_000_000 / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_strings_become_micros() {
        assert_eq!(micros("0.516"), 516_000);
        assert_eq!(micros("-0.000224"), -224);
        assert_eq!(micros("7"), 7_000_000);
        assert_eq!(micros("100.00"), 100_000_000);
    }

    #[test]
    fn times_become_nanos() {
        let base = unix_nanos("2026-04-08T05:00:00Z");
        assert_eq!(base, 1_775_624_400 * NANOS_PER_SECOND);
        assert_eq!(unix_nanos("\"2026-04-08T05:00:00+00:00\""), base);
        assert_eq!(unix_nanos("2026-04-08T07:00:00+02:00"), base);
        assert_eq!(unix_nanos("2026-04-08T05:00:00.123456789Z"), base + 123_456_789);
        assert_eq!(unix_nanos("2026-04-08T05:00:00.5Z"), base + 500_000_000);
        assert_eq!(unix_nanos("1970-01-01T00:00:00Z"), 0);
        assert_eq!(stamp_nanos("1775624400.000000042"), base + 42);
        assert_eq!(stamp_in("x\nSEEN=1775624400.5 more\n", "SEEN"), Some(base + 500_000_000));
        assert_eq!(signed(-1_200_000_000), "-1.200s");
    }
}
