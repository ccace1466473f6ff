//! The fields every reading carries, whoever sends it: metric names and
//! timestamps, valid by construction, and the field-level errors that name the
//! field, what was expected and what arrived.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::excerpt::quoted;

/// Longest metric name accepted; metric names are short identifiers, not text.
pub const MAX_METRIC_LEN: usize = 64;

/// The metric-name rules in words, for error messages.
pub const METRIC_RULE: &str = "1 to 64 characters of a-z, 0-9 and '_'";

/// An example timestamp, quoted in errors about one.
pub const EXAMPLE_TS: &str = "2026-11-20T10:00:00Z";

pub const FIELD_METRIC: &str = "metric";
pub const FIELD_VALUE: &str = "value";
pub const FIELD_TS: &str = "ts";

const EXPECTED_METRIC: &str = "a string of 1 to 64 characters of a-z, 0-9 and '_'";
const EXPECTED_TS: &str = "an RFC 3339 timestamp string such as \"2026-11-20T10:00:00Z\"";

/// Why a field of a reading was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadingError {
    #[error("field `{field}` is required: expected {expected}")]
    MissingField {
        field: &'static str,
        expected: &'static str,
    },
    /// `got` is the offending value rendered as JSON, already shortened.
    #[error("field `{field}` must be {expected}, got {got}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
}

/// A validated metric name such as `temperature_c`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MetricName(String);

impl MetricName {
    /// Validates `name` against [`METRIC_RULE`].
    pub fn parse(name: &str) -> Result<Self, ReadingError> {
        let len = name.chars().count();
        let well_formed = (1..=MAX_METRIC_LEN).contains(&len)
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if well_formed {
            Ok(Self(name.to_owned()))
        } else {
            Err(ReadingError::Invalid {
                field: FIELD_METRIC,
                expected: EXPECTED_METRIC,
                got: quoted(name),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MetricName {
    type Error = ReadingError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<MetricName> for String {
    fn from(name: MetricName) -> Self {
        name.0
    }
}

/// A validated RFC 3339 timestamp.
///
/// The client's own text is kept rather than a re-rendered instant, so a
/// reading reads back exactly as it was sent (offset and precision included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(String);

impl Timestamp {
    pub fn parse(text: &str) -> Result<Self, ReadingError> {
        match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(_) => Ok(Self(text.to_owned())),
            Err(_) => Err(ReadingError::Invalid {
                field: FIELD_TS,
                expected: EXPECTED_TS,
                got: quoted(text),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Timestamp {
    type Error = ReadingError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Timestamp> for String {
    fn from(ts: Timestamp) -> Self {
        ts.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ReadingError) -> String {
        err.to_string()
    }

    #[test]
    fn metric_names_follow_the_rule() {
        assert_eq!(
            MetricName::parse("temperature_c").unwrap().as_str(),
            "temperature_c"
        );
        assert_eq!(
            message(MetricName::parse("Temp C").unwrap_err()),
            r#"field `metric` must be a string of 1 to 64 characters of a-z, 0-9 and '_', got "Temp C""#
        );
        assert!(MetricName::parse("").is_err());
        assert!(MetricName::parse(&"m".repeat(MAX_METRIC_LEN + 1)).is_err());
        assert!(MetricName::parse(&"m".repeat(MAX_METRIC_LEN)).is_ok());
    }

    #[test]
    fn timestamps_must_be_rfc3339_and_keep_their_text() {
        let ts = Timestamp::parse("2024-05-01T12:00:00.123+02:00").unwrap();
        assert_eq!(ts.as_str(), "2024-05-01T12:00:00.123+02:00");
        assert_eq!(
            message(Timestamp::parse("yesterday").unwrap_err()),
            r#"field `ts` must be an RFC 3339 timestamp string such as "2026-11-20T10:00:00Z", got "yesterday""#
        );
        // A date without a time or offset is ISO 8601 but not RFC 3339.
        assert!(Timestamp::parse("2024-05-01").is_err());
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        let err = message(MetricName::parse(&"X".repeat(10_000)).unwrap_err());
        assert!(err.len() < 200, "{err}");
        assert!(err.ends_with("…\""), "{err}");
    }

    #[test]
    fn serde_validates_what_it_loads() {
        assert!(serde_json::from_str::<MetricName>(r#""BAD""#).is_err());
        assert!(serde_json::from_str::<Timestamp>(r#""x""#).is_err());
        let ts: Timestamp = serde_json::from_str(r#""2026-11-20T10:00:00Z""#).unwrap();
        assert_eq!(
            serde_json::to_string(&ts).unwrap(),
            r#""2026-11-20T10:00:00Z""#
        );
    }
}
