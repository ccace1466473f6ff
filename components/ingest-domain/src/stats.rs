//! Exact per-metric statistics built from atomic increments alone.
//!
//! `wasi:keyvalue/atomics` only adds a `u64` to a counter, and two ingest
//! instances may store readings of one device and metric at the same moment.
//! So the sum is kept as two counters of micro-units (millionths of the unit):
//! `sum_pos` adds up the non-negative values, `sum_neg` the magnitudes of the
//! negative ones, and the sum is `(sum_pos - sum_neg) / 1e6`.
//!
//! **Precision.** Each value is rounded to the nearest micro-unit before it is
//! added (half away from zero), so the stored sum is *exactly* the sum of the
//! rounded values, whatever the number or order of concurrent writers: integer
//! addition has no rounding. The per-reading rounding error is at most 0.5e-6;
//! above about 9e9 an `f64` no longer resolves millionths, so there the value
//! itself, not the rounding, limits precision. A value whose magnitude in
//! micro-units does not fit a `u64` (about 1.8e13) is rejected, see
//! [`MAX_ABS_VALUE`]. A counter that would pass `u64::MAX` makes the store's
//! increment fail (the providers never wrap), so the sum of one sign can reach
//! about 1.8e13 units over the metric's whole history.
//!
//! **Min and max** are read, compared and written back, which `wasi:keyvalue`
//! cannot do atomically; ingest does it under a per-metric ticket lock made of
//! two counters ([`crate::lock`]), so concurrent writers of one device and
//! metric take turns and no new minimum or maximum is lost.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Micro-units per unit of a reading's value.
pub const MICROS_PER_UNIT: f64 = 1_000_000.0;

/// 2^64 as a float, exactly: the first magnitude in micro-units that no `u64` holds.
const FIRST_UNREPRESENTABLE_MICROS: f64 = 18_446_744_073_709_551_616.0;

/// Largest magnitude a value may have, about 1.8e13; larger values are rejected
/// because their micro-units would not fit one increment. Approximate: the exact
/// test is done on the rounded micro-units.
pub const MAX_ABS_VALUE: f64 = FIRST_UNREPRESENTABLE_MICROS / MICROS_PER_UNIT;

/// A value in micro-units, split by sign the way the two sum counters are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Micros {
    /// Added to `sum_pos`. Zero (and `-0.0`) land here.
    NonNegative(u64),
    /// The magnitude, added to `sum_neg`.
    Negative(u64),
}

impl Micros {
    /// The magnitude to add to this sign's counter.
    pub fn magnitude(self) -> u64 {
        match self {
            Self::NonNegative(micros) | Self::Negative(micros) => micros,
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
         (micro-units must fit an unsigned 64-bit counter)",
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

/// `sum_pos - sum_neg` in units.
pub fn sum_from_counters(sum_pos: u64, sum_neg: u64) -> f64 {
    // i128 holds the difference of any two u64 without overflow.
    (i128::from(sum_pos) - i128::from(sum_neg)) as f64 / MICROS_PER_UNIT
}

/// The statistics of one device's metric, as the API answers them:
/// `{"count":3,"min":19.5,"max":22.0,"sum":63.0,"mean":21.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// Readings stored for the metric.
    pub count: u64,
    /// `None` (JSON `null`) only when the key is missing or unreadable, which a
    /// reader can see while the first reading is being written.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Exact sum of the values rounded to micro-units, see the module docs.
    pub sum: f64,
    /// `sum / count`.
    pub mean: f64,
}

impl StatsView {
    /// Builds the view from the stored counters and extremes; `None` when
    /// `count` is 0, as there is no mean of nothing.
    ///
    /// Counters should be read with an increment of 0, the one read whose
    /// encoding `wasi:keyvalue/atomics` defines. `sum_*` and `count` are separate
    /// keys read one after another, so a reader racing a writer can see a sum
    /// that already includes a reading its count doesn't yet; the next read agrees.
    pub fn from_counters(
        count: u64,
        sum_pos: u64,
        sum_neg: u64,
        min: Option<f64>,
        max: Option<f64>,
    ) -> Option<Self> {
        if count == 0 {
            return None;
        }
        let sum = sum_from_counters(sum_pos, sum_neg);
        Some(Self {
            count,
            min,
            max,
            sum,
            mean: sum / count as f64,
        })
    }
}

/// Which extreme a `min` or `max` key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extreme {
    Min,
    Max,
}

impl Extreme {
    /// The bytes to write to the extreme's key after reading `current` from it,
    /// or `None` when `current` already holds an extreme at least as far out as
    /// `value`, so nothing needs writing.
    ///
    /// A missing or unreadable current value is replaced: the key is ours, and
    /// rewriting it repairs it instead of failing every later reading.
    pub fn update(self, current: Option<&[u8]>, value: f64) -> Option<Vec<u8>> {
        let keep = current
            .and_then(|bytes| decode_extreme(bytes).ok())
            .is_some_and(|current| match self {
                Self::Min => current <= value,
                Self::Max => current >= value,
            });
        (!keep).then(|| encode_extreme(value))
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

/// Longest piece of a corrupt stored value quoted in [`ExtremeDecodeError`].
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
            let (mut pos, mut neg) = (0u64, 0u64);
            for &value in order {
                match to_micros(value).unwrap() {
                    Micros::NonNegative(m) => pos += m,
                    Micros::Negative(m) => neg += m,
                }
            }
            sum_from_counters(pos, neg)
        };
        assert_eq!(add(&mut values.iter()), 0.0);
        assert_eq!(add(&mut values.iter().rev()), 0.0);
    }

    #[test]
    fn sum_handles_any_pair_of_counters() {
        assert_eq!(sum_from_counters(0, u64::MAX), -(u64::MAX as f64) / 1e6);
        assert_eq!(sum_from_counters(u64::MAX, 0), u64::MAX as f64 / 1e6);
        assert_eq!(sum_from_counters(2_500_000, 500_000), 2.0);
    }

    #[test]
    fn view_has_mean_and_serializes_as_documented() {
        let view =
            StatsView::from_counters(3, 63_500_000, 500_000, Some(19.5), Some(22.0)).unwrap();
        assert_eq!(view.sum, 63.0);
        assert_eq!(view.mean, 21.0);
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(
            json,
            r#"{"count":3,"min":19.5,"max":22.0,"sum":63.0,"mean":21.0}"#
        );
        assert_eq!(serde_json::from_str::<StatsView>(&json).unwrap(), view);
        assert_eq!(StatsView::from_counters(0, 0, 0, None, None), None);
        let racing = StatsView::from_counters(1, 1, 0, None, None).unwrap();
        assert!(serde_json::to_string(&racing)
            .unwrap()
            .contains(r#""min":null,"max":null"#));
    }

    #[test]
    fn extremes_are_written_only_when_they_move() {
        let stored = encode_extreme(20.0);
        assert_eq!(stored, b"20.0");
        assert_eq!(Extreme::Min.update(Some(&stored), 21.0), None);
        assert_eq!(Extreme::Min.update(Some(&stored), 20.0), None);
        assert_eq!(
            Extreme::Min.update(Some(&stored), -1.5),
            Some(b"-1.5".to_vec())
        );
        assert_eq!(Extreme::Max.update(Some(&stored), 19.0), None);
        assert_eq!(
            Extreme::Max.update(Some(&stored), 20.5),
            Some(b"20.5".to_vec())
        );
        assert_eq!(Extreme::Max.update(None, 1.0), Some(b"1.0".to_vec()));
    }

    #[test]
    fn an_unreadable_extreme_is_replaced() {
        for corrupt in [&b"abc"[..], b"", b"null", b"\"1\"", b"1e999"] {
            assert_eq!(
                Extreme::Min.update(Some(corrupt), 5.0),
                Some(b"5.0".to_vec()),
                "{corrupt:?}"
            );
            assert!(decode_extreme(corrupt).is_err());
        }
        assert_eq!(decode_extreme(b"-0.25"), Ok(-0.25));
        assert_eq!(decode_extreme(b"3"), Ok(3.0));
        let err = decode_extreme(&[b'x'; 100]).unwrap_err();
        assert_eq!(err.stored.len(), MAX_QUOTED_STORED_BYTES);
    }
}
