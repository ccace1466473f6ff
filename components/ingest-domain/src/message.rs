//! Reading messages: one JSON reading, or a JSON array of them, turned into one
//! outcome per reading.
//!
//! Nothing is dropped: a message whose readings can be told apart gives exactly
//! one [`Outcome`] per reading, in order; any other message gives exactly one
//! [`Outcome::Rejected`] carrying the whole message. Each outcome keeps the
//! reading's exact original bytes, so a rejection can pass them on unchanged.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use telemetry_domain::reading::FIELD_METRIC;
use telemetry_domain::{DeviceId, MetricName, ReadingError, Timestamp};

use crate::reading_id::ReadingId;
use crate::reason::RejectReason;
use crate::stats::{to_micros, Micros, StatsValueError};
use crate::subject::subject_device;
use telemetry_domain::excerpt::{json, kind};

/// Largest message accepted. 1000 readings of about 130 bytes fit with room to
/// spare, and it stays well under NATS's default 1 MiB payload limit, so a
/// rejection that carries a whole message can still be published.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Most readings in one message. Bounds the work, and the store round trips,
/// that one message can cause.
pub const MAX_READINGS_PER_MESSAGE: usize = 1000;

/// A reading as devices send it, quoted in reasons.
pub const EXAMPLE_READING: &str = r#"{"id":"r-1","device":"thermo-17","metric":"temperature_c","value":21.4,"ts":"2026-11-20T10:00:00Z"}"#;

pub const FIELD_ID: &str = "id";
pub const FIELD_DEVICE: &str = "device";
pub const FIELD_VALUE: &str = "value";
pub const FIELD_TS: &str = "ts";

/// Every field of a reading; all are required. Unknown fields are refused
/// rather than ignored, so a misspelt field is reported instead of lost.
pub const INGEST_READING_FIELDS: &[&str] =
    &[FIELD_ID, FIELD_DEVICE, FIELD_METRIC, FIELD_VALUE, FIELD_TS];

const EXPECTED_ID: &str = "a string of 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
const EXPECTED_DEVICE: &str = "a string of 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
const EXPECTED_METRIC: &str = "a string of 1 to 64 characters of a-z, 0-9 and '_'";
const EXPECTED_VALUE: &str = "a finite number";
const EXPECTED_TS: &str = "an RFC 3339 timestamp string such as \"2026-11-20T10:00:00Z\"";

/// The whitespace JSON allows before a value.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// One valid reading, as stored in `latest` and in the archive:
/// [`EXAMPLE_READING`] is its JSON form.
///
/// Its value is finite and fits the exact statistics (see [`crate::stats`]),
/// which construction and deserialization both check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedReading")]
pub struct IngestReading {
    id: ReadingId,
    device: DeviceId,
    metric: MetricName,
    value: f64,
    /// The device's own text, kept as sent (offset and precision included).
    ts: Timestamp,
    #[serde(skip)]
    micros: Micros,
}

/// The stored form before its value is checked.
#[derive(Deserialize)]
struct UncheckedReading {
    id: ReadingId,
    device: DeviceId,
    metric: MetricName,
    value: f64,
    ts: Timestamp,
}

impl TryFrom<UncheckedReading> for IngestReading {
    type Error = StatsValueError;

    fn try_from(raw: UncheckedReading) -> Result<Self, Self::Error> {
        Self::new(raw.id, raw.device, raw.metric, raw.value, raw.ts)
    }
}

impl IngestReading {
    /// Builds a reading, refusing values the statistics can't hold exactly:
    /// non-finite ones and those of magnitude above [`crate::stats::MAX_ABS_VALUE`].
    pub fn new(
        id: ReadingId,
        device: DeviceId,
        metric: MetricName,
        value: f64,
        ts: Timestamp,
    ) -> Result<Self, StatsValueError> {
        let micros = to_micros(value)?;
        Ok(Self {
            id,
            device,
            metric,
            value,
            ts,
            micros,
        })
    }

    pub fn id(&self) -> &ReadingId {
        &self.id
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub fn metric(&self) -> &MetricName {
        &self.metric
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn ts(&self) -> &Timestamp {
        &self.ts
    }

    /// The value in micro-units, as the sum adds it.
    pub fn micros(&self) -> Micros {
        self.micros
    }

    /// The JSON stored in `latest` and in the archive.
    pub fn to_json(&self) -> Vec<u8> {
        crate::encode(self)
    }
}

/// What became of one reading of a message, or of the whole message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reading(ParsedReading),
    Rejected(Rejected),
}

impl Outcome {
    /// The reading's position in the message's array; `None` when the message
    /// was a single object or was rejected as a whole.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Reading(parsed) => parsed.index,
            Self::Rejected(rejected) => rejected.index,
        }
    }

    /// The exact bytes this outcome is about.
    pub fn original(&self) -> &[u8] {
        match self {
            Self::Reading(parsed) => &parsed.original,
            Self::Rejected(rejected) => &rejected.original,
        }
    }
}

/// A valid reading, still to be judged by the validator.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReading {
    /// Position in the message's array, `None` for a single-object message.
    pub index: Option<usize>,
    pub reading: IngestReading,
    /// The reading's exact bytes in the message, for a rejection by the validator.
    pub original: Vec<u8>,
}

/// A reading, or a whole message, that is not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Position in the message's array; `None` for a single-object message and
    /// for a message rejected as a whole.
    pub index: Option<usize>,
    pub reason: RejectReason,
    /// The element's exact bytes, or the whole message's.
    pub original: Vec<u8>,
}

/// Parses a message received on `subject`.
///
/// When the subject is `neongrid.readings.<device>`, every reading must name
/// that same device. On any other subject a reading is judged but refused as
/// [`RejectReason::Unordered`]: it would bypass its device's ordered delivery.
/// Whole-message problems (too large, bad subject device, not UTF-8, empty,
/// not JSON, neither object nor array, empty or too long an array) give one
/// rejection with the whole payload. A syntax error anywhere makes the whole
/// message "not JSON": the element boundaries can't be trusted after one.
pub fn parse_message(subject: &str, payload: &[u8]) -> Vec<Outcome> {
    parse_elements(subject, payload).unwrap_or_else(|reason| {
        vec![Outcome::Rejected(Rejected {
            index: None,
            reason,
            original: payload.to_vec(),
        })]
    })
}

fn parse_elements(subject: &str, payload: &[u8]) -> Result<Vec<Outcome>, RejectReason> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(RejectReason::TooLarge { len: payload.len() });
    }
    let subject_device = subject_device(subject).map_err(|source| RejectReason::BadSubject {
        subject: subject.to_owned(),
        source,
    })?;
    let subject_device = subject_device.as_ref();
    let text = std::str::from_utf8(payload).map_err(|err| RejectReason::NotUtf8 {
        detail: err.to_string(),
    })?;
    let not_json = |err: serde_json::Error| RejectReason::NotJson {
        detail: err.to_string(),
    };
    match text.trim_start_matches(JSON_WHITESPACE).chars().next() {
        None => Err(RejectReason::Empty),
        Some('[') => {
            // Raw elements keep each reading's exact bytes, and let one element
            // fail to decode (say `1e999`) without failing its neighbours.
            let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(not_json)?;
            if elements.is_empty() {
                return Err(RejectReason::EmptyArray);
            }
            if elements.len() > MAX_READINGS_PER_MESSAGE {
                return Err(RejectReason::TooManyReadings {
                    count: elements.len(),
                });
            }
            Ok(elements
                .iter()
                .enumerate()
                .map(|(index, raw)| outcome(Some(index), raw.get(), subject, subject_device))
                .collect())
        }
        Some('{') => {
            // Syntax first, so a broken object is "not JSON" like a broken array.
            serde_json::from_str::<&RawValue>(text).map_err(not_json)?;
            Ok(vec![outcome(None, text, subject, subject_device)])
        }
        Some(_) => match serde_json::from_str::<Value>(text) {
            Ok(value) => Err(RejectReason::NotObjectOrArray { got: kind(&value) }),
            Err(err) => Err(not_json(err)),
        },
    }
}

fn outcome(
    index: Option<usize>,
    text: &str,
    subject: &str,
    subject_device: Option<&DeviceId>,
) -> Outcome {
    let original = text.as_bytes().to_vec();
    match parse_reading(text, subject, subject_device) {
        Ok(reading) => Outcome::Reading(ParsedReading {
            index,
            reading,
            original,
        }),
        Err(reason) => Outcome::Rejected(Rejected {
            index,
            reason,
            original,
        }),
    }
}

/// Checks one reading's fields, reporting the first problem in the order
/// unknown fields, `id`, `device`, `metric`, `value`, `ts`.
fn parse_reading(
    text: &str,
    subject: &str,
    subject_device: Option<&DeviceId>,
) -> Result<IngestReading, RejectReason> {
    let document: Value =
        serde_json::from_str(text).map_err(|err| RejectReason::UnreadableReading {
            detail: err.to_string(),
        })?;
    let Value::Object(mut fields) = document else {
        return Err(RejectReason::NotAnObject {
            got: kind(&document),
        });
    };
    if let Some(unknown) = fields
        .keys()
        .find(|name| !INGEST_READING_FIELDS.contains(&name.as_str()))
    {
        return Err(RejectReason::UnknownField {
            field: unknown.clone(),
        });
    }

    let id = match take(&mut fields, FIELD_ID, EXPECTED_ID)? {
        Value::String(id) => ReadingId::parse(&id)?,
        other => return Err(invalid(FIELD_ID, EXPECTED_ID, &other)),
    };
    let device = match take(&mut fields, FIELD_DEVICE, EXPECTED_DEVICE)? {
        Value::String(device) => DeviceId::parse(&device).map_err(RejectReason::BadDevice)?,
        other => return Err(invalid(FIELD_DEVICE, EXPECTED_DEVICE, &other)),
    };
    match subject_device {
        None => {
            return Err(RejectReason::Unordered {
                subject: subject.to_owned(),
                device,
            })
        }
        Some(subject) if *subject != device => {
            return Err(RejectReason::DeviceMismatch {
                subject: subject.clone(),
                payload: device,
            })
        }
        Some(_) => {}
    }
    let metric = match take(&mut fields, FIELD_METRIC, EXPECTED_METRIC)? {
        Value::String(name) => MetricName::parse(&name)?,
        other => return Err(invalid(FIELD_METRIC, EXPECTED_METRIC, &other)),
    };
    // Without serde_json's arbitrary-precision feature every parsed number has
    // an f64, and a literal beyond f64 already failed decoding above.
    let value = match take(&mut fields, FIELD_VALUE, EXPECTED_VALUE)? {
        Value::Number(number) => match number.as_f64() {
            Some(value) => value,
            None => return Err(invalid(FIELD_VALUE, EXPECTED_VALUE, &Value::Number(number))),
        },
        other => return Err(invalid(FIELD_VALUE, EXPECTED_VALUE, &other)),
    };
    // Unlike the HTTP API, the timestamp is required: the history is only
    // useful with the time each reading was taken, and `null` is not a time.
    let ts = match take(&mut fields, FIELD_TS, EXPECTED_TS)? {
        // Named with this crate's example rather than the HTTP API's, so
        // every `ts` reason reads the same.
        Value::String(text) => match Timestamp::parse(&text) {
            Ok(ts) => ts,
            Err(_) => return Err(invalid(FIELD_TS, EXPECTED_TS, &Value::String(text))),
        },
        other => return Err(invalid(FIELD_TS, EXPECTED_TS, &other)),
    };
    Ok(IngestReading::new(id, device, metric, value, ts)?)
}

fn take(
    fields: &mut Map<String, Value>,
    field: &'static str,
    expected: &'static str,
) -> Result<Value, RejectReason> {
    fields
        .remove(field)
        .ok_or(RejectReason::Field(ReadingError::MissingField {
            field,
            expected,
        }))
}

fn invalid(field: &'static str, expected: &'static str, got: &Value) -> RejectReason {
    RejectReason::Field(ReadingError::Invalid {
        field,
        expected,
        got: json(got),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::RejectReason as R;

    const SUBJECT: &str = "neongrid.readings.thermo-17";

    fn reading_json(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","device":"thermo-17","metric":"temperature_c","value":21.4,"ts":"2026-11-20T10:00:00Z"}}"#
        )
    }

    fn one(subject: &str, payload: &str) -> Outcome {
        let mut outcomes = parse_message(subject, payload.as_bytes());
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        outcomes.remove(0)
    }

    fn reason(subject: &str, payload: &str) -> RejectReason {
        match one(subject, payload) {
            Outcome::Rejected(rejected) => rejected.reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn field_reason(fields: &str) -> RejectReason {
        reason(SUBJECT, &format!("{{{fields}}}"))
    }

    #[test]
    fn parses_a_single_reading() {
        let payload = format!(" {}\n", reading_json("r-1"));
        let Outcome::Reading(parsed) = one(SUBJECT, &payload) else {
            panic!("expected a reading");
        };
        assert_eq!(parsed.index, None);
        assert_eq!(parsed.original, payload.as_bytes());
        let reading = parsed.reading;
        assert_eq!(reading.id().as_str(), "r-1");
        assert_eq!(reading.device().as_str(), "thermo-17");
        assert_eq!(reading.metric().as_str(), "temperature_c");
        assert_eq!(reading.value(), 21.4);
        assert_eq!(reading.ts().as_str(), "2026-11-20T10:00:00Z");
        assert_eq!(reading.micros(), Micros::NonNegative(21_400_000));
        assert_eq!(reading.to_json(), EXAMPLE_READING.as_bytes());
    }

    #[test]
    fn parses_an_array_keeping_each_elements_exact_bytes() {
        let payload = format!(
            "[ {} ,\n{}, 7 ]",
            reading_json("a"),
            r#"{ "id" : "b","device":"thermo-17","metric":"t","value":-1E2,"ts":"2026-11-20T10:00:00.5+01:00"}"#
        );
        let outcomes = parse_message(SUBJECT, payload.as_bytes());
        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0].original(), reading_json("a").as_bytes());
        assert_eq!(
            outcomes[1].original(),
            br#"{ "id" : "b","device":"thermo-17","metric":"t","value":-1E2,"ts":"2026-11-20T10:00:00.5+01:00"}"#
        );
        let Outcome::Reading(second) = &outcomes[1] else {
            panic!("expected a reading");
        };
        assert_eq!(second.reading.value(), -100.0);
        assert_eq!(second.index, Some(1));
        assert_eq!(outcomes[2].original(), b"7");
        assert_eq!(outcomes[2].index(), Some(2));
        assert!(matches!(
            &outcomes[2],
            Outcome::Rejected(Rejected {
                reason: R::NotAnObject { got: "a number" },
                ..
            })
        ));
    }

    #[test]
    fn whole_message_failures_carry_the_whole_payload() {
        for (payload, code) in [
            ("", "empty"),
            (" \n\t", "empty"),
            ("{not json", "not_json"),
            ("[1,", "not_json"),
            (r#"{"id":"r"} x"#, "not_json"),
            ("nul", "not_json"),
            ("\u{feff}{}", "not_json"),
            ("1e999", "not_json"),
            ("42", "not_object_or_array"),
            (r#""text""#, "not_object_or_array"),
            ("null", "not_object_or_array"),
            ("[]", "empty_array"),
            (" [ ] ", "empty_array"),
        ] {
            let outcome = one(SUBJECT, payload);
            let Outcome::Rejected(rejected) = outcome else {
                panic!("{payload:?} was accepted");
            };
            assert_eq!(rejected.reason.code(), code, "{payload:?}");
            assert!(rejected.reason.is_whole_message(), "{payload:?}");
            assert_eq!(rejected.index, None);
            assert_eq!(rejected.original, payload.as_bytes());
        }
    }

    #[test]
    fn whole_message_reasons_say_what_was_expected() {
        assert_eq!(
            reason(SUBJECT, "42").to_string(),
            format!("message must be a JSON object such as {EXAMPLE_READING} or an array of them, got a number")
        );
        assert!(reason(SUBJECT, "{")
            .to_string()
            .starts_with("message is not valid JSON (EOF while parsing"));
        assert_eq!(
            reason(SUBJECT, "[]").to_string(),
            "message is an empty array; expected at least one reading"
        );
    }

    #[test]
    fn non_utf8_messages_are_refused_whole() {
        let payload = b"{\"id\":\"\xff\"}";
        let outcomes = parse_message(SUBJECT, payload);
        assert_eq!(outcomes.len(), 1);
        let Outcome::Rejected(rejected) = &outcomes[0] else {
            panic!("accepted");
        };
        assert_eq!(rejected.reason.code(), "not_utf8");
        assert_eq!(rejected.original, payload);
    }

    #[test]
    fn size_limit_is_inclusive() {
        let element = reading_json("r");
        let mut at_limit = element.clone().into_bytes();
        at_limit.resize(MAX_MESSAGE_BYTES, b' ');
        assert!(matches!(
            parse_message(SUBJECT, &at_limit)[..],
            [Outcome::Reading(_)]
        ));
        at_limit.push(b' ');
        let outcomes = parse_message(SUBJECT, &at_limit);
        assert!(matches!(
            &outcomes[..],
            [Outcome::Rejected(Rejected {
                reason: R::TooLarge { len },
                ..
            })] if *len == MAX_MESSAGE_BYTES + 1
        ));
        assert_eq!(outcomes[0].original().len(), MAX_MESSAGE_BYTES + 1);
    }

    #[test]
    fn reading_count_limit_is_inclusive_and_refuses_the_whole_message() {
        let array = |n: usize| {
            let elements: Vec<String> = (0..n).map(|i| reading_json(&format!("r{i}"))).collect();
            format!("[{}]", elements.join(","))
        };
        let outcomes = parse_message(SUBJECT, array(MAX_READINGS_PER_MESSAGE).as_bytes());
        assert_eq!(outcomes.len(), MAX_READINGS_PER_MESSAGE);
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Reading(_))));
        assert_eq!(
            reason(SUBJECT, &array(MAX_READINGS_PER_MESSAGE + 1)),
            R::TooManyReadings { count: 1001 }
        );
    }

    #[test]
    fn missing_fields_are_named_with_what_was_expected() {
        assert_eq!(
            field_reason(r#""device":"thermo-17","metric":"t","value":1,"ts":"2026-11-20T10:00:00Z""#)
                .to_string(),
            "field `id` is required: expected a string of 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        );
        for (fields, missing) in [
            (
                r#""id":"r","metric":"t","value":1,"ts":"2026-11-20T10:00:00Z""#,
                "device",
            ),
            (
                r#""id":"r","device":"thermo-17","value":1,"ts":"2026-11-20T10:00:00Z""#,
                "metric",
            ),
            (
                r#""id":"r","device":"thermo-17","metric":"t","ts":"2026-11-20T10:00:00Z""#,
                "value",
            ),
            (
                r#""id":"r","device":"thermo-17","metric":"t","value":1"#,
                "ts",
            ),
        ] {
            let reason = field_reason(fields);
            assert!(
                matches!(reason, R::Field(ReadingError::MissingField { field, .. }) if field == missing),
                "{fields}: {reason:?}"
            );
            assert_eq!(reason.code(), "missing_field");
        }
    }

    #[test]
    fn wrong_types_are_named_with_what_arrived() {
        let base = |field: &str, value: &str| {
            let mut object: Map<String, Value> = serde_json::from_str(&reading_json("r")).unwrap();
            object.insert(field.to_owned(), serde_json::from_str(value).unwrap());
            reason(SUBJECT, &Value::Object(object).to_string())
        };
        assert_eq!(
            base("value", r#""21.4""#).to_string(),
            r#"field `value` must be a finite number, got "21.4""#
        );
        assert_eq!(
            base("ts", "null").to_string(),
            r#"field `ts` must be an RFC 3339 timestamp string such as "2026-11-20T10:00:00Z", got null"#
        );
        assert_eq!(
            base("id", "17").to_string(),
            "field `id` must be a string of 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-', got 17"
        );
        assert!(base("device", "[]")
            .to_string()
            .starts_with("field `device` must be a string"));
        assert!(base("metric", "{}")
            .to_string()
            .starts_with("field `metric` must be a string"));
        for (field, value) in [("value", "true"), ("ts", "1764000000"), ("id", "null")] {
            assert_eq!(base(field, value).code(), "invalid_field", "{field}");
        }
    }

    #[test]
    fn bad_ids_devices_metrics_and_timestamps_are_refused() {
        let with = |field: &str, text: &str| {
            let mut object: Map<String, Value> = serde_json::from_str(&reading_json("r")).unwrap();
            object.insert(field.to_owned(), Value::String(text.to_owned()));
            parse_message(SUBJECT, Value::Object(object).to_string().as_bytes())
        };
        let reason_of = |outcomes: Vec<Outcome>| match &outcomes[..] {
            [Outcome::Rejected(rejected)] => rejected.reason.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason_of(with("id", ""))
            .to_string()
            .starts_with("field `id` is invalid: reading id is empty"));
        assert!(matches!(reason_of(with("id", "a/b")), R::BadId(_)));
        assert!(reason_of(with("device", "a b"))
            .to_string()
            .starts_with("field `device` is invalid: device id \"a b\" has ' '"));
        assert_eq!(
            reason_of(with("metric", "Temp")).to_string(),
            r#"field `metric` must be a string of 1 to 64 characters of a-z, 0-9 and '_', got "Temp""#
        );
        // ISO 8601 without an offset is not RFC 3339.
        for ts in ["2026-11-20", "2026-11-20T10:00:00", "yesterday"] {
            assert_eq!(
                reason_of(with("ts", ts)).to_string(),
                format!(
                    r#"field `ts` must be an RFC 3339 timestamp string such as "2026-11-20T10:00:00Z", got "{ts}""#
                )
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let payload = reading_json("r").replace(r#""ts""#, r#""tss""#);
        assert_eq!(
            reason(SUBJECT, &payload).to_string(),
            "unknown field `tss`; a reading accepts only `id`, `device`, `metric`, `value`, `ts`"
        );
    }

    #[test]
    fn the_readings_device_must_match_the_subjects() {
        let payload = reading_json("r");
        let reason = reason("neongrid.readings.thermo-18", &payload);
        assert_eq!(
            reason.to_string(),
            "field `device` is \"thermo-17\" but the message was sent on the subject of device \
             \"thermo-18\"; expected \"thermo-18\""
        );
        assert_eq!(reason.code(), "device_mismatch");
    }

    #[test]
    fn a_subject_naming_no_device_stores_nothing() {
        let refused = reason("neongrid.ingest", &reading_json("r"));
        assert_eq!(refused.code(), "unordered_subject");
        assert_eq!(
            refused.to_string(),
            "reading of device \"thermo-17\" came on subject \"neongrid.ingest\", which names no \
             device; expected it on neongrid.readings.thermo-17, where a device's readings are \
             stored in order"
        );
        assert!(!refused.is_retryable() && !refused.is_whole_message());
        // Its own problems come first, so a sender learns what to fix.
        assert_eq!(
            reason("neongrid.ingest", r#"{"id":"r"}"#).code(),
            "missing_field"
        );
    }

    #[test]
    fn an_invalid_subject_device_refuses_the_whole_message() {
        let payload = format!("[{}]", reading_json("r"));
        let reason = reason("neongrid.readings.a*b", &payload);
        assert_eq!(reason.code(), "bad_subject");
        assert!(reason.to_string().starts_with(
            "subject \"neongrid.readings.a*b\" does not name a valid device (device id"
        ));
    }

    #[test]
    fn unrepresentable_numbers_refuse_only_their_reading() {
        let bad = reading_json("big").replace("21.4", "1e999");
        let huge = reading_json("huge").replace("21.4", "-1e14");
        let payload = format!("[{},{bad},{huge}]", reading_json("ok"));
        let outcomes = parse_message(SUBJECT, payload.as_bytes());
        assert_eq!(outcomes.len(), 3);
        assert!(matches!(outcomes[0], Outcome::Reading(_)));
        let Outcome::Rejected(rejected) = &outcomes[1] else {
            panic!("1e999 accepted");
        };
        assert_eq!(rejected.reason.code(), "unreadable_reading");
        assert_eq!(rejected.original, bad.as_bytes());
        let Outcome::Rejected(rejected) = &outcomes[2] else {
            panic!("-1e14 accepted");
        };
        assert_eq!(rejected.reason.code(), "value_out_of_range");
        assert!(rejected.reason.to_string().starts_with(
            "field `value`: value -100000000000000 is too large for exact statistics"
        ));
    }

    #[test]
    fn stored_form_round_trips_and_is_validated() {
        let Outcome::Reading(parsed) = one(SUBJECT, &reading_json("r-1")) else {
            panic!("rejected");
        };
        let stored = parsed.reading.to_json();
        let back: IngestReading = serde_json::from_slice(&stored).unwrap();
        assert_eq!(back, parsed.reading);
        assert_eq!(back.micros(), parsed.reading.micros());
        let too_big = reading_json("r").replace("21.4", "1e15");
        assert!(serde_json::from_str::<IngestReading>(&too_big).is_err());
        let bad_id = reading_json("a/b");
        assert!(serde_json::from_str::<IngestReading>(&bad_id).is_err());
    }

    /// A small deterministic generator, so the property test needs no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// An element, and whether it is a valid reading for `SUBJECT`.
    fn random_element(rng: &mut XorShift, serial: usize) -> (String, bool) {
        let id = format!("r{serial}");
        let valid = reading_json(&id);
        match rng.below(14) {
            0..=2 => (valid, true),
            3 => (
                valid.replace("21.4", &format!("-{}.{}", rng.below(1000), rng.below(1000))),
                true,
            ),
            4 => (valid.replace(r#","ts":"2026-11-20T10:00:00Z""#, ""), false),
            5 => (valid.replace("21.4", r#""x""#), false),
            6 => (valid.replace("21.4", "1e999"), false),
            7 => (valid.replace("thermo-17", "thermo-99"), false),
            8 => (valid.replace(&id, "bad id"), false),
            9 => (
                ["1", "null", "\"s\"", "true", "[]", "[{}]"][rng.below(6)].to_owned(),
                false,
            ),
            10 => ("{}".to_owned(), false),
            11 => (
                valid.replace("\"id\"", "\"extra\":\"\\u00e9\\n\",\"id\""),
                false,
            ),
            12 => (
                valid.replace("2026-11-20T10:00:00Z", "2026-13-01T00:00:00Z"),
                false,
            ),
            _ => (valid.replace("21.4", "2.5e13"), false),
        }
    }

    #[test]
    fn every_element_of_a_mixed_array_maps_to_exactly_one_outcome() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let separators = ["", " ", "\n", "\t ", "\r\n  "];
        for _ in 0..300 {
            let len = 1 + rng.below(40);
            let mut payload = String::from(separators[rng.below(5)]);
            payload.push('[');
            let mut expected = Vec::new();
            for serial in 0..len {
                if serial > 0 {
                    payload.push(',');
                }
                let (element, valid) = random_element(&mut rng, serial);
                payload.push_str(separators[rng.below(5)]);
                payload.push_str(&element);
                payload.push_str(separators[rng.below(5)]);
                expected.push((element, valid));
            }
            payload.push(']');

            let outcomes = parse_message(SUBJECT, payload.as_bytes());
            assert_eq!(outcomes.len(), expected.len(), "{payload}");
            for (index, (outcome, (element, valid))) in outcomes.iter().zip(&expected).enumerate() {
                assert_eq!(outcome.index(), Some(index), "{payload}");
                assert_eq!(outcome.original(), element.as_bytes(), "{payload}");
                assert_eq!(
                    matches!(outcome, Outcome::Reading(_)),
                    *valid,
                    "element {index} {element}: {outcome:?}"
                );
            }
        }
    }
}
