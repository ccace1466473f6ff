//! Typed errors: configuration, stream layout and broker failures.

/// A configuration key that is missing or holds a value out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("messaging configuration {key:?} is missing; the provider's README lists it")]
    Missing { key: &'static str },
    #[error("invalid messaging configuration {key:?}: {value:?}; expected {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &'static str, value: &str, expected: impl Into<String>) -> Self {
        // Bounded, so that a huge value cannot flood a log line.
        let value: String = value.chars().take(200).collect();
        Self::Invalid {
            key,
            value,
            expected: expected.into(),
        }
    }
}

/// What went wrong talking to NATS or JetStream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to NATS at {uris}: {reason}")]
    Connect { uris: String, reason: String },
    /// An existing stream or consumer was defined differently; changing it could reorder
    /// or lose messages, so the provider refuses instead of overwriting.
    #[error(
        "JetStream {what} {name:?} already exists with {field} {existing}, but this link asks \
         for {wanted}; align the link configuration with it, or delete the {what} first"
    )]
    Conflict {
        what: &'static str,
        name: String,
        field: &'static str,
        existing: String,
        wanted: String,
    },
    #[error("JetStream {operation} failed: {reason}")]
    JetStream { operation: String, reason: String },
    #[error("NATS {operation} on {subject:?} failed: {reason}")]
    Nats {
        operation: &'static str,
        subject: String,
        reason: String,
    },
    #[error("no reply on {subject:?} within {timeout_ms} ms")]
    Timeout { subject: String, timeout_ms: u128 },
    #[error(
        "invalid subject {subject:?}: expected dot-separated tokens without wildcards or spaces"
    )]
    Subject { subject: String },
}

impl Error {
    pub(crate) fn jetstream(operation: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::JetStream {
            operation: operation.into(),
            reason: err.to_string(),
        }
    }

    pub(crate) fn nats(
        operation: &'static str,
        subject: &str,
        err: impl std::fmt::Display,
    ) -> Self {
        Self::Nats {
            operation,
            subject: subject.to_string(),
            reason: err.to_string(),
        }
    }
}
