//! The telemetry HTTP API as a wasm component.
//!
//! This crate is only glue: it turns a `wasi:http` request into calls to
//! `telemetry-domain`, which holds every rule and is tested natively, and backs
//! the domain's key-value trait with `wasi:keyvalue`. Every outcome, failures
//! included, becomes a JSON response; nothing here panics on client input.

use ingest_domain::api::{
    device_detail, history, list_devices, parse_reply, post_outcome, KeyPage, Reader,
};
use ingest_domain::post::split_post;
use ingest_domain::Target;
use serde::Serialize;
use std::time::{Duration, Instant};
use telemetry_domain::{read_body, route, ApiError, Health, Route, StoreError};
use wasmcloud_component::http::{
    self, header, HeaderMap, HeaderValue, IncomingRequest, Response, StatusCode,
};
use wasmcloud_component::wasi::keyvalue::{batch, store};
use wasmcloud_component::wasi::logging::logging::{log, Level};
use wasmcloud_component::wasmcloud::bus::lattice;
use wasmcloud_component::wasmcloud::messaging::consumer;

/// `from_static` in a constant is checked at compile time, so building the
/// response can't fail on it at run time.
const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json");
const HTML_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// The `context` of this component's log lines, to find them among the host's.
const LOG_CONTEXT: &str = "neongrid-api";

/// Sent if even an error body can't be encoded, which serde_json only does for
/// types this crate doesn't use; it exists so that path needs no panic.
const FALLBACK_ERROR_BODY: &str = r#"{"error":"response could not be encoded as JSON"}"#;

/// The live dashboard: one static page that polls the JSON routes.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// How long `POST /api/readings` waits for ingest's summaries, all of a post's
/// parts together. A full message (1000 readings, each about ten key-value calls
/// over the lattice) takes seconds; the builtin HTTP server's own deadline is
/// longer still.
const INGEST_TIMEOUT: Duration = Duration::from_secs(20);

struct Api;

http::export!(Api);

impl http::Server for Api {
    fn handle(request: IncomingRequest) -> http::Result<Response<impl http::OutgoingBody>> {
        let response = match respond(request) {
            Ok(Answer::Json(body)) => response(StatusCode::OK, JSON_CONTENT_TYPE, body),
            Ok(Answer::Html(page)) => {
                response(StatusCode::OK, HTML_CONTENT_TYPE, page.as_bytes().to_vec())
            }
            Err(err) => error_response(&err),
        };
        Ok(response)
    }
}

enum Answer {
    Json(Vec<u8>),
    Html(&'static str),
}

/// Answers one request, or says what error to report.
fn respond(request: IncomingRequest) -> Result<Answer, ApiError> {
    let uri = request.uri();
    let route = route(request.method().as_str(), uri.path(), uri.query())?;
    let json = match route {
        Route::Dashboard => return Ok(Answer::Html(DASHBOARD_HTML)),
        Route::Health => to_json(&Health::ok()),
        Route::Devices => to_json(&list_devices(&mut Links::default())?),
        Route::Device(device) => to_json(&device_detail(&mut Links::default(), device)?),
        Route::History { device, limit } => {
            to_json(&history(&mut Links::default(), device, limit)?)
        }
        Route::PostReadings => {
            let declared_len = content_length(request.headers());
            let body = read_body(request.into_body(), declared_len)?;
            to_json(&post_outcome(send_to_ingest(body)?)?)
        }
    }?;
    Ok(Answer::Json(json))
}

/// Sends a posted body to ingest the way devices do, one request per device on
/// that device's subject (`split_post`), so that the JetStream provider stores
/// each part and hands it to ingest in its device's order; returns the parts'
/// summaries as one. Ingest parses and judges the readings; the API only bounds
/// the body's size and the wait.
fn send_to_ingest(body: Vec<u8>) -> Result<ingest_domain::Summary, ApiError> {
    let deadline = Instant::now() + INGEST_TIMEOUT;
    let parts = split_post(&body);
    let mut summary = ingest_domain::Summary::default();
    for (done, part) in parts.iter().enumerate() {
        let unavailable = |detail: String| ApiError::IngestUnavailable {
            subject: part.subject.clone(),
            detail: if done == 0 {
                detail
            } else {
                format!(
                    "{detail}; {done} of this post's {} device messages were handled before \
                     it, and posting the same readings again is safe: ingest counts the ones \
                     it stored as duplicates",
                    parts.len()
                )
            },
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(unavailable(format!(
                "no time left of the post's {INGEST_TIMEOUT:?}"
            )));
        }
        // At most INGEST_TIMEOUT, so the conversion cannot overflow.
        let left_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1);
        let reply = consumer::request(&part.subject, &part.body, left_ms).map_err(unavailable)?;
        summary.merge_part(parse_reply(&reply.body)?, part.positions.as_deref());
    }
    Ok(summary)
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

fn response(status: StatusCode, content_type: HeaderValue, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
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
    let mut response = response(status, JSON_CONTENT_TYPE, body);
    if let Some(allow) = err
        .allow()
        .and_then(|allow| HeaderValue::from_str(allow).ok())
    {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// The `hot` and `archive` key-value links as the domain's [`Reader`]: selects
/// a target's link before calling, and keeps the bucket open while the same
/// target is read again. (Ingest has the same loop over its own bindings.)
#[derive(Default)]
struct Links {
    current: Option<(Target, store::Bucket)>,
    link: Option<&'static str>,
}

impl Links {
    fn bucket(&mut self, target: &Target) -> Result<&store::Bucket, StoreError> {
        let reusable = matches!(&self.current, Some((open, _)) if open == target);
        if !reusable {
            self.current = None;
            if self.link != Some(target.link()) {
                self.link = None;
                select_link(target.link())?;
                self.link = Some(target.link());
            }
            let bucket = store::open(&target.bucket()).map_err(|err| {
                StoreError::new(format!(
                    "open bucket {:?} on link `{}`: {}",
                    target.bucket(),
                    target.link(),
                    store_error(err)
                ))
            })?;
            self.current = Some((target.clone(), bucket));
        }
        match &self.current {
            Some((_, bucket)) => Ok(bucket),
            None => Err(StoreError::new("no bucket open")),
        }
    }
}

impl Reader for Links {
    fn get(&mut self, target: &Target, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket(target)?
            .get(key)
            .map_err(|err| StoreError::new(store_error(err)))
    }

    fn get_many(
        &mut self,
        target: &Target,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let entries = batch::get_many(self.bucket(target)?, keys)
            .map_err(|err| StoreError::new(store_error(err)))?;
        Ok(entries
            .into_iter()
            .map(|entry| entry.map(|(_, value)| value))
            .collect())
    }

    fn list_keys(&mut self, target: &Target, cursor: Option<u64>) -> Result<KeyPage, StoreError> {
        let page = self
            .bucket(target)?
            .list_keys(cursor)
            .map_err(|err| StoreError::new(store_error(err)))?;
        Ok(KeyPage {
            keys: page.keys,
            cursor: page.cursor,
        })
    }
}

/// Points `wasi:keyvalue` (all three interfaces, so that buckets and counters
/// go to the same store) at the link named `link`.
fn select_link(link: &str) -> Result<(), StoreError> {
    let interfaces = ["store", "atomics", "batch"]
        .into_iter()
        .map(|interface| lattice::CallTargetInterface::new("wasi", "keyvalue", interface))
        .collect();
    lattice::set_link_name(link, interfaces).map_err(|err| {
        StoreError::new(format!(
            "selecting key-value link `{link}` failed ({err}); is the component linked with that name?"
        ))
    })
}

fn store_error(err: store::Error) -> String {
    match err {
        store::Error::NoSuchStore => {
            "no such store (is the component linked to a key-value provider?)".to_owned()
        }
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(detail) => detail,
    }
}
