//! The message published on `neongrid.rejected` for every reading, or whole
//! message, that was not stored.
//!
//! ```json
//! {"subject":"neongrid.readings.thermo-17","index":2,"code":"missing_field",
//!  "reason":"field `ts` is required: expected an RFC 3339 timestamp string such as \"2026-11-20T10:00:00Z\"",
//!  "retryable":false,"original_len":71,
//!  "original":"{\"id\":\"r-3\",\"device\":\"thermo-17\",\"metric\":\"temperature_c\",\"value\":21.4}"}
//! ```
//!
//! The original travels in exactly one of two fields: `original`, the bytes as
//! a JSON string, when they are UTF-8 and that is no longer than base64; or
//! `original_base64` (standard alphabet, padded) otherwise. Either decodes back
//! to the exact bytes received: a JSON string holds any UTF-8 text exactly, and
//! choosing the shorter form caps the message at about 4/3 of the original,
//! where escaping alone could make control characters six times longer. Real
//! readings are UTF-8 and come out as readable text.
//!
//! Only an original over [`MAX_CARRIED_ORIGINAL_BYTES`] (a message refused as
//! too large) is cut to its first [`MAX_CARRIED_ORIGINAL_BYTES`] bytes and
//! marked `"truncated":true`, so the rejection itself stays publishable;
//! `original_len` always gives the full length.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::message::{Rejected, MAX_MESSAGE_BYTES};
use crate::plan::Publish;
use crate::reason::RejectReason;
use crate::subject::REJECTED_SUBJECT;
use crate::summary::RejectionNote;

/// Most original bytes a rejection carries: every message ingest accepts for
/// parsing fits whole.
pub const MAX_CARRIED_ORIGINAL_BYTES: usize = MAX_MESSAGE_BYTES;

/// A rejection as published; see the module docs for the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedMessage {
    /// The subject the message arrived on.
    pub subject: String,
    /// Position in the message's array; absent for a single-object message and
    /// for a message rejected as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// [`RejectReason::code`].
    pub code: String,
    /// What is wrong and what was expected instead.
    pub reason: String,
    /// [`RejectReason::is_retryable`]: the reading was not judged, and
    /// republishing it once the validator works again can store it.
    pub retryable: bool,
    /// Length in bytes of the original as received.
    pub original_len: usize,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_base64: Option<String>,
}

/// Why a [`RejectedMessage`]'s original could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OriginalError {
    #[error("rejected message has neither `original` nor `original_base64`; expected exactly one")]
    Missing,
    #[error("rejected message has both `original` and `original_base64`; expected exactly one")]
    Both,
    #[error("`original_base64` is not valid standard base64 ({detail})")]
    BadBase64 { detail: String },
}

impl RejectedMessage {
    /// The message to publish on [`REJECTED_SUBJECT`].
    pub fn publish(&self) -> Publish {
        Publish {
            subject: REJECTED_SUBJECT.to_owned(),
            body: self.to_bytes(),
        }
    }

    /// The rejection as the reply-to [`Summary`](crate::Summary) lists it.
    pub fn note(&self) -> RejectionNote {
        RejectionNote {
            index: self.index,
            code: self.code.clone(),
            reason: self.reason.clone(),
            retryable: self.retryable,
        }
    }

    pub fn new(
        subject: &str,
        index: Option<usize>,
        reason: &RejectReason,
        original: &[u8],
    ) -> Self {
        let truncated = original.len() > MAX_CARRIED_ORIGINAL_BYTES;
        let carried = &original[..original.len().min(MAX_CARRIED_ORIGINAL_BYTES)];
        let (text, base64) = encode_original(carried);
        Self {
            subject: subject.to_owned(),
            index,
            code: reason.code().to_owned(),
            reason: reason.to_string(),
            retryable: reason.is_retryable(),
            original_len: original.len(),
            truncated,
            original: text,
            original_base64: base64,
        }
    }

    /// The rejection of a reading or message that [`parse_message`](crate::parse_message) refused.
    pub fn from_rejected(subject: &str, rejected: &Rejected) -> Self {
        Self::new(
            subject,
            rejected.index,
            &rejected.reason,
            &rejected.original,
        )
    }

    /// The bytes to publish on [`REJECTED_SUBJECT`].
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::encode(self)
    }

    /// The original bytes as carried: all of them unless `truncated`.
    pub fn original_bytes(&self) -> Result<Vec<u8>, OriginalError> {
        match (&self.original, &self.original_base64) {
            (Some(text), None) => Ok(text.clone().into_bytes()),
            (None, Some(encoded)) => {
                STANDARD
                    .decode(encoded)
                    .map_err(|err| OriginalError::BadBase64 {
                        detail: err.to_string(),
                    })
            }
            (None, None) => Err(OriginalError::Missing),
            (Some(_), Some(_)) => Err(OriginalError::Both),
        }
    }
}

/// `(original, original_base64)`, exactly one of them `Some`.
fn encode_original(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let base64_len = bytes.len().div_ceil(3) * 4;
    if let Ok(text) = std::str::from_utf8(bytes) {
        if escaped_len(text) <= base64_len {
            return (Some(text.to_owned()), None);
        }
    }
    (None, Some(STANDARD.encode(bytes)))
}

/// Length of `text` inside a JSON string as serde_json writes it: `"` and `\`
/// and the short-escaped controls take 2 bytes, other controls 6 (`\u001f`).
fn escaped_len(text: &str) -> usize {
    text.chars()
        .map(|ch| match ch {
            '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
            '\u{0}'..='\u{1f}' => 6,
            other => other.len_utf8(),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_message;
    use crate::Outcome;

    fn reason() -> RejectReason {
        RejectReason::EmptyArray
    }

    fn round_trip(original: &[u8]) -> RejectedMessage {
        let message = RejectedMessage::new("neongrid.readings.d", None, &reason(), original);
        let bytes = message.to_bytes();
        let back: RejectedMessage = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, message);
        assert_eq!(back.original_bytes().unwrap(), original, "{original:?}");
        assert_eq!(back.original_len, original.len());
        assert!(!back.truncated);
        message
    }

    #[test]
    fn readable_originals_travel_as_text() {
        let original = br#"{"id":"r-3","device":"thermo-17","metric":"t","value":21.4}"#;
        let message = round_trip(original);
        assert_eq!(
            message.original.as_deref().map(str::as_bytes),
            Some(&original[..])
        );
        assert_eq!(message.original_base64, None);
        let json = String::from_utf8(message.to_bytes()).unwrap();
        assert!(json.ends_with(r#""original":"{\"id\":\"r-3\",\"device\":\"thermo-17\",\"metric\":\"t\",\"value\":21.4}"}"#), "{json}");
    }

    #[test]
    fn every_byte_pattern_round_trips_exactly() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b" [1, 2 ]\n".to_vec(),
            "é ünïcödé 🙂 \u{2028}".as_bytes().to_vec(),
            b"tab\tnewline\nquote\"backslash\\".to_vec(),
            vec![0xff, 0xfe, 0x00, b'{'],
            (0u8..=255).collect(),
            vec![0u8; 90],
            b"\x01\x02\x03\x04\x05".to_vec(),
        ];
        for original in cases {
            round_trip(&original);
        }
    }

    #[test]
    fn the_shorter_encoding_is_chosen() {
        assert!(round_trip(b"\xff\xfe").original_base64.is_some());
        // Control characters would escape to six bytes each; base64 is shorter.
        let controls = round_trip(&[1u8; 30]);
        assert!(controls.original.is_none());
        assert_eq!(controls.original_base64.as_deref().map(str::len), Some(40));
        assert!(round_trip(b"plain text").original.is_some());
        for text in ["\"\"", "a\u{1}b", "\\\\\\", "\n\t\r\u{8}\u{c}\u{1f}\u{7f}"] {
            assert_eq!(
                escaped_len(text),
                serde_json::to_string(text).unwrap().len() - 2,
                "{text:?}"
            );
        }
    }

    #[test]
    fn oversized_originals_are_cut_and_marked() {
        let original = vec![b'x'; MAX_CARRIED_ORIGINAL_BYTES + 10];
        let message = RejectedMessage::new("s", None, &reason(), &original);
        assert!(message.truncated);
        assert_eq!(message.original_len, MAX_CARRIED_ORIGINAL_BYTES + 10);
        assert_eq!(
            message.original_bytes().unwrap(),
            &original[..MAX_CARRIED_ORIGINAL_BYTES]
        );
        let json = String::from_utf8(message.to_bytes()).unwrap();
        assert!(json.contains(r#""truncated":true"#));
        // Whatever the bytes, the published rejection stays well under 1 MiB.
        let worst = vec![1u8; MAX_CARRIED_ORIGINAL_BYTES * 4];
        let message = RejectedMessage::new("s", None, &reason(), &worst);
        assert!(message.to_bytes().len() < 400 * 1024);
    }

    #[test]
    fn carries_subject_index_code_reason_and_retryability() {
        let payload = br#"[{"id":"r-3","device":"thermo-17","metric":"t","value":21.4}]"#;
        let outcomes = parse_message("neongrid.readings.thermo-17", payload);
        let Outcome::Rejected(rejected) = &outcomes[0] else {
            panic!("accepted");
        };
        let message = RejectedMessage::from_rejected("neongrid.readings.thermo-17", rejected);
        let json: serde_json::Value = serde_json::from_slice(&message.to_bytes()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "subject": "neongrid.readings.thermo-17",
                "index": 0,
                "code": "missing_field",
                "reason": "field `ts` is required: expected an RFC 3339 timestamp string such as \"2026-11-20T10:00:00Z\"",
                "retryable": false,
                "original_len": 59,
                "original": r#"{"id":"r-3","device":"thermo-17","metric":"t","value":21.4}"#,
            })
        );
        let whole = RejectedMessage::new("s", None, &RejectReason::Empty, b"");
        let json = String::from_utf8(whole.to_bytes()).unwrap();
        assert!(!json.contains("index"), "{json}");
        assert!(!json.contains("truncated"), "{json}");
    }

    #[test]
    fn a_malformed_rejection_says_why_its_original_is_unreadable() {
        let mut message = RejectedMessage::new("s", None, &reason(), b"abc");
        message.original_base64 = Some("!!".into());
        assert_eq!(message.original_bytes(), Err(OriginalError::Both));
        message.original = None;
        assert!(matches!(
            message.original_bytes(),
            Err(OriginalError::BadBase64 { .. })
        ));
        message.original_base64 = None;
        assert_eq!(message.original_bytes(), Err(OriginalError::Missing));
    }
}
