//! Closed ranges of numbers, written `LOW..HIGH` in the config.

use std::fmt;

use thiserror::Error;

/// The range syntax in words, for error messages.
pub const RANGE_SYNTAX: &str =
    "LOW..HIGH such as -40..85, both bounds inclusive, either left out for no limit";

/// Separates the bounds. Rust readers may expect `..` to exclude the upper
/// bound; it does not here, because sensor data sheets state ranges with both
/// ends included, and operators copy them from there.
const SEPARATOR: &str = "..";

/// A side of a range: which bound an error is about, or which bound a value
/// lies beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Low,
    High,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Low => "low",
            Self::High => "high",
        })
    }
}

/// Why a range's text was refused. Each message says what was expected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RangeError {
    #[error("{text:?} has no `..`; expected {RANGE_SYNTAX}")]
    MissingSeparator { text: String },
    #[error(
        "{side} bound {text:?} is not a number; expected a decimal number such as -40 or 12.5"
    )]
    NotANumber { side: Side, text: String },
    #[error("{side} bound {text:?} is not finite; expected a finite number, or no bound at all for no limit")]
    NotFinite { side: Side, text: String },
    #[error("low bound {low} is above high bound {high}; expected low <= high")]
    Inverted { low: f64, high: f64 },
}

/// A range with inclusive bounds; `None` is no limit on that side.
///
/// Bounds are finite whenever present, which [`Range::new`] and
/// [`Range::parse`] ensure, so comparisons with them are total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    low: Option<f64>,
    high: Option<f64>,
}

impl Range {
    /// Every number.
    pub const UNBOUNDED: Self = Self {
        low: None,
        high: None,
    };

    pub fn new(low: Option<f64>, high: Option<f64>) -> Result<Self, RangeError> {
        for (side, bound) in [(Side::Low, low), (Side::High, high)] {
            if let Some(bound) = bound.filter(|bound| !bound.is_finite()) {
                return Err(RangeError::NotFinite {
                    side,
                    text: bound.to_string(),
                });
            }
        }
        if let (Some(low), Some(high)) = (low, high) {
            if low > high {
                return Err(RangeError::Inverted { low, high });
            }
        }
        Ok(Self { low, high })
    }

    /// Parses `LOW..HIGH`, where either side may be empty. Spaces around the
    /// bounds are allowed so that `-40 .. 85` reads as it looks.
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let (low, high) =
            text.split_once(SEPARATOR)
                .ok_or_else(|| RangeError::MissingSeparator {
                    text: text.to_owned(),
                })?;
        Self::new(parse_bound(Side::Low, low)?, parse_bound(Side::High, high)?)
    }

    pub fn low(&self) -> Option<f64> {
        self.low
    }

    pub fn high(&self) -> Option<f64> {
        self.high
    }

    /// Whether `value` lies in the range, bounds included. NaN lies in none.
    pub fn contains(&self, value: f64) -> bool {
        self.side_of(value).is_none() && !value.is_nan()
    }

    /// Which side of the range `value` lies beyond, with the bound it crossed;
    /// `None` if it is inside (or NaN, which no bound can place).
    pub fn side_of(&self, value: f64) -> Option<(Side, f64)> {
        match (self.low, self.high) {
            (Some(low), _) if value < low => Some((Side::Low, low)),
            (_, Some(high)) if value > high => Some((Side::High, high)),
            _ => None,
        }
    }

    /// The range in words, for the "expected" part of a message.
    pub fn expectation(&self) -> String {
        match (self.low, self.high) {
            (Some(low), Some(high)) => format!("a value from {low} to {high}, both included"),
            (Some(low), None) => format!("a value of at least {low}"),
            (None, Some(high)) => format!("a value of at most {high}"),
            (None, None) => "any finite value".to_owned(),
        }
    }
}

/// Renders the config syntax, so messages quote ranges as operators write them.
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(low) = self.low {
            write!(f, "{low}")?;
        }
        f.write_str(SEPARATOR)?;
        if let Some(high) = self.high {
            write!(f, "{high}")?;
        }
        Ok(())
    }
}

fn parse_bound(side: Side, text: &str) -> Result<Option<f64>, RangeError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bound: f64 = text.parse().map_err(|_| RangeError::NotANumber {
        side,
        text: text.to_owned(),
    })?;
    if bound.is_finite() {
        Ok(Some(bound))
    } else {
        Err(RangeError::NotFinite {
            side,
            text: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Range {
        Range::parse(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    }

    #[test]
    fn parses_both_bounds_including_negatives_and_decimals() {
        assert_eq!(
            range("-40..85"),
            Range::new(Some(-40.0), Some(85.0)).unwrap()
        );
        assert_eq!(
            range("-40.5..-10.25"),
            Range::new(Some(-40.5), Some(-10.25)).unwrap()
        );
        assert_eq!(range("1e3..2E3").high(), Some(2000.0));
        assert_eq!(range("+1..2").low(), Some(1.0));
    }

    #[test]
    fn spaces_around_bounds_are_ignored() {
        assert_eq!(range(" -40 .. 85 "), range("-40..85"));
    }

    #[test]
    fn either_bound_may_be_left_out() {
        assert_eq!(range("..85"), Range::new(None, Some(85.0)).unwrap());
        assert_eq!(range("0.."), Range::new(Some(0.0), None).unwrap());
        assert_eq!(range(".."), Range::UNBOUNDED);
        assert_eq!(range(" .. "), Range::UNBOUNDED);
    }

    #[test]
    fn a_single_point_is_a_range() {
        let point = range("5..5");
        assert!(point.contains(5.0));
        assert!(!point.contains(5.000001));
    }

    #[test]
    fn bounds_are_inclusive() {
        let r = range("-40..85");
        assert!(r.contains(-40.0));
        assert!(r.contains(85.0));
        assert!(r.contains(0.0));
        assert!(!r.contains(-40.000001));
        assert!(!r.contains(85.000001));
        assert_eq!(r.side_of(-40.0), None);
        assert_eq!(r.side_of(85.0), None);
        assert_eq!(r.side_of(-41.0), Some((Side::Low, -40.0)));
        assert_eq!(r.side_of(86.0), Some((Side::High, 85.0)));
    }

    #[test]
    fn open_sides_contain_everything_finite_and_infinite() {
        let r = range("..85");
        assert!(r.contains(f64::MIN));
        assert!(r.contains(f64::NEG_INFINITY));
        assert!(!r.contains(f64::INFINITY));
        assert!(Range::UNBOUNDED.contains(f64::MAX));
    }

    #[test]
    fn nan_is_in_no_range() {
        assert!(!Range::UNBOUNDED.contains(f64::NAN));
        assert!(!range("-1..1").contains(f64::NAN));
        assert_eq!(range("-1..1").side_of(f64::NAN), None);
    }

    #[test]
    fn negative_zero_equals_zero_at_a_bound() {
        assert!(range("0..1").contains(-0.0));
    }

    #[test]
    fn missing_separator_is_refused() {
        let err = Range::parse("-40-85").unwrap_err();
        assert_eq!(
            err,
            RangeError::MissingSeparator {
                text: "-40-85".into()
            }
        );
        assert!(err
            .to_string()
            .contains("expected LOW..HIGH such as -40..85"));
        assert!(Range::parse("").is_err());
        assert!(Range::parse("40").is_err());
    }

    #[test]
    fn non_numbers_are_refused_naming_the_end() {
        assert_eq!(
            Range::parse("cold..85").unwrap_err(),
            RangeError::NotANumber {
                side: Side::Low,
                text: "cold".into()
            }
        );
        assert_eq!(
            Range::parse("-40..85C").unwrap_err(),
            RangeError::NotANumber {
                side: Side::High,
                text: "85C".into()
            }
        );
        // Only the first `..` separates; the rest is the high bound, here no number.
        assert!(Range::parse("1....5").is_err());
        assert_eq!(
            Range::parse("1,5..2").unwrap_err().to_string(),
            "low bound \"1,5\" is not a number; expected a decimal number such as -40 or 12.5"
        );
    }

    #[test]
    fn non_finite_bounds_are_refused() {
        for text in ["-inf..0", "0..inf", "NaN..1", "0..infinity", "0..1e999"] {
            let err = Range::parse(text).unwrap_err();
            assert!(
                matches!(err, RangeError::NotFinite { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains("no bound at all for no limit"));
        }
        assert!(matches!(
            Range::new(Some(f64::NAN), None).unwrap_err(),
            RangeError::NotFinite {
                side: Side::Low,
                ..
            }
        ));
    }

    #[test]
    fn inverted_bounds_are_refused() {
        let err = Range::parse("85..-40").unwrap_err();
        assert_eq!(
            err,
            RangeError::Inverted {
                low: 85.0,
                high: -40.0
            }
        );
        assert_eq!(
            err.to_string(),
            "low bound 85 is above high bound -40; expected low <= high"
        );
    }

    #[test]
    fn displays_as_the_config_syntax() {
        for text in ["-40..85", "..85", "0..", "..", "-0.5..12.25"] {
            assert_eq!(range(text).to_string(), text);
        }
        assert_eq!(range(" 1.0 .. 2.50 ").to_string(), "1..2.5");
    }

    #[test]
    fn expectation_reads_as_words() {
        assert_eq!(
            range("-40..85").expectation(),
            "a value from -40 to 85, both included"
        );
        assert_eq!(range("0..").expectation(), "a value of at least 0");
        assert_eq!(range("..85").expectation(), "a value of at most 85");
        assert_eq!(range("..").expectation(), "any finite value");
    }
}
