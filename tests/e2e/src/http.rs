//! A minimal blocking HTTP client for tests: every status is a value, never an error, so
//! tests can assert on 4xx responses as easily as on 200s.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

/// No request may hang a test: a lost reply somewhere in the lattice (see
/// third_party/README.md for one that was) must fail the test with the lattice's logs,
/// and callers that poll simply try again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
    })
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Response {
    /// The body as JSON, with the raw body in the error when it is not JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("response ({}) is not JSON: {:?}", self.status, self.body))
    }
}

fn finish(result: Result<ureq::Response, ureq::Error>) -> Result<Response> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e).context("HTTP request failed"),
    };
    Ok(Response {
        status: resp.status(),
        content_type: resp.content_type().to_string(),
        body: resp.into_string().context("reading HTTP body")?,
    })
}

pub fn get(url: &str) -> Result<Response> {
    crate::trace(&format!("GET {url}"));
    finish(agent().get(url).call())
}

/// [`get`] that gives up after `timeout` instead of waiting for an answer forever.
pub fn get_with_timeout(url: &str, timeout: std::time::Duration) -> Result<Response> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    finish(agent.get(url).call())
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    crate::trace(&format!("POST {url} ({} bytes)", body.len()));
    finish(
        agent()
            .post(url)
            .set("content-type", content_type)
            .send_bytes(body),
    )
}

pub fn request(method: &str, url: &str) -> Result<Response> {
    crate::trace(&format!("{method} {url}"));
    finish(agent().request(method, url).call())
}
