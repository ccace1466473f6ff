use std::error::Error as StdError;

/// Why a store operation failed.
///
/// Keys and buckets are printed with `{:?}` so that empty, blank or control-character names
/// stay visible in messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend knows no store by this name (for backends with a fixed set of buckets).
    #[error("no such store: bucket {bucket:?} does not exist in this backend")]
    NoSuchStore { bucket: String },

    /// The caller may not use this bucket.
    #[error("access denied to bucket {bucket:?}: {reason}")]
    AccessDenied { bucket: String, reason: String },

    /// `increment` found a value that is not a counter.
    #[error(
        "cannot increment key {key:?} in bucket {bucket:?}: its value {found} is not an \
         unsigned 64-bit decimal integer (expected ASCII digits such as \"42\", no sign, \
         spaces or leading zeros)"
    )]
    NotNumeric {
        bucket: String,
        key: String,
        /// A short, printable rendering of the offending value.
        found: String,
    },

    /// `increment` would take the counter past `u64::MAX`.
    #[error(
        "cannot increment key {key:?} in bucket {bucket:?}: {current} + {delta} exceeds the \
         largest counter value {max}",
        max = u64::MAX
    )]
    Overflow {
        bucket: String,
        key: String,
        current: u64,
        delta: u64,
    },

    /// A `list_keys` cursor this backend cannot have handed out.
    #[error("invalid list-keys cursor {cursor} for bucket {bucket:?}: {reason}")]
    InvalidCursor {
        bucket: String,
        cursor: u64,
        reason: String,
    },

    /// A value larger than the backend accepts.
    #[error(
        "value for key {key:?} in bucket {bucket:?} is {size} bytes, more than this store's \
         limit of {max} bytes"
    )]
    TooLarge {
        bucket: String,
        key: String,
        size: usize,
        max: usize,
    },

    /// A [`crate::StoreFactory`] could not use its configuration.
    #[error("invalid key-value store configuration {key:?}: {reason}")]
    InvalidConfig { key: String, reason: String },

    /// The backend itself failed (I/O, connection, protocol).
    #[error("{backend} backend failed to {op}: {source}")]
    Backend {
        backend: &'static str,
        /// The operation that failed, e.g. `"get"` or `"connect"`.
        op: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend failure, naming the backend and the operation that failed.
    pub fn backend(
        backend: &'static str,
        op: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            backend,
            op,
            source: source.into(),
        }
    }
}
