//! Every way a request can fail, with the HTTP status each one maps to.

use std::fmt;

use thiserror::Error;

use crate::device::{DeviceId, DeviceIdError};
use crate::excerpt::quoted;
use crate::reading::ReadingError;
use crate::responses::ErrorBody;
use crate::routes::ROUTES_SUMMARY;
use crate::service::StoreError;

/// A failed request. Its `Display` is the `error` text sent to the client, so
/// every message says what was wrong and what was expected instead.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ApiError {
    #[error("no route for {method} {}; the API serves {}", quoted(.path), ROUTES_SUMMARY)]
    NoRoute { method: String, path: String },
    #[error("method {method} is not allowed on {pattern}; expected {allow}")]
    MethodNotAllowed {
        method: String,
        /// The route as documented, e.g. `/api/devices/{id}`.
        pattern: &'static str,
        /// The value of the `Allow` header to send back.
        allow: &'static str,
    },
    #[error(transparent)]
    BadDeviceId(#[from] DeviceIdError),
    #[error(transparent)]
    BadReading(#[from] ReadingError),
    #[error("request body is larger than {limit} bytes; expected a single reading of at most {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body could not be read ({detail}); expected a complete body")]
    BodyUnreadable { detail: String },
    #[error("device \"{device}\" has no readings yet; expected a device that has posted to /api/devices/{device}/readings")]
    DeviceNotFound { device: DeviceId },
    #[error("key-value store failed to {operation}: {source}")]
    Store {
        operation: StoreOperation,
        source: StoreError,
    },
    #[error("stored value at key `{key}` is unreadable ({detail}); expected a reading stored by this API")]
    CorruptData { key: String, detail: String },
    #[error("{what} could not be encoded as JSON ({detail})")]
    Encode { what: &'static str, detail: String },
}

/// The key-value operation that failed, named in the error so an operator can
/// tell a missing link or bucket from a failing write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOperation {
    Open { bucket: String },
    Get { key: String },
    Set { key: String },
    Increment { key: String },
}

impl fmt::Display for StoreOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { bucket } => write!(f, "open bucket \"{bucket}\""),
            Self::Get { key } => write!(f, "get key `{key}`"),
            Self::Set { key } => write!(f, "set key `{key}`"),
            Self::Increment { key } => write!(f, "increment key `{key}`"),
        }
    }
}

pub const STATUS_BAD_REQUEST: u16 = 400;
pub const STATUS_NOT_FOUND: u16 = 404;
pub const STATUS_METHOD_NOT_ALLOWED: u16 = 405;
pub const STATUS_PAYLOAD_TOO_LARGE: u16 = 413;
pub const STATUS_UNPROCESSABLE: u16 = 422;
pub const STATUS_INTERNAL_ERROR: u16 = 500;
pub const STATUS_UNAVAILABLE: u16 = 503;

impl ApiError {
    /// The HTTP status to answer with.
    ///
    /// A body that isn't a JSON object at all is a malformed request (400); a
    /// JSON object with missing, unknown or out-of-rule fields is well-formed
    /// but unusable (422). Store failures are 503 because they are usually a
    /// missing link or an unreachable provider, which retrying later can fix;
    /// unreadable stored data is our own fault (500).
    pub fn status(&self) -> u16 {
        match self {
            Self::NoRoute { .. } | Self::DeviceNotFound { .. } => STATUS_NOT_FOUND,
            Self::MethodNotAllowed { .. } => STATUS_METHOD_NOT_ALLOWED,
            Self::BadDeviceId(_) | Self::BodyUnreadable { .. } => STATUS_BAD_REQUEST,
            Self::BadReading(
                ReadingError::EmptyBody
                | ReadingError::InvalidJson { .. }
                | ReadingError::NotAnObject { .. },
            ) => STATUS_BAD_REQUEST,
            Self::BadReading(
                ReadingError::UnknownField { .. }
                | ReadingError::MissingField { .. }
                | ReadingError::Invalid { .. },
            ) => STATUS_UNPROCESSABLE,
            Self::BodyTooLarge { .. } => STATUS_PAYLOAD_TOO_LARGE,
            Self::Store { .. } => STATUS_UNAVAILABLE,
            Self::CorruptData { .. } | Self::Encode { .. } => STATUS_INTERNAL_ERROR,
        }
    }

    /// The `Allow` header value that must accompany a 405.
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            Self::MethodNotAllowed { allow, .. } => Some(allow),
            _ => None,
        }
    }

    /// Whether the failure is the server's, worth logging as an error rather
    /// than as a client mistake.
    pub fn is_server_error(&self) -> bool {
        self.status() >= STATUS_INTERNAL_ERROR
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::parse_reading_body;

    fn reading_error(body: &str) -> ApiError {
        parse_reading_body(body.as_bytes()).unwrap_err().into()
    }

    #[test]
    fn malformed_bodies_are_400_and_unusable_fields_422() {
        assert_eq!(reading_error("").status(), 400);
        assert_eq!(reading_error("{").status(), 400);
        assert_eq!(reading_error("[]").status(), 400);
        assert_eq!(reading_error(r#"{"value":1}"#).status(), 422);
        assert_eq!(reading_error(r#"{"metric":"t","value":"x"}"#).status(), 422);
        assert_eq!(
            reading_error(r#"{"metric":"t","value":1,"x":1}"#).status(),
            422
        );
    }

    #[test]
    fn device_and_transport_errors_map_to_their_statuses() {
        let bad_id: ApiError = DeviceId::parse("a b").unwrap_err().into();
        assert_eq!(bad_id.status(), 400);
        assert_eq!(ApiError::BodyTooLarge { limit: 1 }.status(), 413);
        let missing = ApiError::DeviceNotFound {
            device: DeviceId::parse("d").unwrap(),
        };
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.to_string(),
            "device \"d\" has no readings yet; expected a device that has posted to /api/devices/d/readings"
        );
    }

    #[test]
    fn store_errors_are_503_and_name_the_operation() {
        let err = ApiError::Store {
            operation: StoreOperation::Increment {
                key: "device/d/count".into(),
            },
            source: StoreError::new("connection refused"),
        };
        assert_eq!(err.status(), 503);
        assert!(err.is_server_error());
        assert_eq!(
            err.to_string(),
            "key-value store failed to increment key `device/d/count`: connection refused"
        );
        let open = ApiError::Store {
            operation: StoreOperation::Open {
                bucket: "neongrid".into(),
            },
            source: StoreError::new("no such store"),
        };
        assert_eq!(
            open.to_string(),
            "key-value store failed to open bucket \"neongrid\": no such store"
        );
    }

    #[test]
    fn only_405_carries_an_allow_header() {
        let err = ApiError::MethodNotAllowed {
            method: "PUT".into(),
            pattern: "/healthz",
            allow: "GET",
        };
        assert_eq!(err.status(), 405);
        assert_eq!(err.allow(), Some("GET"));
        assert_eq!(ApiError::BodyTooLarge { limit: 1 }.allow(), None);
    }

    #[test]
    fn body_carries_the_message() {
        let err = ApiError::BodyTooLarge { limit: 65536 };
        assert_eq!(err.body().error, err.to_string());
        assert!(!err.is_server_error());
    }
}
