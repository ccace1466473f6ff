//! The telemetry HTTP API as a wasm component.
//!
//! This crate is only glue: it turns a `wasi:http` request into calls to
//! `telemetry-domain`, which holds every rule and is tested natively, and backs
//! the domain's key-value trait with `wasi:keyvalue`. Every outcome, failures
//! included, becomes a JSON response; nothing here panics on client input.

use serde::Serialize;
use telemetry_domain::error::StoreOperation;
use telemetry_domain::keys::BUCKET;
use telemetry_domain::{
    device_summary, parse_reading_body, read_body, record_reading, route, ApiError, Health,
    KeyValue, Route, StoreError,
};
use wasmcloud_component::http::{
    self, header, HeaderMap, HeaderValue, IncomingRequest, Response, StatusCode,
};
use wasmcloud_component::wasi::keyvalue::{atomics, store};
use wasmcloud_component::wasi::logging::logging::{log, Level};

/// `from_static` in a constant is checked at compile time, so building the
/// response can't fail on it at run time.
const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json");

/// The `context` of this component's log lines, to find them among the host's.
const LOG_CONTEXT: &str = "neongrid-api";

/// Sent if even an error body can't be encoded, which serde_json only does for
/// types this crate doesn't use; it exists so that path needs no panic.
const FALLBACK_ERROR_BODY: &str = r#"{"error":"response could not be encoded as JSON"}"#;

struct Api;

http::export!(Api);

impl http::Server for Api {
    fn handle(request: IncomingRequest) -> http::Result<Response<impl http::OutgoingBody>> {
        let response = match respond(request) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(err) => error_response(&err),
        };
        Ok(response)
    }
}

/// Answers one request with the JSON body of a 200, or the error to report.
fn respond(request: IncomingRequest) -> Result<Vec<u8>, ApiError> {
    match route(request.method().as_str(), request.uri().path())? {
        Route::Health => to_json(&Health::ok()),
        Route::RecordReading(device) => {
            let declared_len = content_length(request.headers());
            let body = read_body(request.into_body(), declared_len)?;
            // Parsed before the bucket is opened, so bad input is reported as
            // such even while the store is unreachable.
            let reading = parse_reading_body(&body)?;
            to_json(&record_reading(&open_bucket()?, device, reading)?)
        }
        Route::DeviceSummary(device) => to_json(&device_summary(&open_bucket()?, device)?),
    }
}

/// The declared body length, if the header is present and a number. A bad
/// header is ignored rather than refused: the size limit is enforced on the
/// bytes actually read anyway.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|err| ApiError::Encode {
        what: "response",
        detail: err.to_string(),
    })
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, JSON_CONTENT_TYPE);
    response
}

fn error_response(err: &ApiError) -> Response<Vec<u8>> {
    // Client mistakes are routine traffic; only our own failures are errors.
    let level = if err.is_server_error() {
        Level::Error
    } else {
        Level::Debug
    };
    log(level, LOG_CONTEXT, &err.to_string());

    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = to_json(&err.body()).unwrap_or_else(|_| FALLBACK_ERROR_BODY.as_bytes().to_vec());
    let mut response = json_response(status, body);
    if let Some(allow) = err
        .allow()
        .and_then(|allow| HeaderValue::from_str(allow).ok())
    {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// An open `wasi:keyvalue` bucket, wrapped because neither the domain's trait
/// nor the binding's type belongs to this crate.
struct WasiBucket(store::Bucket);

fn open_bucket() -> Result<WasiBucket, ApiError> {
    store::open(BUCKET)
        .map(WasiBucket)
        .map_err(|err| ApiError::Store {
            operation: StoreOperation::Open {
                bucket: BUCKET.to_owned(),
            },
            source: store_error(err),
        })
}

impl KeyValue for WasiBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(store_error)
    }

    fn increment(&self, key: &str, delta: u64) -> Result<u64, StoreError> {
        atomics::increment(&self.0, key, delta).map_err(store_error)
    }
}

fn store_error(err: store::Error) -> StoreError {
    match err {
        store::Error::NoSuchStore => {
            StoreError::new("no such store (is the component linked to a key-value provider?)")
        }
        store::Error::AccessDenied => StoreError::new("access denied"),
        store::Error::Other(detail) => StoreError::new(detail),
    }
}
