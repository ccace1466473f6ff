//! The rules of the neongrid telemetry API, kept free of WIT and wasm so that
//! they compile and are tested natively. The `api` component is only the glue
//! between these functions and the `wasi:http` and `wasi:keyvalue` interfaces.

pub mod body;
pub mod device;
pub mod error;
pub mod keys;
pub mod reading;
pub mod responses;
pub mod routes;
pub mod service;

pub mod excerpt;

pub use body::{read_body, MAX_BODY_BYTES};
pub use device::{DeviceId, DeviceIdError};
pub use error::ApiError;
pub use reading::{parse_reading_body, MetricName, Reading, ReadingError, Timestamp};
pub use responses::{DeviceSummary, ErrorBody, Health};
pub use routes::{route, Route};
pub use service::{device_summary, record_reading, KeyValue, StoreError};
