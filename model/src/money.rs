//! Revenue as the aggregates keep it: an exact amount in millionths of a currency unit, per ISO
//! 4217 currency. Amounts of different currencies are never added together (Tally converts no
//! currency); a row holds one sum per currency it has seen.
//!
//! An event's decimal amount ([`crate::wire::Revenue`]) is rounded to six decimals, half away
//! from zero (a tracker's `19.99 * 3` arrives as `59.97000000000001`); the wire check bounds it
//! to [`MAX_REVENUE_INTEGER_DIGITS`] digits before the point, so one event's amount fits an
//! `i64` of micro-units and sums of up to 10¹⁸ events fit the `i128` sums.

use crate::wire::Revenue;
use serde::{Deserialize, Serialize};

/// Most digits before the decimal point of an accepted amount (below 10¹²).
pub const MAX_REVENUE_INTEGER_DIGITS: usize = 12;
/// Micro-units per currency unit.
pub const MICROS: i64 = 1_000_000;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    /// The code of a three-letter upper-case string, else `None`.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_uppercase).then_some(Currency(bytes))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

/// One event's revenue: micro-units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// The amount in millionths of a unit.
    pub micros: i64,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// The revenue of an event as the aggregates count it, or `None` when it is not a decimal
    /// amount within [`MAX_REVENUE_INTEGER_DIGITS`] digits in a valid currency (the wire check
    /// drops such events; only entries written by other code can hold them).
    pub fn of(revenue: &Revenue) -> Option<Money> {
        Some(Money { micros: micros_of(&revenue.amount)?, currency: Currency::parse(&revenue.currency)? })
    }
}

/// A decimal string (`-12.5`, `3`, `0.000001`) in micro-units, rounded half away from zero, or
/// `None` when it is not one or has more than [`MAX_REVENUE_INTEGER_DIGITS`] integer digits.
pub fn micros_of(amount: &str) -> Option<i64> {
    let (negative, digits) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) || (digits.contains('.') && fraction.is_empty()) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_REVENUE_INTEGER_DIGITS {
        return None;
    }
    let mut micros: i64 = if whole.is_empty() { 0 } else { whole.parse::<i64>().ok()? * MICROS };
    let mut scale = MICROS / 10;
    for digit in fraction.bytes().take(6) {
        micros += i64::from(digit - b'0') * scale;
        scale /= 10;
    }
    if fraction.as_bytes().get(6).is_some_and(|d| *d >= b'5') {
        micros += 1;
    }
    Some(if negative { -micros } else { micros })
}

/// Revenue summed per currency: for each, the total in micro-units and how many events
/// carried it. Kept sorted by currency; empty for rows without revenue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueSums(pub Vec<(Currency, RevenueSum)>);

/// The revenue of one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueSum {
    /// Total in micro-units.
    pub micros: i128,
    /// Events that carried revenue in this currency.
    pub events: i64,
}

impl RevenueSums {
    /// Adds `micros` over `events` events in `currency`.
    pub fn add(&mut self, currency: Currency, micros: i128, events: i64) {
        match self.0.binary_search_by_key(&currency, |(c, _)| *c) {
            Ok(at) => {
                let sum = &mut self.0[at].1;
                sum.micros += micros;
                sum.events += events;
                if *sum == RevenueSum::default() {
                    self.0.remove(at);
                }
            }
            Err(at) if micros != 0 || events != 0 => self.0.insert(at, (currency, RevenueSum { micros, events })),
            Err(_) => {}
        }
    }

    /// Adds every sum of `other`.
    pub fn merge(&mut self, other: &RevenueSums) {
        for (currency, sum) in &other.0 {
            self.add(*currency, sum.micros, sum.events);
        }
    }

    /// The sums negated (to take a contribution back).
    pub fn negated(&self) -> RevenueSums {
        RevenueSums(self.0.iter().map(|(c, s)| (*c, RevenueSum { micros: -s.micros, events: -s.events })).collect())
    }

    /// Whether no currency has revenue.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_micro_units_rounded_half_away_from_zero() {
        assert_eq!(micros_of("12.5"), Some(12_500_000));
        assert_eq!(micros_of("0"), Some(0));
        assert_eq!(micros_of("007.01"), Some(7_010_000));
        assert_eq!(micros_of("-3"), Some(-3_000_000));
        assert_eq!(micros_of("59.97000000000001"), Some(59_970_000));
        assert_eq!(micros_of("0.0000005"), Some(1));
        assert_eq!(micros_of("-0.0000005"), Some(-1));
        assert_eq!(micros_of("0.0000004999"), Some(0));
        assert_eq!(micros_of("999999999999.999999"), Some(999_999_999_999_999_999));
        assert_eq!(micros_of("1000000000000"), None, "13 integer digits");
        for bad in ["", "-", ".5", "5.", "1e3", "1,5", "+1", "0x10", "1.2.3"] {
            assert_eq!(micros_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sums_keep_currencies_apart_and_drop_what_nets_to_zero() {
        let (eur, usd) = (Currency::parse("EUR").expect("code"), Currency::parse("USD").expect("code"));
        let mut sums = RevenueSums::default();
        sums.add(usd, 5, 1);
        sums.add(eur, 7, 1);
        sums.add(eur, 3, 1);
        assert_eq!(
            sums.0,
            vec![(eur, RevenueSum { micros: 10, events: 2 }), (usd, RevenueSum { micros: 5, events: 1 })]
        );
        sums.merge(&sums.negated());
        assert!(sums.is_empty());
        assert_eq!(Currency::parse("eur"), None);
        assert_eq!(Currency::parse("EURO"), None);
    }
}
