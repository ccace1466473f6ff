//! The JSON bodies the API answers with. They derive `Deserialize` too, so that
//! tests and clients can read them back with the same types.

use serde::{Deserialize, Serialize};

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

/// `{"error":"<what is wrong and what was expected>"}`, the body of every 4xx
/// and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// Ingest's reply summary, when every posted reading was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_shape() {
        assert_eq!(
            serde_json::to_string(&Health::ok()).unwrap(),
            r#"{"status":"ok"}"#
        );
    }

    #[test]
    fn error_shape() {
        let body = ErrorBody {
            error: "field `value` must be a finite number, got \"abc\"".into(),
            summary: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"field `value` must be a finite number, got \"abc\""}"#
        );
    }
}
