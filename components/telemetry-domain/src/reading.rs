//! Readings: the body a device posts, its validation, and the form stored as a
//! device's latest reading.
//!
//! The body is first parsed as untyped JSON and then checked field by field, so
//! that each error can name the field, what was expected and what arrived; a
//! derived `Deserialize` would only say where parsing stopped.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::excerpt::{excerpt, json, quoted};

/// Longest metric name accepted; metric names are short identifiers, not text.
pub const MAX_METRIC_LEN: usize = 64;

/// The metric-name rules in words, for error messages.
pub const METRIC_RULE: &str = "1 to 64 characters of a-z, 0-9 and '_'";

/// A minimal valid body, quoted in errors about the body as a whole.
pub const EXAMPLE_READING: &str = r#"{"metric":"temperature_c","value":21.4}"#;

/// An example of the optional timestamp, quoted in errors about it.
pub const EXAMPLE_TS: &str = "2024-05-01T12:00:00Z";

pub const FIELD_METRIC: &str = "metric";
pub const FIELD_VALUE: &str = "value";
pub const FIELD_TS: &str = "ts";

/// Every field a reading body may carry. Unknown fields are refused rather than
/// ignored so that a misspelt optional field (`"tss"`) is reported instead of
/// silently dropped.
pub const READING_FIELDS: &[&str] = &[FIELD_METRIC, FIELD_VALUE, FIELD_TS];

const EXPECTED_METRIC: &str = "a string of 1 to 64 characters of a-z, 0-9 and '_'";
const EXPECTED_VALUE: &str = "a finite number";
const EXPECTED_TS: &str = "an RFC 3339 timestamp string such as \"2024-05-01T12:00:00Z\"";

/// Why a reading body, or a reading loaded from the store, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadingError {
    #[error(
        "request body is empty; expected a JSON object such as {}",
        EXAMPLE_READING
    )]
    EmptyBody,
    #[error(
        "request body is not valid JSON ({detail}); expected a JSON object such as {}",
        EXAMPLE_READING
    )]
    InvalidJson { detail: String },
    #[error(
        "request body must be a JSON object such as {}, got {got}",
        EXAMPLE_READING
    )]
    NotAnObject { got: &'static str },
    #[error("unknown field `{}`; a reading accepts only {}", excerpt(.field), accepted_fields())]
    UnknownField { field: String },
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

fn accepted_fields() -> String {
    READING_FIELDS
        .iter()
        .map(|field| format!("`{field}`"))
        .collect::<Vec<_>>()
        .join(", ")
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

/// One measurement from a device, valid by construction.
///
/// Serialized as `{"metric":"temperature_c","value":21.4}` plus `"ts"` when it
/// was given; this is both the stored form and the `latest` object of
/// responses. Fields that later slices add (an id, the device) belong in a
/// record that wraps or flattens this type, so this form stays readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedReading")]
pub struct Reading {
    metric: MetricName,
    value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<Timestamp>,
}

/// The shape of a stored reading before its value is checked; only used so
/// that deserializing can't build a [`Reading`] holding NaN or infinity.
#[derive(Deserialize)]
struct UncheckedReading {
    metric: MetricName,
    value: f64,
    #[serde(default)]
    ts: Option<Timestamp>,
}

impl TryFrom<UncheckedReading> for Reading {
    type Error = ReadingError;

    fn try_from(raw: UncheckedReading) -> Result<Self, Self::Error> {
        Reading::new(raw.metric, raw.value, raw.ts)
    }
}

impl Reading {
    /// Builds a reading, refusing a value that is NaN or infinite because JSON
    /// can't carry it and no sensor measures it.
    pub fn new(
        metric: MetricName,
        value: f64,
        ts: Option<Timestamp>,
    ) -> Result<Self, ReadingError> {
        if !value.is_finite() {
            return Err(ReadingError::Invalid {
                field: FIELD_VALUE,
                expected: EXPECTED_VALUE,
                got: value.to_string(),
            });
        }
        Ok(Self { metric, value, ts })
    }

    pub fn metric(&self) -> &MetricName {
        &self.metric
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn ts(&self) -> Option<&Timestamp> {
        self.ts.as_ref()
    }
}

/// Parses and validates a reading body such as [`EXAMPLE_READING`].
pub fn parse_reading_body(body: &[u8]) -> Result<Reading, ReadingError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadingError::EmptyBody);
    }
    let document: Value =
        serde_json::from_slice(body).map_err(|err| ReadingError::InvalidJson {
            detail: err.to_string(),
        })?;
    let Value::Object(mut fields) = document else {
        return Err(ReadingError::NotAnObject {
            got: crate::excerpt::kind(&document),
        });
    };
    if let Some(unknown) = fields
        .keys()
        .find(|name| !READING_FIELDS.contains(&name.as_str()))
    {
        return Err(ReadingError::UnknownField {
            field: unknown.clone(),
        });
    }

    let metric = match take_required(&mut fields, FIELD_METRIC, EXPECTED_METRIC)? {
        Value::String(name) => MetricName::parse(&name)?,
        other => return Err(invalid(FIELD_METRIC, EXPECTED_METRIC, &other)),
    };
    let value = match take_required(&mut fields, FIELD_VALUE, EXPECTED_VALUE)? {
        // Without serde_json's arbitrary-precision feature every JSON number
        // converts; out-of-range literals such as 1e999 already failed parsing.
        Value::Number(number) => match number.as_f64() {
            Some(value) => value,
            None => return Err(invalid(FIELD_VALUE, EXPECTED_VALUE, &Value::Number(number))),
        },
        other => return Err(invalid(FIELD_VALUE, EXPECTED_VALUE, &other)),
    };
    // An explicit `null` means "no timestamp", the same as leaving it out.
    let ts = match fields.remove(FIELD_TS) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Timestamp::parse(&text)?),
        Some(other) => return Err(invalid(FIELD_TS, EXPECTED_TS, &other)),
    };
    Reading::new(metric, value, ts)
}

fn take_required(
    fields: &mut Map<String, Value>,
    field: &'static str,
    expected: &'static str,
) -> Result<Value, ReadingError> {
    fields
        .remove(field)
        .ok_or(ReadingError::MissingField { field, expected })
}

fn invalid(field: &'static str, expected: &'static str, got: &Value) -> ReadingError {
    ReadingError::Invalid {
        field,
        expected,
        got: json(got),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Reading, ReadingError> {
        parse_reading_body(body.as_bytes())
    }

    fn message(body: &str) -> String {
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_minimal_body() {
        let reading = parse(EXAMPLE_READING).unwrap();
        assert_eq!(reading.metric().as_str(), "temperature_c");
        assert_eq!(reading.value(), 21.4);
        assert_eq!(reading.ts(), None);
    }

    #[test]
    fn accepts_integers_negative_values_and_an_optional_timestamp() {
        let reading = parse(r#"{"metric":"rssi_dbm","value":-70}"#).unwrap();
        assert_eq!(reading.value(), -70.0);

        let reading =
            parse(r#"{"metric":"t","value":1.5e3,"ts":"2024-05-01T12:00:00.123+02:00"}"#).unwrap();
        assert_eq!(reading.value(), 1500.0);
        assert_eq!(
            reading.ts().map(Timestamp::as_str),
            Some("2024-05-01T12:00:00.123+02:00")
        );

        let reading = parse(r#"{"metric":"t","value":1,"ts":null}"#).unwrap();
        assert_eq!(reading.ts(), None);
    }

    #[test]
    fn wrong_typed_value_names_field_expectation_and_input() {
        assert_eq!(
            message(r#"{"metric":"temperature_c","value":"abc"}"#),
            r#"field `value` must be a finite number, got "abc""#
        );
        assert_eq!(
            message(r#"{"metric":"temperature_c","value":null}"#),
            "field `value` must be a finite number, got null"
        );
        assert_eq!(
            message(r#"{"metric":"temperature_c","value":[1]}"#),
            "field `value` must be a finite number, got [1]"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            message(r#"{"value":1}"#),
            "field `metric` is required: expected a string of 1 to 64 characters of a-z, 0-9 and '_'"
        );
        assert_eq!(
            parse(r#"{"metric":"t"}"#).unwrap_err(),
            ReadingError::MissingField {
                field: FIELD_VALUE,
                expected: EXPECTED_VALUE
            }
        );
    }

    #[test]
    fn bad_metric_names_are_refused() {
        assert_eq!(
            message(r#"{"metric":"Temp C","value":1}"#),
            r#"field `metric` must be a string of 1 to 64 characters of a-z, 0-9 and '_', got "Temp C""#
        );
        assert!(message(r#"{"metric":"","value":1}"#).ends_with(r#"got """#));
        let too_long = "m".repeat(MAX_METRIC_LEN + 1);
        assert!(parse(&format!(r#"{{"metric":"{too_long}","value":1}}"#)).is_err());
        let longest = "m".repeat(MAX_METRIC_LEN);
        assert!(parse(&format!(r#"{{"metric":"{longest}","value":1}}"#)).is_ok());
        assert_eq!(
            message(r#"{"metric":7,"value":1}"#),
            "field `metric` must be a string of 1 to 64 characters of a-z, 0-9 and '_', got 7"
        );
    }

    #[test]
    fn bad_timestamps_are_refused() {
        assert_eq!(
            message(r#"{"metric":"t","value":1,"ts":"yesterday"}"#),
            r#"field `ts` must be an RFC 3339 timestamp string such as "2024-05-01T12:00:00Z", got "yesterday""#
        );
        // A date without a time or offset is ISO 8601 but not RFC 3339.
        assert!(parse(r#"{"metric":"t","value":1,"ts":"2024-05-01"}"#).is_err());
        assert!(parse(r#"{"metric":"t","value":1,"ts":1714564800}"#).is_err());
    }

    #[test]
    fn body_level_problems_quote_an_example() {
        assert_eq!(parse("").unwrap_err(), ReadingError::EmptyBody);
        assert_eq!(parse(" \n").unwrap_err(), ReadingError::EmptyBody);

        let err = message("{not json");
        assert!(err.starts_with("request body is not valid JSON ("), "{err}");
        assert!(err.ends_with(EXAMPLE_READING), "{err}");

        assert_eq!(
            message("[1,2]"),
            format!("request body must be a JSON object such as {EXAMPLE_READING}, got an array")
        );
        assert!(matches!(
            parse(r#""x""#),
            Err(ReadingError::NotAnObject { got: "a string" })
        ));
    }

    #[test]
    fn unknown_fields_are_refused_with_the_accepted_list() {
        assert_eq!(
            message(r#"{"metric":"t","value":1,"tss":"x"}"#),
            "unknown field `tss`; a reading accepts only `metric`, `value`, `ts`"
        );
    }

    #[test]
    fn out_of_range_numbers_are_not_accepted() {
        assert!(matches!(
            parse(r#"{"metric":"t","value":1e999}"#),
            Err(ReadingError::InvalidJson { .. })
        ));
    }

    #[test]
    fn non_finite_values_cannot_be_constructed() {
        let metric = MetricName::parse("t").unwrap();
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                Reading::new(metric.clone(), value, None),
                Err(ReadingError::Invalid {
                    field: FIELD_VALUE,
                    ..
                })
            ));
        }
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        let long = "x".repeat(10_000);
        let err = message(&format!(r#"{{"metric":"t","value":"{long}"}}"#));
        assert!(err.len() < 200, "{err}");
        assert!(err.ends_with('…'));
    }

    #[test]
    fn stored_form_round_trips_and_omits_absent_timestamp() {
        let reading = parse(EXAMPLE_READING).unwrap();
        let stored = serde_json::to_string(&reading).unwrap();
        assert_eq!(stored, EXAMPLE_READING);
        assert_eq!(serde_json::from_str::<Reading>(&stored).unwrap(), reading);

        let with_ts = parse(r#"{"metric":"t","value":2.5,"ts":"2024-05-01T12:00:00Z"}"#).unwrap();
        let stored = serde_json::to_string(&with_ts).unwrap();
        assert_eq!(
            stored,
            r#"{"metric":"t","value":2.5,"ts":"2024-05-01T12:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Reading>(&stored).unwrap(), with_ts);
    }

    #[test]
    fn stored_form_is_validated_when_loaded() {
        assert!(serde_json::from_str::<Reading>(r#"{"metric":"BAD","value":1}"#).is_err());
        assert!(serde_json::from_str::<Reading>(r#"{"metric":"t"}"#).is_err());
        assert!(serde_json::from_str::<Reading>(r#"{"metric":"t","value":1,"ts":"x"}"#).is_err());
    }
}
