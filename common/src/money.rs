//! Money as integer micro-units (1 unit = 1_000_000 micros). No floats anywhere near money:
//! parsing and printing go through decimal strings, as the API shows them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

pub const MICROS_PER_UNIT: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("not a decimal amount: {0:?} (expected e.g. \"1.20\")")]
    Malformed(String),
    #[error("more than 6 decimal places in {0:?}")]
    TooPrecise(String),
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_micros(micros: i64) -> Self {
        Money(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// `self` scaled by `num / den`, rounded toward zero, computed in i128 so it never
    /// overflows for realistic prices and durations.
    pub fn mul_ratio(self, num: i64, den: i64) -> Money {
        assert!(den != 0, "ratio with zero denominator");
        Money((self.0 as i128 * num as i128 / den as i128) as i64)
    }

    /// `None` on overflow: a balance is never saturated, so it always equals its ledger.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (negative, digits) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return Err(MoneyError::Malformed(text.to_owned()));
        }
        if frac.len() > 6 {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let out_of_range = || MoneyError::OutOfRange(text.to_owned());
        let whole: i64 = whole.parse().map_err(|_| out_of_range())?;
        let frac_micros: i64 = format!("{frac:0<6}").parse().map_err(|_| out_of_range())?;
        let micros = whole
            .checked_mul(MICROS_PER_UNIT)
            .and_then(|w| w.checked_add(frac_micros))
            .ok_or_else(out_of_range)?;
        Ok(Money(if negative { -micros } else { micros }))
    }
}

impl fmt::Display for Money {
    /// At least two decimals, more only when they carry value: "1.20", "0.516", "-3.000001".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICROS_PER_UNIT as u64;
        let frac = format!("{:06}", abs % MICROS_PER_UNIT as u64);
        let frac = frac.trim_end_matches('0');
        let frac = format!("{frac:0<2}");
        write!(f, "{sign}{whole}.{frac}")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_string())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Money(i64::deserialize(deserializer)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_decimal_strings() {
        assert_eq!("1.20".parse::<Money>().unwrap(), Money(1_200_000));
        assert_eq!("2.58".parse::<Money>().unwrap().to_string(), "2.58");
        assert_eq!("0.516".parse::<Money>().unwrap().to_string(), "0.516");
        assert_eq!("7".parse::<Money>().unwrap().to_string(), "7.00");
        assert_eq!("-3.000001".parse::<Money>().unwrap(), Money(-3_000_001));
        assert_eq!(Money(-3_000_001).to_string(), "-3.000001");
    }

    #[test]
    fn rejects_bad_amounts() {
        assert!(matches!("abc".parse::<Money>(), Err(MoneyError::Malformed(_))));
        assert!(matches!("1.2.3".parse::<Money>(), Err(MoneyError::Malformed(_))));
        assert!(matches!("".parse::<Money>(), Err(MoneyError::Malformed(_))));
        assert!(matches!("1.0000001".parse::<Money>(), Err(MoneyError::TooPrecise(_))));
        assert!(matches!("99999999999999999".parse::<Money>(), Err(MoneyError::OutOfRange(_))));
    }

    #[test]
    fn json_uses_strings() {
        let json = serde_json::to_string(&Money(516_000)).unwrap();
        assert_eq!(json, "\"0.516\"");
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Money(516_000));
    }

    #[test]
    fn ratio_rounds_toward_zero_without_overflow() {
        let hourly = Money(2_580_000);
        assert_eq!(hourly.mul_ratio(1, 3600), Money(716));
        assert_eq!(Money(i64::MAX / 2).mul_ratio(2, 2), Money(i64::MAX / 2));
    }
}
