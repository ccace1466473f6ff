//! The message published on `neongrid.alerts.<device>` when a stored reading
//! lies outside its metric's alert band:
//!
//! ```json
//! {"device":"thermo-17","metric":"temperature_c","value":50.0,"reading_id":"r-1",
//!  "ts":"2026-11-20T10:00:00Z","side":"high","bound":45.0,
//!  "message":"metric \"temperature_c\" value 50 is above its alert band -10..45 (rule `metric.temperature_c`)"}
//! ```

use serde::{Deserialize, Serialize};

use telemetry_domain::{DeviceId, MetricName, Timestamp};

use crate::message::IngestReading;
use crate::reading_id::ReadingId;

/// The side of the alert band the value lies beyond (the WIT `side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Below the band's lower bound.
    Low,
    /// Above the band's upper bound.
    High,
}

/// What the validator says about an alerting reading (the WIT `alert`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertVerdict {
    pub side: Side,
    /// The band bound crossed.
    pub bound: f64,
    /// The validator's description, passed on unchanged.
    pub message: String,
}

/// An alert as published; see the module docs for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub device: DeviceId,
    pub metric: MetricName,
    pub value: f64,
    /// The `id` of the reading that raised the alert, to find it in the history.
    pub reading_id: ReadingId,
    pub ts: Timestamp,
    pub side: Side,
    pub bound: f64,
    pub message: String,
}

impl AlertMessage {
    pub fn new(reading: &IngestReading, verdict: &AlertVerdict) -> Self {
        Self {
            device: reading.device().clone(),
            metric: reading.metric().clone(),
            value: reading.value(),
            reading_id: reading.id().clone(),
            ts: reading.ts().clone(),
            side: verdict.side,
            bound: verdict.bound,
            message: verdict.message.clone(),
        }
    }

    /// The bytes to publish on [`alert_subject`](crate::alert_subject).
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_message, Outcome};

    #[test]
    fn alert_has_the_documented_shape() {
        let payload = br#"{"id":"r-1","device":"thermo-17","metric":"temperature_c","value":50,"ts":"2026-11-20T10:00:00Z"}"#;
        let Outcome::Reading(parsed) = &parse_message("neongrid.readings.thermo-17", payload)[0]
        else {
            panic!("rejected");
        };
        let verdict = AlertVerdict {
            side: Side::High,
            bound: 45.0,
            message: "metric \"temperature_c\" value 50 is above its alert band -10..45 (rule `metric.temperature_c`)".into(),
        };
        let alert = AlertMessage::new(&parsed.reading, &verdict);
        let json = String::from_utf8(alert.to_bytes()).unwrap();
        assert_eq!(
            json,
            r#"{"device":"thermo-17","metric":"temperature_c","value":50.0,"reading_id":"r-1","ts":"2026-11-20T10:00:00Z","side":"high","bound":45.0,"message":"metric \"temperature_c\" value 50 is above its alert band -10..45 (rule `metric.temperature_c`)"}"#
        );
        assert_eq!(serde_json::from_str::<AlertMessage>(&json).unwrap(), alert);
        assert_eq!(serde_json::to_string(&Side::Low).unwrap(), r#""low""#);
    }
}
