//! The JSON bodies the API answers with. They derive `Deserialize` too, so that
//! tests and clients can read them back with the same types.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::reading::Reading;

/// The `status` of a healthy component.
pub const STATUS_OK: &str = "ok";

/// `{"status":"ok"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

impl Health {
    pub fn ok() -> Self {
        Self {
            status: STATUS_OK.to_owned(),
        }
    }
}

/// `{"device":"<id>","count":<n>,"latest":{"metric":…,"value":…}}`, the answer
/// both to a posted reading and to a device query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub device: DeviceId,
    /// Readings received from the device, including the latest.
    pub count: u64,
    pub latest: Reading,
}

/// `{"error":"<what is wrong and what was expected>"}`, the body of every 4xx
/// and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::parse_reading_body;

    #[test]
    fn health_shape() {
        assert_eq!(
            serde_json::to_string(&Health::ok()).unwrap(),
            r#"{"status":"ok"}"#
        );
    }

    #[test]
    fn summary_shape() {
        let summary = DeviceSummary {
            device: DeviceId::parse("sensor-1").unwrap(),
            count: 3,
            latest: parse_reading_body(br#"{"metric":"temperature_c","value":21.4}"#).unwrap(),
        };
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(
            json,
            r#"{"device":"sensor-1","count":3,"latest":{"metric":"temperature_c","value":21.4}}"#
        );
        assert_eq!(
            serde_json::from_str::<DeviceSummary>(&json).unwrap(),
            summary
        );
    }

    #[test]
    fn error_shape() {
        let body = ErrorBody {
            error: "field `value` must be a finite number, got \"abc\"".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"field `value` must be a finite number, got \"abc\""}"#
        );
    }
}
