//! The two device operations, written against a small key-value trait so that
//! they run the same over `wasi:keyvalue` and over the in-memory store of the
//! tests.

use thiserror::Error;

use crate::device::DeviceId;
use crate::error::{ApiError, StoreOperation};
use crate::keys::{latest_reading_key, reading_count_key};
use crate::reading::Reading;
use crate::responses::DeviceSummary;

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

/// The operations the API needs from one open bucket.
pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Atomically adds `delta` to the counter at `key`, creating it at `delta`
    /// when absent, and returns the new value.
    fn increment(&self, key: &str, delta: u64) -> Result<u64, StoreError>;
}

/// Makes `reading` the device's latest and counts it.
///
/// Takes an already parsed reading so that callers validate input before they
/// open the store, and a bad body is reported as such even when the store is down.
///
/// The latest reading is written before the count is incremented, so a device
/// whose count is non-zero always has a latest reading to show; the reverse
/// order could answer a query with a count but a 404. Concurrent posts to one
/// device each get their own count, and the last write wins `latest`.
pub fn record_reading(
    store: &impl KeyValue,
    device: DeviceId,
    reading: Reading,
) -> Result<DeviceSummary, ApiError> {
    let encoded = serde_json::to_vec(&reading).map_err(|err| ApiError::Encode {
        what: "reading",
        detail: err.to_string(),
    })?;

    let latest_key = latest_reading_key(&device);
    store
        .set(&latest_key, &encoded)
        .map_err(|source| ApiError::Store {
            operation: StoreOperation::Set { key: latest_key },
            source,
        })?;

    let count = add_to_count(store, &device, 1)?;

    Ok(DeviceSummary {
        device,
        count,
        latest: reading,
    })
}

/// Adds `delta` to the device's reading count and returns the new count.
fn add_to_count(store: &impl KeyValue, device: &DeviceId, delta: u64) -> Result<u64, ApiError> {
    let key = reading_count_key(device);
    store
        .increment(&key, delta)
        .map_err(|source| ApiError::Store {
            operation: StoreOperation::Increment { key },
            source,
        })
}

/// Reports a device's reading count and latest reading, or
/// [`ApiError::DeviceNotFound`] when it has never sent one.
pub fn device_summary(store: &impl KeyValue, device: DeviceId) -> Result<DeviceSummary, ApiError> {
    let latest_key = latest_reading_key(&device);
    let stored = store.get(&latest_key).map_err(|source| ApiError::Store {
        operation: StoreOperation::Get {
            key: latest_key.clone(),
        },
        source,
    })?;
    let Some(stored) = stored else {
        return Err(ApiError::DeviceNotFound { device });
    };
    let latest: Reading = serde_json::from_slice(&stored).map_err(|err| ApiError::CorruptData {
        key: latest_key,
        detail: err.to_string(),
    })?;

    // Adding zero is the one read of a counter whose meaning the interface
    // defines; a plain `get` would return the bytes in whatever encoding the
    // provider behind `wasi:keyvalue/atomics` chose.
    let count = add_to_count(store, &device, 0)?;

    Ok(DeviceSummary {
        device,
        count,
        latest,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::reading::parse_reading_body;

    /// An in-memory bucket that can be told to fail one kind of operation.
    #[derive(Default)]
    struct MemoryStore {
        values: RefCell<HashMap<String, Vec<u8>>>,
        counters: RefCell<HashMap<String, u64>>,
        fail: Option<&'static str>,
    }

    impl MemoryStore {
        fn failing(operation: &'static str) -> Self {
            Self {
                fail: Some(operation),
                ..Self::default()
            }
        }

        fn check(&self, operation: &str) -> Result<(), StoreError> {
            match self.fail {
                Some(failing) if failing == operation => Err(StoreError::new("store is down")),
                _ => Ok(()),
            }
        }
    }

    impl KeyValue for MemoryStore {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.check("get")?;
            Ok(self.values.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.check("set")?;
            self.values
                .borrow_mut()
                .insert(key.to_owned(), value.to_vec());
            Ok(())
        }

        fn increment(&self, key: &str, delta: u64) -> Result<u64, StoreError> {
            self.check("increment")?;
            let mut counters = self.counters.borrow_mut();
            let counter = counters.entry(key.to_owned()).or_default();
            *counter += delta;
            Ok(*counter)
        }
    }

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).unwrap()
    }

    fn reading(body: &str) -> Reading {
        parse_reading_body(body.as_bytes()).unwrap()
    }

    #[test]
    fn recording_counts_and_keeps_the_latest() {
        let store = MemoryStore::default();
        let first =
            record_reading(&store, device("d1"), reading(r#"{"metric":"t","value":1}"#)).unwrap();
        assert_eq!(first.count, 1);
        let second = record_reading(
            &store,
            device("d1"),
            reading(r#"{"metric":"t","value":2.5}"#),
        )
        .unwrap();
        assert_eq!(second.count, 2);
        assert_eq!(second.latest.value(), 2.5);

        let summary = device_summary(&store, device("d1")).unwrap();
        assert_eq!(summary, second);
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            r#"{"device":"d1","count":2,"latest":{"metric":"t","value":2.5}}"#
        );
    }

    #[test]
    fn devices_are_counted_separately() {
        let store = MemoryStore::default();
        record_reading(&store, device("a"), reading(r#"{"metric":"t","value":1}"#)).unwrap();
        record_reading(&store, device("a"), reading(r#"{"metric":"t","value":1}"#)).unwrap();
        let b =
            record_reading(&store, device("b"), reading(r#"{"metric":"t","value":1}"#)).unwrap();
        assert_eq!(b.count, 1);
        assert_eq!(device_summary(&store, device("a")).unwrap().count, 2);
    }

    #[test]
    fn stored_reading_uses_the_documented_key_and_form() {
        let store = MemoryStore::default();
        record_reading(
            &store,
            device("d"),
            reading(r#"{"metric":"t","value":3,"ts":"2024-05-01T12:00:00Z"}"#),
        )
        .unwrap();
        assert_eq!(
            store.values.borrow()["device/d/latest"],
            br#"{"metric":"t","value":3.0,"ts":"2024-05-01T12:00:00Z"}"#
        );
        assert_eq!(store.counters.borrow()["device/d/count"], 1);
    }

    #[test]
    fn unknown_device_is_not_found_and_not_created() {
        let store = MemoryStore::default();
        let err = device_summary(&store, device("ghost")).unwrap_err();
        assert_eq!(err.status(), 404);
        assert!(store.counters.borrow().is_empty());
    }

    #[test]
    fn store_failures_name_the_operation() {
        let body = reading(r#"{"metric":"t","value":1}"#);
        let err =
            record_reading(&MemoryStore::failing("set"), device("d"), body.clone()).unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(
            err.to_string(),
            "key-value store failed to set key `device/d/latest`: store is down"
        );

        let err =
            record_reading(&MemoryStore::failing("increment"), device("d"), body).unwrap_err();
        assert!(err.to_string().contains("increment key `device/d/count`"));

        let err = device_summary(&MemoryStore::failing("get"), device("d")).unwrap_err();
        assert!(err.to_string().contains("get key `device/d/latest`"));
    }

    #[test]
    fn corrupt_stored_reading_is_a_server_error() {
        let store = MemoryStore::default();
        store
            .set("device/d/latest", b"not json")
            .expect("memory store never fails here");
        let err = device_summary(&store, device("d")).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err
            .to_string()
            .starts_with("stored value at key `device/d/latest` is unreadable"));
    }
}
