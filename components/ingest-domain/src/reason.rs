//! Every reason a reading, or a whole message, is rejected.

use thiserror::Error;

use telemetry_domain::{DeviceId, DeviceIdError, ReadingError};

use crate::message::{
    EXAMPLE_READING, INGEST_READING_FIELDS, MAX_MESSAGE_BYTES, MAX_READINGS_PER_MESSAGE,
};
use crate::reading_id::ReadingIdError;
use crate::stats::StatsValueError;
use crate::subject::READINGS_SUBJECT_PREFIX;
use telemetry_domain::excerpt::{excerpt, quoted};

/// Why a reading, or a whole message, was not stored. The `Display` text is the
/// `reason` of the [`RejectedMessage`](crate::RejectedMessage): it names the
/// problem and what was expected instead. [`RejectReason::code`] is the same
/// reason as a stable identifier for programs.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RejectReason {
    // Problems of the whole message; they come with no index.
    #[error(
        "message is {len} bytes; expected at most {} bytes (and at most {} readings)",
        MAX_MESSAGE_BYTES,
        MAX_READINGS_PER_MESSAGE
    )]
    TooLarge { len: usize },
    #[error(
        "subject {} does not name a valid device ({source}); expected neongrid.readings.<device id>",
        quoted(.subject)
    )]
    BadSubject {
        subject: String,
        source: DeviceIdError,
    },
    #[error("message is not UTF-8 ({detail}); expected JSON text")]
    NotUtf8 { detail: String },
    #[error(
        "message is empty; expected a JSON reading such as {} or a JSON array of them",
        EXAMPLE_READING
    )]
    Empty,
    #[error(
        "message is not valid JSON ({detail}); expected a JSON reading such as {} or a JSON array of them",
        EXAMPLE_READING
    )]
    NotJson { detail: String },
    #[error(
        "message must be a JSON object such as {} or an array of them, got {got}",
        EXAMPLE_READING
    )]
    NotObjectOrArray { got: &'static str },
    #[error("message is an empty array; expected at least one reading")]
    EmptyArray,
    #[error(
        "message holds {count} readings; expected at most {} per message",
        MAX_READINGS_PER_MESSAGE
    )]
    TooManyReadings { count: usize },

    // Problems of one reading.
    /// Well-formed JSON that still can't be decoded, e.g. a number such as
    /// `1e999` that no `f64` holds.
    #[error(
        "reading could not be decoded ({detail}); expected a JSON object such as {} with finite numbers",
        EXAMPLE_READING
    )]
    UnreadableReading { detail: String },
    #[error("reading must be a JSON object such as {}, got {got}", EXAMPLE_READING)]
    NotAnObject { got: &'static str },
    #[error("unknown field `{}`; a reading accepts only {}", excerpt(.field), accepted_fields())]
    UnknownField { field: String },
    /// A missing or wrongly typed field, a bad metric name or a bad timestamp.
    #[error(transparent)]
    Field(#[from] ReadingError),
    #[error("field `id` is invalid: {0}")]
    BadId(#[from] ReadingIdError),
    #[error("field `device` is invalid: {0}")]
    BadDevice(DeviceIdError),
    #[error(
        "field `device` is \"{payload}\" but the message was sent on the subject of device \"{subject}\"; \
         expected \"{subject}\""
    )]
    DeviceMismatch {
        subject: DeviceId,
        payload: DeviceId,
    },
    /// A reading is stored only in its device's ordered delivery, so one that came
    /// on a subject naming no device (`neongrid.ingest`, say) is judged but refused.
    #[error(
        "reading of device \"{device}\" came on subject {}, which names no device; expected it on \
         {}{device}, where a device's readings are stored in order",
        quoted(.subject),
        READINGS_SUBJECT_PREFIX
    )]
    Unordered { subject: String, device: DeviceId },
    #[error("field `value`: {0}")]
    Value(#[from] StatsValueError),

    // The validator's verdict.
    #[error("validator rejected the reading: {reason}")]
    Validator {
        kind: ValidatorRejection,
        reason: String,
    },
}

/// The validator's kinds of rejection (the WIT `rejection-kind`), plus
/// [`ValidatorRejection::Unavailable`] for a validator that could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidatorRejection {
    NotFinite,
    OutOfRange,
    UnknownMetric,
    /// The validator's config is broken; the reading was not judged.
    Misconfigured,
    /// Calling the validator failed (no link, timeout); the reading was not judged.
    /// Not part of the WIT: ingest itself uses it.
    Unavailable,
}

impl RejectReason {
    /// A stable `snake_case` name of the reason, for programs that route or
    /// count rejections without parsing the text.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::BadSubject { .. } => "bad_subject",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::Empty => "empty",
            Self::NotJson { .. } => "not_json",
            Self::NotObjectOrArray { .. } => "not_object_or_array",
            Self::EmptyArray => "empty_array",
            Self::TooManyReadings { .. } => "too_many_readings",
            Self::UnreadableReading { .. } => "unreadable_reading",
            Self::NotAnObject { .. } => "not_an_object",
            Self::UnknownField { .. } => "unknown_field",
            Self::Field(ReadingError::MissingField { .. }) => "missing_field",
            Self::Field(ReadingError::Invalid { .. }) | Self::BadId(_) | Self::BadDevice(_) => {
                "invalid_field"
            }
            Self::DeviceMismatch { .. } => "device_mismatch",
            Self::Unordered { .. } => "unordered_subject",
            Self::Value(_) => "value_out_of_range",
            Self::Validator { kind, .. } => kind.code(),
        }
    }

    /// Whether the reading itself may be fine and was refused only because the
    /// pipeline could not judge it, so that replaying it later can succeed.
    /// Such readings are not marked seen, so a replay is not a duplicate.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Validator {
                kind: ValidatorRejection::Misconfigured | ValidatorRejection::Unavailable,
                ..
            }
        )
    }

    /// Whether the reason concerns the whole message rather than one reading.
    pub fn is_whole_message(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::BadSubject { .. }
                | Self::NotUtf8 { .. }
                | Self::Empty
                | Self::NotJson { .. }
                | Self::NotObjectOrArray { .. }
                | Self::EmptyArray
                | Self::TooManyReadings { .. }
        )
    }
}

impl ValidatorRejection {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFinite => "not_finite",
            Self::OutOfRange => "out_of_range",
            Self::UnknownMetric => "unknown_metric",
            Self::Misconfigured => "validator_misconfigured",
            Self::Unavailable => "validator_unavailable",
        }
    }
}

fn accepted_fields() -> String {
    INGEST_READING_FIELDS
        .iter()
        .map(|field| format!("`{field}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_per_kind_of_problem() {
        let d = DeviceId::parse("d").unwrap();
        let reasons = [
            RejectReason::TooLarge { len: 1 },
            RejectReason::BadSubject {
                subject: "s".into(),
                source: DeviceIdError::Empty,
            },
            RejectReason::NotUtf8 { detail: "x".into() },
            RejectReason::Empty,
            RejectReason::NotJson { detail: "x".into() },
            RejectReason::NotObjectOrArray { got: "null" },
            RejectReason::EmptyArray,
            RejectReason::TooManyReadings { count: 2 },
            RejectReason::UnreadableReading { detail: "x".into() },
            RejectReason::NotAnObject { got: "null" },
            RejectReason::UnknownField { field: "x".into() },
            RejectReason::Field(ReadingError::MissingField {
                field: "id",
                expected: "x",
            }),
            RejectReason::BadId(ReadingIdError::Empty),
            RejectReason::DeviceMismatch {
                subject: d.clone(),
                payload: d.clone(),
            },
            RejectReason::Unordered {
                subject: "neongrid.ingest".into(),
                device: d,
            },
            RejectReason::Value(StatsValueError::TooLarge { value: 1e20 }),
            RejectReason::Validator {
                kind: ValidatorRejection::NotFinite,
                reason: "x".into(),
            },
            RejectReason::Validator {
                kind: ValidatorRejection::OutOfRange,
                reason: "x".into(),
            },
            RejectReason::Validator {
                kind: ValidatorRejection::UnknownMetric,
                reason: "x".into(),
            },
            RejectReason::Validator {
                kind: ValidatorRejection::Misconfigured,
                reason: "x".into(),
            },
            RejectReason::Validator {
                kind: ValidatorRejection::Unavailable,
                reason: "x".into(),
            },
        ];
        let mut codes: Vec<&str> = reasons.iter().map(RejectReason::code).collect();
        assert!(codes.iter().all(|code| code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), reasons.len());
        assert_eq!(reasons.iter().filter(|r| r.is_whole_message()).count(), 8);
        assert_eq!(reasons.iter().filter(|r| r.is_retryable()).count(), 2);
    }

    #[test]
    fn field_level_reasons_share_codes_by_problem() {
        assert_eq!(
            RejectReason::BadDevice(DeviceIdError::Empty).code(),
            "invalid_field"
        );
        assert_eq!(
            RejectReason::Field(ReadingError::Invalid {
                field: "ts",
                expected: "x",
                got: "1".into()
            })
            .code(),
            "invalid_field"
        );
    }

    #[test]
    fn unknown_field_names_are_bounded_and_list_the_accepted_ones() {
        let reason = RejectReason::UnknownField {
            field: "tss".into(),
        };
        assert_eq!(
            reason.to_string(),
            "unknown field `tss`; a reading accepts only `id`, `device`, `metric`, `value`, `ts`"
        );
        let long = RejectReason::UnknownField {
            field: "f".repeat(1000),
        };
        assert!(long.to_string().len() < 200);
    }

    #[test]
    fn validator_reasons_keep_the_validators_words() {
        let reason = RejectReason::Validator {
            kind: ValidatorRejection::OutOfRange,
            reason: "metric \"t\" value 90 is outside its valid range -40..85".into(),
        };
        assert_eq!(
            reason.to_string(),
            "validator rejected the reading: metric \"t\" value 90 is outside its valid range -40..85"
        );
        assert_eq!(reason.code(), "out_of_range");
        assert!(!reason.is_retryable());
    }
}
