//! Every way a request can fail, with the HTTP status each one maps to.

use std::fmt;

use thiserror::Error;

use crate::device::{DeviceId, DeviceIdError};
use crate::excerpt::quoted;
use crate::responses::ErrorBody;
use crate::routes::ROUTES_SUMMARY;

/// A failure reported by the key-value store, in the store's own words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

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
    #[error("request body is larger than {limit} bytes; expected a reading or an array of readings of at most {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("bad query: {detail}")]
    BadQuery { detail: String },
    #[error("request body could not be read ({detail}); expected a complete body")]
    BodyUnreadable { detail: String },
    #[error("device \"{device}\" has no stored readings; expected one of the devices GET /api/devices lists")]
    DeviceNotFound { device: DeviceId },
    /// Ingest refused every reading of a posted message. `summary` is ingest's
    /// reply, passed on so the client sees each reading's reason.
    #[error("{message}")]
    ReadingsRejected {
        status: u16,
        message: String,
        summary: serde_json::Value,
    },
    #[error("ingest did not answer ({detail}); expected a running ingest component subscribed to {subject}")]
    IngestUnavailable { subject: String, detail: String },
    #[error("ingest answered with something other than its summary ({detail})")]
    BadIngestReply { detail: String },
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
    GetMany { first_key: String, count: usize },
    ListKeys { bucket: String },
}

impl fmt::Display for StoreOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { bucket } => write!(f, "open bucket \"{bucket}\""),
            Self::Get { key } => write!(f, "get key `{key}`"),
            Self::Set { key } => write!(f, "set key `{key}`"),
            Self::Increment { key } => write!(f, "increment key `{key}`"),
            Self::GetMany { first_key, count } => {
                write!(f, "get {count} keys starting with `{first_key}`")
            }
            Self::ListKeys { bucket } => write!(f, "list the keys of bucket \"{bucket}\""),
        }
    }
}

pub const STATUS_BAD_REQUEST: u16 = 400;
pub const STATUS_NOT_FOUND: u16 = 404;
pub const STATUS_METHOD_NOT_ALLOWED: u16 = 405;
pub const STATUS_PAYLOAD_TOO_LARGE: u16 = 413;
pub const STATUS_UNPROCESSABLE: u16 = 422;
pub const STATUS_INTERNAL_ERROR: u16 = 500;
pub const STATUS_BAD_GATEWAY: u16 = 502;
pub const STATUS_UNAVAILABLE: u16 = 503;

impl ApiError {
    /// The HTTP status to answer with.
    ///
    /// Posted readings are judged by ingest, which chooses the status of a
    /// refusal (see `ingest_domain::api::post_outcome`). Store failures are 503
    /// because they are usually a missing link or an unreachable provider,
    /// which retrying later can fix; unreadable stored data is our own fault
    /// (500), and a reply from ingest that is not a summary a bad gateway (502).
    pub fn status(&self) -> u16 {
        match self {
            Self::NoRoute { .. } | Self::DeviceNotFound { .. } => STATUS_NOT_FOUND,
            Self::MethodNotAllowed { .. } => STATUS_METHOD_NOT_ALLOWED,
            Self::BadDeviceId(_) | Self::BodyUnreadable { .. } | Self::BadQuery { .. } => {
                STATUS_BAD_REQUEST
            }
            Self::ReadingsRejected { status, .. } => *status,
            Self::IngestUnavailable { .. } => STATUS_UNAVAILABLE,
            Self::BadIngestReply { .. } => STATUS_BAD_GATEWAY,
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
            summary: match self {
                Self::ReadingsRejected { summary, .. } => Some(summary.clone()),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "device \"d\" has no stored readings; expected one of the devices GET /api/devices lists"
        );
        assert_eq!(ApiError::BadQuery { detail: "x".into() }.status(), 400);
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
        assert_eq!(err.body().summary, None);
        assert!(!err.is_server_error());
        let rejected = ApiError::ReadingsRejected {
            status: 422,
            message: "all rejected".into(),
            summary: serde_json::json!({"rejected": 1}),
        };
        assert_eq!(rejected.status(), 422);
        assert_eq!(
            rejected.body().summary,
            Some(serde_json::json!({"rejected": 1}))
        );
    }
}
