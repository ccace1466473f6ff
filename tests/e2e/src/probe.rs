//! Driving the messaging probe (`tests/messaging-probe`) fed by the JetStream messaging
//! provider: publishing keyed messages as devices do, asking the probe what it saw, and
//! checking each key's order. Shared by the single-host and the multi-host tests.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use async_nats::jetstream;
use bytes::Bytes;

use crate::pipeline::connect;

/// The probe's app manifest, with its own NATS URLs and no placement.
pub const TEMPLATE: &str = "tests/e2e/manifests/messaging-probe.yaml";
pub const APP: &str = "messaging-probe";
/// The stream the template's handler link reads (`probe.in.>`).
pub const STREAM: &str = "PROBE";
/// What the built probe and its providers are called in `build/`.
pub const ARTIFACTS: [&str; 3] = [
    "messaging-probe.wasm",
    "keyvalue-memory.par.gz",
    "messaging-jetstream.par.gz",
];
/// Connections [`publish_keys`] publishes from at once.
const PUBLISHERS: usize = 4;
/// What the provider logs each time it delivers a message again after a failed attempt,
/// a timeout among them.
const REDELIVERY_LOG: &str = "handler failed; delivering again after the backoff";

/// Stores one message in the stream and waits for its acknowledgement.
pub async fn publish(js: &jetstream::Context, subject: &str, body: &str) -> Result<()> {
    js.publish(subject.to_string(), Bytes::from(body.to_string()))
        .await?
        .await
        .with_context(|| format!("storing {body:?} on {subject}"))?;
    Ok(())
}

/// `keys` × `per_key` messages `<prefix><key> <n><extra>` on `probe.in.<prefix><key>`,
/// from [`PUBLISHERS`] connections at once, spread over `nats_urls` in turn; each key's
/// messages from one connection, each stored before the next, so that their stream order
/// is 0, 1, 2, ...
pub async fn publish_keys(
    nats_urls: &[&str],
    prefix: &str,
    keys: usize,
    per_key: usize,
    extra: &str,
) -> Result<()> {
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let js = jetstream::new(connect(nats_urls[p % nats_urls.len()]).await?);
        let (prefix, extra) = (prefix.to_string(), extra.to_string());
        tasks.push(tokio::spawn(async move {
            for n in 0..per_key {
                for key in (p..keys).step_by(PUBLISHERS) {
                    let body = format!("{prefix}{key} {n}{extra}");
                    publish(&js, &format!("probe.in.{prefix}{key}"), &body).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Asks the probe over core NATS.
pub async fn query(nc: &async_nats::Client, body: &str) -> Result<String> {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        nc.request("probe.query", Bytes::from(body.to_string())),
    )
    .await
    .context("query timed out")??;
    let answer = String::from_utf8_lossy(&reply.payload).into_owned();
    ensure!(!answer.starts_with("error:"), "query {body:?}: {answer}");
    Ok(answer)
}

/// A number the probe counts (`total`, `violations`).
pub async fn count(nc: &async_nats::Client, what: &str) -> Result<usize> {
    let answer = query(nc, what).await?;
    answer
        .parse()
        .with_context(|| format!("{what} is not a number: {answer:?}"))
}

/// The redeliveries the provider logged in `log`.
pub fn redeliveries(log: &str) -> usize {
    log.matches(REDELIVERY_LOG).count()
}

/// The keys whose messages the probe has all handled, at least once each.
pub async fn complete_keys(
    nc: &async_nats::Client,
    prefix: &str,
    keys: usize,
    per_key: usize,
) -> Result<usize> {
    let mut complete = 0;
    for key in 0..keys {
        let order = query(nc, &format!("order {prefix}{key}")).await?;
        let mut seen: Vec<&str> = order.split(',').filter(|s| !s.is_empty()).collect();
        seen.dedup();
        complete += usize::from(seen.len() >= per_key);
    }
    Ok(complete)
}

/// Each key's messages in stream order. A message handled twice in a row is a redelivery
/// (at least once: a handler whose answer never reached the provider is called again);
/// the repeats must not outnumber the redeliveries the provider logged meanwhile
/// (`redelivered`). Returns the repeats.
pub async fn check_order(
    nc: &async_nats::Client,
    prefix: &str,
    keys: usize,
    per_key: usize,
    redelivered: usize,
) -> Result<usize> {
    let mut repeats = 0;
    for key in 0..keys {
        let order = query(nc, &format!("order {prefix}{key}")).await?;
        let seen: Vec<usize> = order.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let mut deduped = seen.clone();
        deduped.dedup();
        ensure!(
            deduped == (0..per_key).collect::<Vec<_>>(),
            "{prefix}{key} was handled in the order {order}"
        );
        repeats += seen.len() - deduped.len();
    }
    ensure!(
        repeats <= redelivered,
        "{repeats} messages were handled twice, but the provider logged only {redelivered} redeliveries"
    );
    Ok(repeats)
}
