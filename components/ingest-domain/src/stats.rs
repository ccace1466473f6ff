//! Exact per-metric statistics: count, sum, min and max of one device's metric.
//!
//! All four are plain values on the hot link, read and written back by ingest
//! under the device lock ([`crate::lock`], [`crate::plan`]), in the same atomic
//! `set-many` as the reading's done mark, so a reading enters them exactly once.
//! That is why the sum can be one signed number: with only atomic increments of
//! a `u64` it had to be two counters, one per sign.
//!
//! **Precision.** Each value is rounded to the nearest micro-unit (millionth of
//! the unit, half away from zero) and the sum is kept as an integer of
//! micro-units, so the stored sum is *exactly* the sum of the rounded values,
//! whatever their order: integer addition has no rounding. The per-reading
//! rounding error is at most 0.5e-6; above about 9e9 an `f64` no longer
//! resolves millionths, so there the value itself, not the rounding, limits
//! precision. A value whose magnitude in micro-units does not fit a `u64`
//! (about 1.8e13) is rejected, see [`MAX_ABS_VALUE`]; the sum is an `i128`,
//! which holds 2^63 such values, so in practice it never overflows (if it
//! would, the reading fails instead of wrapping).
//!
//! **Encodings**, owned by this crate: counts and sums are decimal ASCII (a
//! count as `atomics` would write it, so `redis-cli GET …/count` shows `3`;
//! the sum with a `-` when negative), min and max are JSON numbers.
//!
//! **Earlier versions** kept the sum as `sum_pos` and `sum_neg`. While a
//! metric has no `sum` yet, its sum is read from those two (missing = 0), and
//! the first reading stored writes `sum`; the old keys are then unused.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Micro-units per unit of a reading's value.
pub const MICROS_PER_UNIT: f64 = 1_000_000.0;

/// 2^64 as a float, exactly: the first magnitude in micro-units that no `u64` holds.
const FIRST_UNREPRESENTABLE_MICROS: f64 = 18_446_744_073_709_551_616.0;

/// Largest magnitude a value may have, about 1.8e13; larger values are rejected
/// because their micro-units would not fit a `u64`. Approximate: the exact
/// test is done on the rounded micro-units.
pub const MAX_ABS_VALUE: f64 = FIRST_UNREPRESENTABLE_MICROS / MICROS_PER_UNIT;

/// A value in micro-units, as a sign and a magnitude that fits a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Micros {
    /// Zero (and `-0.0`) land here.
    NonNegative(u64),
    /// The magnitude.
    Negative(u64),
}

impl Micros {
    pub fn magnitude(self) -> u64 {
        match self {
            Self::NonNegative(micros) | Self::Negative(micros) => micros,
        }
    }

    /// The value with its sign, for the sum.
    pub fn signed(self) -> i128 {
        match self {
            Self::NonNegative(micros) => i128::from(micros),
            Self::Negative(micros) => -i128::from(micros),
        }
    }
}

/// Why a value can't enter the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum StatsValueError {
    #[error("value {value} is not a finite number; expected a finite number")]
    NotFinite { value: f64 },
    #[error(
        "value {value} is too large for exact statistics; expected a magnitude of at most {} \
         (micro-units must fit an unsigned 64-bit integer)",
        MAX_ABS_VALUE
    )]
    TooLarge { value: f64 },
}

/// Converts `value` to micro-units, rounding to the nearest one.
pub fn to_micros(value: f64) -> Result<Micros, StatsValueError> {
    if !value.is_finite() {
        return Err(StatsValueError::NotFinite { value });
    }
    let scaled = (value.abs() * MICROS_PER_UNIT).round();
    if scaled >= FIRST_UNREPRESENTABLE_MICROS {
        return Err(StatsValueError::TooLarge { value });
    }
    // `scaled` is a whole number in 0..2^64, so the cast is exact.
    let magnitude = scaled as u64;
    Ok(if value < 0.0 && magnitude > 0 {
        Micros::Negative(magnitude)
    } else {
        Micros::NonNegative(magnitude)
    })
}

/// The statistics of one device's metric as stored. Min and max are `None`
/// when missing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricStats {
    pub count: u64,
    /// Micro-units.
    pub sum: i128,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What to do with a min or max that is not a finite JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Report it: the reader can't answer with it.
    Fail,
    /// Take it for missing: the writer replaces it, which repairs it instead of
    /// failing every later reading.
    Replace,
}

/// A stored value this crate can't decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("stored value {stored:?} of key `{key}` is not {expected}")]
pub struct CorruptValue {
    pub key: String,
    /// The stored bytes, lossily decoded and cut short.
    pub stored: String,
    pub expected: &'static str,
}

impl CorruptValue {
    fn new(key: &str, bytes: &[u8], expected: &'static str) -> Self {
        Self {
            key: key.to_owned(),
            stored: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_QUOTED_STORED_BYTES)])
                .into_owned(),
            expected,
        }
    }
}

/// Why a reading can't enter the statistics it was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StatsOverflow {
    #[error("the count would pass {}", u64::MAX)]
    Count,
    #[error("the sum would leave the range of a 128-bit integer of micro-units")]
    Sum,
}

impl MetricStats {
    /// Decodes the values of [`StatsKeys::read_keys`](crate::StatsKeys::read_keys), in that order.
    pub fn decode(
        keys: &crate::StatsKeys,
        values: &[Option<Vec<u8>>],
        unreadable: Unreadable,
    ) -> Result<Self, CorruptValue> {
        let value = |i: usize| values.get(i).and_then(Option::as_deref);
        let count = decode_count(&keys.count, value(0))?;
        let sum = match value(1) {
            Some(bytes) => decode_sum(&keys.sum, bytes)?,
            None => {
                let pos = decode_count(&keys.sum_pos, value(2))?;
                let neg = decode_count(&keys.sum_neg, value(3))?;
                legacy_sum(pos, neg)
            }
        };
        let extreme = |key: &str, bytes: Option<&[u8]>| match bytes.map(decode_extreme) {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(_)) if unreadable == Unreadable::Replace => Ok(None),
            Some(Err(err)) => Err(CorruptValue {
                key: key.to_owned(),
                stored: err.stored,
                expected: "a finite JSON number",
            }),
        };
        Ok(Self {
            count,
            sum,
            min: extreme(&keys.min, value(4))?,
            max: extreme(&keys.max, value(5))?,
        })
    }

    /// The statistics with one more value in them.
    pub fn with(&self, value: f64, micros: Micros) -> Result<Self, StatsOverflow> {
        Ok(Self {
            count: self.count.checked_add(1).ok_or(StatsOverflow::Count)?,
            sum: self
                .sum
                .checked_add(micros.signed())
                .ok_or(StatsOverflow::Sum)?,
            min: Some(self.min.map_or(value, |min| min.min(value))),
            max: Some(self.max.map_or(value, |max| max.max(value))),
        })
    }

    /// The sum in units.
    pub fn sum_units(&self) -> f64 {
        self.sum as f64 / MICROS_PER_UNIT
    }

    /// The key-value pairs that store these statistics under `keys`; min and max
    /// only when known.
    pub fn entries(&self, keys: &crate::StatsKeys) -> Vec<(String, Vec<u8>)> {
        let mut entries = vec![
            (keys.count.clone(), encode_count(self.count)),
            (keys.sum.clone(), encode_sum(self.sum)),
        ];
        entries.extend(self.min.map(|min| (keys.min.clone(), encode_extreme(min))));
        entries.extend(self.max.map(|max| (keys.max.clone(), encode_extreme(max))));
        entries
    }
}

/// The sum of earlier versions' sign counters, `sum_pos - sum_neg`, in micro-units.
pub fn legacy_sum(sum_pos: u64, sum_neg: u64) -> i128 {
    // i128 holds the difference of any two u64 without overflow.
    i128::from(sum_pos) - i128::from(sum_neg)
}

/// A count as stored: decimal ASCII, as `wasi:keyvalue/atomics` counters are.
pub fn encode_count(count: u64) -> Vec<u8> {
    count.to_string().into_bytes()
}

/// Reads a count written by [`encode_count`] (or by an increment); missing is 0.
pub fn decode_count(key: &str, bytes: Option<&[u8]>) -> Result<u64, CorruptValue> {
    let Some(bytes) = bytes else { return Ok(0) };
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| CorruptValue::new(key, bytes, "a decimal count"))
}

/// A sum of micro-units as stored: decimal ASCII, `-` first when negative.
pub fn encode_sum(sum: i128) -> Vec<u8> {
    sum.to_string().into_bytes()
}

/// Reads a sum written by [`encode_sum`].
pub fn decode_sum(key: &str, bytes: &[u8]) -> Result<i128, CorruptValue> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| CorruptValue::new(key, bytes, "a decimal sum of micro-units"))
}

/// The statistics of one device's metric, as the API answers them:
/// `{"count":3,"min":19.5,"max":22.0,"sum":63.0,"mean":21.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// Readings stored for the metric.
    pub count: u64,
    /// `None` (JSON `null`) only when the key is missing, which can only be
    /// seen in data an earlier version left half written.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Exact sum of the values rounded to micro-units, see the module docs.
    pub sum: f64,
    /// `sum / count`.
    pub mean: f64,
}

impl StatsView {
    /// The view of stored statistics; `None` when `count` is 0, as there is no
    /// mean of nothing.
    pub fn new(stats: &MetricStats) -> Option<Self> {
        if stats.count == 0 {
            return None;
        }
        let sum = stats.sum_units();
        Some(Self {
            count: stats.count,
            min: stats.min,
            max: stats.max,
            sum,
            mean: sum / stats.count as f64,
        })
    }
}

/// Why a stored min or max could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "stored extreme {stored:?} is not a finite number; expected a JSON number written by ingest"
)]
pub struct ExtremeDecodeError {
    /// The stored bytes, lossily decoded and cut short.
    pub stored: String,
}

/// Longest piece of a corrupt stored value quoted in errors.
const MAX_QUOTED_STORED_BYTES: usize = 40;

/// A min or max as stored: the value as a JSON number, e.g. `21.4` or `-3.0`.
pub fn encode_extreme(value: f64) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap_or_else(|_| value.to_string().into_bytes())
}

/// Reads a min or max written by [`encode_extreme`].
pub fn decode_extreme(bytes: &[u8]) -> Result<f64, ExtremeDecodeError> {
    match serde_json::from_slice::<f64>(bytes) {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(ExtremeDecodeError {
            stored: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_QUOTED_STORED_BYTES)])
                .into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_to_the_nearest_micro_unit() {
        assert_eq!(to_micros(21.4), Ok(Micros::NonNegative(21_400_000)));
        assert_eq!(to_micros(-3.25), Ok(Micros::Negative(3_250_000)));
        assert_eq!(to_micros(0.000_000_4), Ok(Micros::NonNegative(0)));
        assert_eq!(to_micros(0.000_000_5), Ok(Micros::NonNegative(1)));
        assert_eq!(to_micros(-0.000_000_6), Ok(Micros::Negative(1)));
        // A negative value that rounds to zero adds nothing to either counter.
        assert_eq!(to_micros(-0.000_000_1), Ok(Micros::NonNegative(0)));
        assert_eq!(to_micros(-0.0), Ok(Micros::NonNegative(0)));
        assert_eq!(to_micros(0.1 + 0.2), Ok(Micros::NonNegative(300_000)));
    }

    #[test]
    fn magnitudes_beyond_a_u64_of_micro_units_are_refused() {
        assert!(to_micros(1.8e13).is_ok());
        // Just below 2^64 micro-units fits; 2^64 itself does not. This far out
        // an f64 is 2048 micro-units coarse, so only the order of magnitude is exact.
        let Micros::Negative(large) = to_micros(-18_446_744_073_709.0).unwrap() else {
            panic!("sign lost");
        };
        assert!(
            large.abs_diff(18_446_744_073_709_000_000) <= 2048,
            "{large}"
        );
        assert_eq!(
            to_micros(MAX_ABS_VALUE),
            Err(StatsValueError::TooLarge {
                value: MAX_ABS_VALUE
            })
        );
        assert!(matches!(
            to_micros(-1e14),
            Err(StatsValueError::TooLarge { .. })
        ));
        assert!(matches!(
            to_micros(f64::MAX),
            Err(StatsValueError::TooLarge { .. })
        ));
        assert!(to_micros(1e14)
            .unwrap_err()
            .to_string()
            .starts_with("value 100000000000000 is too large for exact statistics"));
    }

    #[test]
    fn non_finite_values_are_refused() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                to_micros(value),
                Err(StatsValueError::NotFinite { .. })
            ));
        }
    }

    #[test]
    fn sums_are_exact_whatever_the_order() {
        // In floating point 0.1 + 0.2 - 0.3 is not 0; in micro-units it is.
        let values = [0.1, 0.2, -0.3, 1e9, -1e9, 21.4, -21.4];
        let add = |order: &mut dyn Iterator<Item = &f64>| {
            let mut stats = MetricStats::default();
            for &value in order {
                stats = stats.with(value, to_micros(value).unwrap()).unwrap();
            }
            stats
        };
        let forward = add(&mut values.iter());
        assert_eq!(
            (forward.count, forward.sum, forward.sum_units()),
            (7, 0, 0.0)
        );
        assert_eq!(add(&mut values.iter().rev()).sum, 0);
        assert_eq!((forward.min, forward.max), (Some(-1e9), Some(1e9)));
    }

    #[test]
    fn the_sum_holds_values_of_either_sign_at_the_limit() {
        let big = to_micros(-18_000_000_000_000.0).unwrap();
        let mut stats = MetricStats::default();
        for _ in 0..3 {
            stats = stats.with(-18e12, big).unwrap();
        }
        assert_eq!(stats.sum, -54_000_000_000_000_000_000);
        assert_eq!(stats.sum_units(), -54e12);
        assert_eq!(legacy_sum(0, u64::MAX), -i128::from(u64::MAX));
        assert_eq!(legacy_sum(2_500_000, 500_000), 2_000_000);
        let full = MetricStats {
            count: u64::MAX,
            ..MetricStats::default()
        };
        assert_eq!(
            full.with(1.0, Micros::NonNegative(1)),
            Err(StatsOverflow::Count)
        );
        let edge = MetricStats {
            sum: i128::MAX,
            ..MetricStats::default()
        };
        assert_eq!(
            edge.with(1.0, Micros::NonNegative(1)),
            Err(StatsOverflow::Sum)
        );
    }

    #[test]
    fn min_and_max_follow_the_values() {
        let mut stats = MetricStats::default();
        for value in [20.0, 21.0, -1.5, 20.5] {
            stats = stats.with(value, to_micros(value).unwrap()).unwrap();
        }
        assert_eq!((stats.min, stats.max), (Some(-1.5), Some(21.0)));
    }

    fn keys() -> crate::StatsKeys {
        crate::StatsKeys::new(
            &telemetry_domain::DeviceId::parse("d").unwrap(),
            &telemetry_domain::MetricName::parse("m").unwrap(),
        )
    }

    fn values(stored: [Option<&str>; 6]) -> Vec<Option<Vec<u8>>> {
        stored.map(|v| v.map(|v| v.as_bytes().to_vec())).to_vec()
    }

    #[test]
    fn stored_stats_round_trip_in_the_documented_encodings() {
        let stats = MetricStats {
            count: 3,
            sum: -2_250_000,
            min: Some(-3.0),
            max: Some(0.5),
        };
        let keys = keys();
        let entries = stats.entries(&keys);
        let text: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            text,
            [
                ("device/d/stats/m/count", "3"),
                ("device/d/stats/m/sum", "-2250000"),
                ("device/d/stats/m/min", "-3.0"),
                ("device/d/stats/m/max", "0.5"),
            ]
        );
        let stored = values([
            Some("3"),
            Some("-2250000"),
            None,
            None,
            Some("-3.0"),
            Some("0.5"),
        ]);
        assert_eq!(
            MetricStats::decode(&keys, &stored, Unreadable::Fail),
            Ok(stats)
        );
        assert_eq!(
            MetricStats::decode(&keys, &values([None; 6]), Unreadable::Fail),
            Ok(MetricStats::default())
        );
    }

    #[test]
    fn a_sum_never_written_as_one_comes_from_the_sign_counters() {
        let keys = keys();
        let old = values([
            Some("2"),
            None,
            Some("2500000"),
            Some("500000"),
            Some("1"),
            Some("1.5"),
        ]);
        assert_eq!(
            MetricStats::decode(&keys, &old, Unreadable::Fail)
                .unwrap()
                .sum,
            2_000_000
        );
        // Once `sum` is written, the old counters no longer count.
        let new = values([
            Some("3"),
            Some("7"),
            Some("2500000"),
            Some("500000"),
            None,
            None,
        ]);
        assert_eq!(
            MetricStats::decode(&keys, &new, Unreadable::Fail)
                .unwrap()
                .sum,
            7
        );
    }

    #[test]
    fn corrupt_counts_and_sums_are_refused_and_extremes_replaced_if_asked() {
        let keys = keys();
        for (stored, key) in [
            (
                values([Some("x"), None, None, None, None, None]),
                &keys.count,
            ),
            (
                values([Some("-1"), None, None, None, None, None]),
                &keys.count,
            ),
            (
                values([Some("1"), Some("1.5"), None, None, None, None]),
                &keys.sum,
            ),
            (
                values([Some("1"), Some("-"), None, None, None, None]),
                &keys.sum,
            ),
            (
                values([Some("1"), None, Some(""), None, None, None]),
                &keys.sum_pos,
            ),
        ] {
            for unreadable in [Unreadable::Fail, Unreadable::Replace] {
                let err = MetricStats::decode(&keys, &stored, unreadable).unwrap_err();
                assert_eq!(&err.key, key);
            }
        }
        for corrupt in ["abc", "", "null", "\"1\"", "1e999"] {
            let stored = values([Some("1"), Some("1"), None, None, Some(corrupt), Some("2")]);
            let err = MetricStats::decode(&keys, &stored, Unreadable::Fail).unwrap_err();
            assert_eq!(err.key, keys.min, "{corrupt:?}");
            let repaired = MetricStats::decode(&keys, &stored, Unreadable::Replace).unwrap();
            assert_eq!((repaired.min, repaired.max), (None, Some(2.0)));
            assert_eq!(
                repaired.with(5.0, to_micros(5.0).unwrap()).unwrap().min,
                Some(5.0)
            );
        }
        let err = decode_count("k", Some(&[b'x'; 100])).unwrap_err();
        assert_eq!(err.stored.len(), MAX_QUOTED_STORED_BYTES);
        assert!(
            err.to_string().contains("`k` is not a decimal count"),
            "{err}"
        );
    }

    #[test]
    fn view_has_mean_and_serializes_as_documented() {
        let stats = MetricStats {
            count: 3,
            sum: 63_000_000,
            min: Some(19.5),
            max: Some(22.0),
        };
        let view = StatsView::new(&stats).unwrap();
        assert_eq!(view.sum, 63.0);
        assert_eq!(view.mean, 21.0);
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(
            json,
            r#"{"count":3,"min":19.5,"max":22.0,"sum":63.0,"mean":21.0}"#
        );
        assert_eq!(serde_json::from_str::<StatsView>(&json).unwrap(), view);
        assert_eq!(StatsView::new(&MetricStats::default()), None);
    }

    #[test]
    fn extremes_are_json_numbers() {
        assert_eq!(encode_extreme(20.0), b"20.0");
        assert_eq!(decode_extreme(b"-0.25"), Ok(-0.25));
        assert_eq!(decode_extreme(b"3"), Ok(3.0));
        let err = decode_extreme(&[b'x'; 100]).unwrap_err();
        assert_eq!(err.stored.len(), MAX_QUOTED_STORED_BYTES);
    }
}
