//! A minimal blocking HTTP client for tests: every status is a value, never an error, so
//! tests can assert on 4xx responses as easily as on 200s.

use anyhow::{Context, Result};
use serde_json::Value;

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
    finish(ureq::get(url).call())
}

/// [`get`] that gives up after `timeout` instead of waiting for an answer forever.
pub fn get_with_timeout(url: &str, timeout: std::time::Duration) -> Result<Response> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    finish(agent.get(url).call())
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    finish(
        ureq::post(url)
            .set("content-type", content_type)
            .send_bytes(body),
    )
}

pub fn request(method: &str, url: &str) -> Result<Response> {
    finish(ureq::request(method, url).call())
}
