//! The answer to a message's reply-to: `{"accepted":2,"rejected":1,"duplicates":0,"alerts":1}`.

use serde::{Deserialize, Serialize};

/// What became of a message's readings.
///
/// Every outcome of [`parse_message`](crate::parse_message) is counted exactly
/// once in `accepted`, `rejected` or `duplicates`, so a message rejected as a
/// whole counts as one rejection. `alerts` counts the alerts published, a
/// subset of `accepted`: a duplicate raises no alert again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Readings stored for the first time.
    pub accepted: u64,
    /// Readings (or whole messages) refused, each published on `neongrid.rejected`.
    pub rejected: u64,
    /// Valid readings whose id the device had already sent: not stored again.
    pub duplicates: u64,
    pub alerts: u64,
}

/// What happened to one outcome, for [`Summary::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Stored { alerted: bool },
    Duplicate,
    Rejected,
}

impl Summary {
    pub fn record(&mut self, applied: Applied) {
        match applied {
            Applied::Stored { alerted } => {
                self.accepted += 1;
                self.alerts += u64::from(alerted);
            }
            Applied::Duplicate => self.duplicates += 1,
            Applied::Rejected => self.rejected += 1,
        }
    }

    /// Outcomes counted so far.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.duplicates
    }

    /// The bytes to answer the reply-to with.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_outcome_once_and_serializes_as_documented() {
        let mut summary = Summary::default();
        for applied in [
            Applied::Stored { alerted: true },
            Applied::Stored { alerted: false },
            Applied::Rejected,
            Applied::Duplicate,
        ] {
            summary.record(applied);
        }
        assert_eq!(summary.total(), 4);
        let json = String::from_utf8(summary.to_bytes()).unwrap();
        assert_eq!(
            json,
            r#"{"accepted":2,"rejected":1,"duplicates":1,"alerts":1}"#
        );
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), summary);
        assert_eq!(
            Summary::default().to_bytes(),
            br#"{"accepted":0,"rejected":0,"duplicates":0,"alerts":0}"#
        );
    }
}
