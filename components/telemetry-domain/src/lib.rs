//! The vocabulary every neongrid component shares (device ids, metric names,
//! timestamps, input excerpts) and the HTTP API's request rules (routes, body
//! limits, errors and their statuses), kept free of WIT and wasm so that they
//! compile and are tested natively. What the API reads from the key-value
//! links lives next to the key layout, in `ingest-domain`'s `api` module.

pub mod body;
pub mod device;
pub mod error;
pub mod reading;
pub mod responses;
pub mod routes;

pub mod excerpt;

pub use body::{read_body, MAX_BODY_BYTES};
pub use device::{DeviceId, DeviceIdError};
pub use error::{ApiError, StoreError};
pub use reading::{MetricName, ReadingError, Timestamp};
pub use responses::{ErrorBody, Health};
pub use routes::{route, Route};
