//! The answer to a message's reply-to:
//! `{"accepted":2,"rejected":1,"duplicates":0,"alerts":1,"rejections":[{"index":2,"code":"out_of_range","reason":"…"}]}`.

use serde::{Deserialize, Serialize};

/// What became of a message's readings.
///
/// Every outcome of [`parse_message`](crate::parse_message) is counted exactly
/// once in `accepted`, `rejected` or `duplicates`, so a message rejected as a
/// whole counts as one rejection. `alerts` counts the alerts published, a
/// subset of `accepted`: a duplicate raises no alert again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Readings stored for the first time.
    pub accepted: u64,
    /// Readings (or whole messages) refused, each published on `neongrid.rejected`.
    pub rejected: u64,
    /// Valid readings whose id the device had already sent: not stored again.
    pub duplicates: u64,
    pub alerts: u64,
    /// Why each rejected reading was refused, in message order, so that a
    /// sender using request/reply (the HTTP API's `POST /api/readings`) learns
    /// the reason without listening on `neongrid.rejected`.
    #[serde(default)]
    pub rejections: Vec<RejectionNote>,
}

/// The reply's short form of a [`RejectedMessage`](crate::RejectedMessage):
/// everything but the subject and the original bytes, which the sender has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionNote {
    /// Position in the message's array; absent for a single-object message and
    /// for a message rejected as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub code: String,
    pub reason: String,
    pub retryable: bool,
}

/// What happened to one outcome, for [`Summary::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Stored { alerted: bool },
    Duplicate,
    Rejected(RejectionNote),
}

impl Summary {
    pub fn record(&mut self, applied: Applied) {
        match applied {
            Applied::Stored { alerted } => {
                self.accepted += 1;
                self.alerts += u64::from(alerted);
            }
            Applied::Duplicate => self.duplicates += 1,
            Applied::Rejected(note) => {
                self.rejected += 1;
                self.rejections.push(note);
            }
        }
    }

    /// Outcomes counted so far.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.duplicates
    }

    /// `(accepted, rejected, duplicates, alerts)`, for comparing counts alone.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (self.accepted, self.rejected, self.duplicates, self.alerts)
    }

    /// Why the message should be delivered again, when some reading was refused
    /// only because it could not be judged or stored yet: its handler reports
    /// this as its error, and a replay stores what is still missing.
    pub fn retry_reason(&self) -> Option<String> {
        let retryable: Vec<&RejectionNote> =
            self.rejections.iter().filter(|n| n.retryable).collect();
        let first = retryable.first()?;
        Some(format!(
            "{} of {} readings could not be judged or stored yet (first: {}); expected a \
             delivery of the message again once that is fixed",
            retryable.len(),
            self.total(),
            first.reason
        ))
    }

    /// The bytes to answer the reply-to with.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(index: Option<usize>, code: &str) -> RejectionNote {
        RejectionNote {
            index,
            code: code.into(),
            reason: format!("{code} because"),
            retryable: false,
        }
    }

    #[test]
    fn counts_each_outcome_once_and_serializes_as_documented() {
        let mut summary = Summary::default();
        for applied in [
            Applied::Stored { alerted: true },
            Applied::Stored { alerted: false },
            Applied::Rejected(note(Some(2), "out_of_range")),
            Applied::Duplicate,
        ] {
            summary.record(applied);
        }
        assert_eq!(summary.total(), 4);
        assert_eq!(summary.counts(), (2, 1, 1, 1));
        let json = String::from_utf8(summary.to_bytes()).unwrap();
        assert_eq!(
            json,
            r#"{"accepted":2,"rejected":1,"duplicates":1,"alerts":1,"rejections":[{"index":2,"code":"out_of_range","reason":"out_of_range because","retryable":false}]}"#
        );
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), summary);
        assert_eq!(
            Summary::default().to_bytes(),
            br#"{"accepted":0,"rejected":0,"duplicates":0,"alerts":0,"rejections":[]}"#
        );
    }

    #[test]
    fn only_a_retryable_refusal_asks_for_the_message_again() {
        let mut summary = Summary::default();
        summary.record(Applied::Stored { alerted: false });
        summary.record(Applied::Rejected(note(Some(1), "out_of_range")));
        assert_eq!(summary.retry_reason(), None);
        let mut unjudged = note(Some(2), "validator_unavailable");
        unjudged.retryable = true;
        summary.record(Applied::Rejected(unjudged));
        assert_eq!(
            summary.retry_reason().as_deref(),
            Some(
                "1 of 3 readings could not be judged or stored yet (first: validator_unavailable \
                 because); expected a delivery of the message again once that is fixed"
            )
        );
    }

    #[test]
    fn a_whole_message_rejection_has_no_index() {
        let mut summary = Summary::default();
        summary.record(Applied::Rejected(note(None, "not_json")));
        let json: serde_json::Value = serde_json::from_slice(&summary.to_bytes()).unwrap();
        assert_eq!(json["rejections"][0].get("index"), None);
        assert_eq!(json["rejections"][0]["code"], "not_json");
    }
}
