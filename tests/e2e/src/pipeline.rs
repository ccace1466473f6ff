//! The telemetry pipeline on a real lattice: deploy one of the committed manifests
//! (`wadm.dev.yaml` or `wadm.yaml`) and drive it the ways devices and people do, over NATS
//! and over HTTP. The checks are written once here and run for both manifests.
//!
//! Every wait has a timeout; a failure carries what was expected and what came back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures::StreamExt;
use ingest_domain::api::{DeviceDetail, DeviceList, History};
use ingest_domain::Summary;
use neongrid_loadgen::device;
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::manifest::Manifest;
use crate::{build_artifact, free_port, http, repo_root, trace, wait_for, Lattice};

pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the messaging provider may take to subscribe after Deployed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(90);
/// One message's round trip: ingest, the validator and a dozen key-value calls.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// A rejection or alert, published before the reply, is expected by then.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The burst's replies: a thousand messages queue for the component instances.
const BURST_TIMEOUT: Duration = Duration::from_secs(120);

pub const TS: &str = "2026-11-20T10:00:00Z";

/// The artifacts every pipeline manifest deploys (components and the messaging provider),
/// besides its key-value providers.
pub const COMMON_ARTIFACTS: &[&str] = &[
    "ingest.wasm",
    "validator.wasm",
    "api.wasm",
    "messaging-jetstream.par.gz",
];

/// A deployed pipeline: where its API listens and its NATS server.
pub struct Pipeline {
    pub app: String,
    pub base: String,
    pub nats_url: String,
    /// The manifest as deployed (absolute images, test ports), for redeploys.
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    /// Where the host log stood once ingest answered its first reading: failures before
    /// that are the start-up the warm-up waits out (a provider not subscribed yet, which
    /// ingest's retry covers), failures after it are the pipeline's.
    pub log_start: usize,
}

impl Pipeline {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Deploys the committed manifest `name` on `lattice`, adapted to the lattice (absolute
/// images, a free HTTP port, the lattice's NATS server) and by `adapt` (e.g. database
/// URLs), and waits until the API answers and ingest takes readings.
pub fn deploy(
    lattice: &Lattice,
    name: &str,
    providers: &[&str],
    adapt: impl FnOnce(&mut Manifest) -> Result<()>,
) -> Result<Pipeline> {
    for artifact in COMMON_ARTIFACTS.iter().chain(providers) {
        build_artifact(artifact)?;
    }
    let http_port = free_port()?;
    let nats_url = format!("nats://127.0.0.1:{}", lattice.nats_port);
    let mut manifest = Manifest::load(&repo_root().join(name))?;
    manifest
        .absolutize_images(&repo_root())?
        .set_http_address(&format!("127.0.0.1:{http_port}"))?
        .set_nats_uris(&nats_url)?;
    adapt(&mut manifest)?;
    let manifest_path = lattice.dir().join(name);
    manifest.write(&manifest_path)?;
    let app = manifest.name()?;
    lattice.deploy(&manifest_path, &app, DEPLOY_TIMEOUT)?;

    let pipeline = Pipeline {
        app,
        base: format!("http://127.0.0.1:{http_port}"),
        nats_url,
        manifest,
        manifest_path,
        log_start: 0,
    };
    wait_for(
        "GET /healthz to answer 200",
        Duration::from_secs(60),
        || Ok((http::get(&pipeline.url("/healthz"))?.status == 200).then_some(())),
    )?;
    runtime()?.block_on(wait_for_ingest(&pipeline.nats_url))?;
    Ok(Pipeline {
        log_start: lattice.log("wasmcloud.log").len(),
        ..pipeline
    })
}

/// A small runtime for the async NATS client.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub async fn connect(nats_url: &str) -> Result<async_nats::Client> {
    timeout(Duration::from_secs(10), async_nats::connect(nats_url))
        .await
        .context("timed out connecting to NATS")?
        .context("connecting to NATS")
}

pub fn reading(id: &str, device: &str, metric: &str, value: f64) -> Value {
    json!({"id": id, "device": device, "metric": metric, "value": value, "ts": TS})
}

/// The provider subscribes for ingest a moment after wadm says Deployed: send a reading
/// of a device nobody looks at, with a fresh id each time, until one is answered.
async fn wait_for_ingest(nats_url: &str) -> Result<()> {
    let nats = connect(nats_url).await?;
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let body = reading(&format!("w-{attempt}"), "warmup-1", "temperature_c", 20.0);
        let answer = timeout(
            Duration::from_secs(3),
            device::request(
                &nats,
                "neongrid.readings.warmup-1".into(),
                body.to_string().into(),
                None,
            ),
        )
        .await;
        match answer.map(|answer| answer.and_then(device::Answer::handled)) {
            Ok(Ok(reply)) => {
                let summary: Summary = serde_json::from_slice(&reply.payload)?;
                trace(&format!(
                    "ingest answers after {attempt} attempts: {summary:?}"
                ));
                ensure!(
                    summary.counts() == (1, 0, 0, 0),
                    "warm-up reading: {summary:?}"
                );
                return Ok(());
            }
            Ok(Err(err)) => trace(&format!("warm-up attempt {attempt}: {err}")),
            Err(_) => trace(&format!("warm-up attempt {attempt}: no answer in 3s")),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("ingest never answered a reading within {SUBSCRIBE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends `payload` on `subject` and returns ingest's summary.
pub async fn request(nats: &async_nats::Client, subject: &str, payload: &Value) -> Result<Summary> {
    request_bytes(nats, subject, payload.to_string().into_bytes()).await
}

async fn request_bytes(
    nats: &async_nats::Client,
    subject: &str,
    payload: Vec<u8>,
) -> Result<Summary> {
    let reply = timeout(
        REPLY_TIMEOUT,
        device::request(nats, subject.to_owned(), payload.into(), None),
    )
    .await
    .map_err(|_| anyhow!("no reply on {subject} within {REPLY_TIMEOUT:?}"))??
    .handled()?;
    serde_json::from_slice(&reply.payload)
        .with_context(|| format!("reply is not a summary: {:?}", reply.payload))
}

/// Every check of the pipeline issue, in order, on a freshly deployed pipeline.
pub fn exercise(lattice: &Lattice, pipeline: &Pipeline) -> Result<()> {
    check_links(lattice)?;
    let runtime = runtime()?;
    runtime.block_on(over_nats(&pipeline.nats_url))?;
    over_http(pipeline)?;
    runtime.block_on(mixed_post(pipeline))?;
    read_back(pipeline)?;
    runtime.block_on(redelivery(&pipeline.nats_url))?;
    runtime.block_on(resend_with_msg_id(pipeline))?;
    read_back(pipeline)?;
    runtime.block_on(burst(pipeline))?;
    check_host_log(lattice, pipeline)
}

/// Both components read and write through two key-value links told apart by name,
/// which is what their `set-link-name` calls select; all four must exist.
fn check_links(lattice: &Lattice) -> Result<()> {
    let links = lattice.wash_json(&["get", "links"])?;
    let list = links["links"]
        .as_array()
        .with_context(|| format!("unexpected `wash get links` output: {links}"))?;
    for source in ["ingest", "api"] {
        for name in ["hot", "archive"] {
            let found = list.iter().any(|link| {
                link["name"] == json!(name)
                    && link["source_id"]
                        .as_str()
                        .is_some_and(|id| id.ends_with(&format!("-{source}")))
                    && link["wit_namespace"] == json!("wasi")
                    && link["wit_package"] == json!("keyvalue")
            });
            ensure!(
                found,
                "no key-value link named {name} from {source}: {links}"
            );
        }
    }
    Ok(())
}

const DEVICE: &str = "thermo-9";
const HTTP_DEVICE: &str = "hygro-3";

/// The batch of [`over_nats`] that [`redelivery`] sends again.
fn batch_message() -> Value {
    let mut incomplete = reading("r-5", DEVICE, "temperature_c", 22.0);
    incomplete.as_object_mut().unwrap().remove("ts");
    json!([reading("r-4", DEVICE, "temperature_c", 22.0), incomplete])
}

/// Devices' way in: readings on `neongrid.readings.<device>` with a reply-to, checking
/// each summary, the rejections on `neongrid.rejected` and the alerts.
async fn over_nats(nats_url: &str) -> Result<()> {
    let nats = connect(nats_url).await?;
    let mut rejected = nats.subscribe("neongrid.rejected").await?;
    let mut alerts = nats.subscribe("neongrid.alerts.>").await?;
    timeout(Duration::from_secs(10), nats.flush())
        .await
        .context("timed out flushing subscriptions")??;
    let subject = format!("neongrid.readings.{DEVICE}");

    // A normal reading is stored.
    let s = request(
        &nats,
        &subject,
        &reading("r-1", DEVICE, "temperature_c", 21.4),
    )
    .await?;
    ensure!(s.counts() == (1, 0, 0, 0), "normal reading: {s:?}");

    // One above the alert band is stored and raises an alert on the device's subject.
    let s = request(
        &nats,
        &subject,
        &reading("r-2", DEVICE, "temperature_c", 50.0),
    )
    .await?;
    ensure!(s.counts() == (1, 0, 0, 1), "alerting reading: {s:?}");
    let alert = timeout(EVENT_TIMEOUT, alerts.next())
        .await
        .context("no alert published")?
        .context("alert subscription closed")?;
    ensure!(
        alert.subject.as_str() == format!("neongrid.alerts.{DEVICE}"),
        "alert on {}",
        alert.subject
    );
    let alert: Value = serde_json::from_slice(&alert.payload)?;
    trace(&format!("alert: {alert}"));
    ensure!(
        alert["device"] == json!(DEVICE)
            && alert["reading_id"] == json!("r-2")
            && alert["side"] == json!("high")
            && alert["bound"] == json!(45.0)
            && alert["value"] == json!(50.0),
        "unexpected alert: {alert}"
    );

    // The same id again is a duplicate: not stored, no second alert.
    let s = request(
        &nats,
        &subject,
        &reading("r-1", DEVICE, "temperature_c", 21.4),
    )
    .await?;
    ensure!(s.counts() == (0, 0, 1, 0), "repeated reading: {s:?}");

    // A malformed message is rejected as a whole, with a reason and the original.
    let s = request_bytes(&nats, &subject, b"{not json".to_vec()).await?;
    ensure!(s.counts() == (0, 1, 0, 0), "malformed message: {s:?}");
    ensure!(
        s.rejections.len() == 1 && s.rejections[0].code == "not_json",
        "the summary names the reason: {s:?}"
    );
    let rejection = next_message(&mut rejected).await?;
    ensure!(
        rejection["subject"] == json!(subject)
            && rejection["code"] == json!("not_json")
            && rejection["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("JSON"))
            && rejection["original"] == json!("{not json"),
        "unexpected rejection: {rejection}"
    );

    // The validator's rejection: outside the valid range, not stored.
    let s = request(
        &nats,
        &subject,
        &reading("r-3", DEVICE, "temperature_c", 90.0),
    )
    .await?;
    ensure!(s.counts() == (0, 1, 0, 0), "out-of-range reading: {s:?}");
    let rejection = next_message(&mut rejected).await?;
    ensure!(
        rejection["code"] == json!("out_of_range")
            && rejection["retryable"] == json!(false)
            && rejection["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("temperature_c")),
        "unexpected rejection: {rejection}"
    );

    // A batch: one good reading, one without a timestamp (rejected alone, by index).
    let s = request(&nats, &subject, &batch_message()).await?;
    ensure!(s.counts() == (1, 1, 0, 0), "batch: {s:?}");
    let rejection = next_message(&mut rejected).await?;
    ensure!(
        rejection["index"] == json!(1) && rejection["code"] == json!("missing_field"),
        "unexpected rejection: {rejection}"
    );

    // Nothing else was published on either subject.
    for (name, sub) in [("rejected", &mut rejected), ("alerts", &mut alerts)] {
        if let Ok(Some(extra)) = timeout(Duration::from_millis(500), sub.next()).await {
            bail!(
                "unexpected message on {name}: {}",
                String::from_utf8_lossy(&extra.payload)
            );
        }
    }
    Ok(())
}

/// People's way in: `POST /api/readings`, answered with ingest's summary, and the
/// API's errors.
fn over_http(pipeline: &Pipeline) -> Result<()> {
    let post = |body: &[u8]| http::post(&pipeline.url("/api/readings"), "application/json", body);
    let json_of = |value: &Value| value.to_string().into_bytes();

    let r = post(&json_of(&reading("h-1", HTTP_DEVICE, "humidity_pct", 40.0)))?;
    ensure!(r.status == 200, "POST a reading: {} {}", r.status, r.body);
    let s: Summary = serde_json::from_str(&r.body)?;
    ensure!(s.counts() == (1, 0, 0, 0), "POST a reading: {s:?}");

    // An array, one of them outside the alert band: stored, alerted.
    let batch = json!([
        reading("h-2", HTTP_DEVICE, "humidity_pct", 85.0),
        reading("h-3", HTTP_DEVICE, "humidity_pct", 45.5),
    ]);
    let r = post(&json_of(&batch))?;
    ensure!(r.status == 200, "POST a batch: {} {}", r.status, r.body);
    let s: Summary = serde_json::from_str(&r.body)?;
    ensure!(s.counts() == (2, 0, 0, 1), "POST a batch: {s:?}");

    // A validation failure is a 4xx that carries the reason.
    let r = post(&json_of(&reading(
        "h-4",
        HTTP_DEVICE,
        "humidity_pct",
        140.0,
    )))?;
    expect_error(&r, 422, "humidity_pct")?;
    let body = r.json()?;
    ensure!(
        body["summary"]["rejections"][0]["code"] == json!("out_of_range"),
        "the 422 carries ingest's summary: {body}"
    );
    let r = post(&json_of(&reading(
        "h-5",
        HTTP_DEVICE,
        "pressure_hpa",
        1000.0,
    )))?;
    expect_error(&r, 422, "pressure_hpa")?;
    let r = post(b"{not json")?;
    expect_error(&r, 400, "json")?;
    let r = post(&json_of(&json!({"id": "h-6", "device": HTTP_DEVICE})))?;
    expect_error(&r, 422, "metric")?;
    let r = post(&vec![b' '; 300 * 1024])?;
    expect_error(&r, 413, "262144")?;

    // The routes' own errors.
    expect_error(&http::get(&pipeline.url("/api/readings"))?, 405, "POST")?;
    expect_error(&http::get(&pipeline.url("/api/nope"))?, 404, "/api/devices")?;
    expect_error(
        &http::get(&pipeline.url("/api/devices/ghost-1"))?,
        404,
        "ghost-1",
    )?;
    expect_error(
        &http::get(&pipeline.url("/api/devices/ghost-1/history"))?,
        404,
        "ghost-1",
    )?;
    expect_error(
        &http::get(&pipeline.url(&format!("/api/devices/{DEVICE}/history?limit=0")))?,
        400,
        "limit",
    )?;
    expect_error(
        &http::get(&pipeline.url("/api/devices/a%20b"))?,
        400,
        "device",
    )?;

    // The dashboard is a page, not JSON.
    let r = http::get(&pipeline.url("/"))?;
    ensure!(
        r.status == 200 && r.content_type == "text/html",
        "GET / should be the dashboard page: {} {}",
        r.status,
        r.content_type
    );
    Ok(())
}

/// A post naming several devices reaches ingest as one message per device, each on its
/// device's subject (so through the stream's ordered delivery), and its summary points
/// into the posted array.
async fn mixed_post(pipeline: &Pipeline) -> Result<()> {
    let nats = connect(&pipeline.nats_url).await?;
    let mut carried = nats.subscribe("neongrid.readings.>").await?;
    let mut unordered = nats.subscribe("neongrid.ingest").await?;
    timeout(Duration::from_secs(10), nats.flush())
        .await
        .context("timed out flushing subscriptions")??;
    let mut no_device = reading("m-3", "mix-1", "humidity_pct", 44.0);
    no_device.as_object_mut().unwrap().remove("device");
    let body = json!([
        reading("m-1", "mix-1", "humidity_pct", 41.0),
        reading("m-2", "mix-2", "humidity_pct", 42.0),
        no_device,
        reading("m-4", "mix-1", "humidity_pct", 43.0),
        reading("m-5", "mix-2", "humidity_pct", 140.0),
    ])
    .to_string()
    .into_bytes();
    let url = pipeline.url("/api/readings");
    let r =
        tokio::task::spawn_blocking(move || http::post(&url, "application/json", &body)).await??;
    ensure!(
        r.status == 200,
        "POST of two devices: {} {}",
        r.status,
        r.body
    );
    let s: Summary = serde_json::from_str(&r.body)?;
    let notes: Vec<_> = s
        .rejections
        .iter()
        .map(|n| (n.index, n.code.as_str()))
        .collect();
    ensure!(
        s.counts() == (3, 2, 0, 0)
            && notes == [(Some(2), "missing_field"), (Some(4), "out_of_range")],
        "POST of two devices: {s:?}"
    );
    // Nothing else publishes on a readings subject meanwhile: the first two are the post's.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let msg = timeout(EVENT_TIMEOUT, carried.next())
            .await
            .context("a device's part of the post was not seen on its subject")?
            .context("subscription closed")?;
        let ids: Vec<String> = serde_json::from_slice::<Vec<Value>>(&msg.payload)?
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        seen.push((msg.subject.to_string(), ids));
    }
    ensure!(
        seen == [
            (
                "neongrid.readings.mix-1".to_owned(),
                vec!["m-1".into(), "m-3".into(), "m-4".into()]
            ),
            (
                "neongrid.readings.mix-2".to_owned(),
                vec!["m-2".into(), "m-5".into()]
            ),
        ],
        "the post's messages: {seen:?}"
    );
    if let Ok(Some(extra)) = timeout(Duration::from_millis(500), unordered.next()).await {
        bail!(
            "the post reached neongrid.ingest: {}",
            String::from_utf8_lossy(&extra.payload)
        );
    }
    let detail: DeviceDetail = get_json(pipeline, "/api/devices/mix-1")?;
    ensure!(detail.count == 2, "mix-1 after the post: {detail:?}");
    Ok(())
}

/// A 4xx/5xx with a JSON body whose `error` mentions `needle`.
pub fn expect_error(resp: &http::Response, status: u16, needle: &str) -> Result<()> {
    ensure!(
        resp.status == status,
        "expected {status}, got {}: {}",
        resp.status,
        resp.body
    );
    ensure!(
        resp.content_type == "application/json",
        "error responses are JSON, got content-type {:?}",
        resp.content_type
    );
    let err = resp.json()?["error"]
        .as_str()
        .map(str::to_string)
        .context("no `error` field")?;
    ensure!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "error {err:?} should mention {needle:?}"
    );
    Ok(())
}

pub fn get_json<T: serde::de::DeserializeOwned>(pipeline: &Pipeline, path: &str) -> Result<T> {
    let r = http::get(&pipeline.url(path))?;
    ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.body);
    ensure!(
        r.content_type == "application/json",
        "GET {path}: {}",
        r.content_type
    );
    serde_json::from_str(&r.body).with_context(|| format!("GET {path}: {}", r.body))
}

/// What the NATS and HTTP steps stored, read back through the API, exactly.
fn read_back(pipeline: &Pipeline) -> Result<()> {
    let list: DeviceList = get_json(pipeline, "/api/devices")?;
    let counts: BTreeMap<String, u64> = list
        .devices
        .iter()
        .map(|d| (d.device.to_string(), d.count))
        .collect();
    ensure!(
        counts.get(DEVICE) == Some(&3) && counts.get(HTTP_DEVICE) == Some(&3),
        "device list: {counts:?}"
    );
    ensure!(!list.more, "a handful of devices fit one page");

    // thermo-9: r-1 21.4, r-2 50.0, r-4 22.0 (r-3 rejected, r-1 again a duplicate).
    let detail: DeviceDetail = get_json(pipeline, &format!("/api/devices/{DEVICE}"))?;
    ensure!(detail.count == 3, "count: {detail:?}");
    let temperature = detail
        .metrics
        .get("temperature_c")
        .with_context(|| format!("no temperature_c: {detail:?}"))?;
    let latest = temperature.latest.as_ref().context("no latest reading")?;
    ensure!(
        latest.id().as_str() == "r-4" && latest.value() == 22.0,
        "latest: {latest:?}"
    );
    let stats = temperature.stats.as_ref().context("no stats")?;
    let sum = (21_400_000u64 + 50_000_000 + 22_000_000) as f64 / 1e6;
    ensure!(
        stats.count == 3
            && stats.min == Some(21.4)
            && stats.max == Some(50.0)
            && stats.sum == sum
            && stats.mean == sum / 3.0,
        "stats: {stats:?}"
    );
    ensure!(detail.metrics.len() == 1, "one metric only: {detail:?}");

    let history: History = get_json(pipeline, &format!("/api/devices/{DEVICE}/history"))?;
    let seen: Vec<(u64, &str, f64)> = history
        .readings
        .iter()
        .map(|e| (e.seq, e.reading.id().as_str(), e.reading.value()))
        .collect();
    ensure!(
        seen == [(3, "r-4", 22.0), (2, "r-2", 50.0), (1, "r-1", 21.4)],
        "history, newest first: {seen:?}"
    );
    let last: History = get_json(pipeline, &format!("/api/devices/{DEVICE}/history?limit=2"))?;
    ensure!(
        last.readings.iter().map(|e| e.seq).collect::<Vec<_>>() == [3, 2],
        "history?limit=2: {last:?}"
    );

    // hygro-3, posted over HTTP: 40, 85, 45.5.
    let detail: DeviceDetail = get_json(pipeline, &format!("/api/devices/{HTTP_DEVICE}"))?;
    let humidity = &detail.metrics["humidity_pct"];
    let stats = humidity.stats.as_ref().context("no stats")?;
    ensure!(
        detail.count == 3
            && stats.count == 3
            && stats.min == Some(40.0)
            && stats.max == Some(85.0)
            && stats.sum == 170.5
            && humidity.latest.as_ref().map(|r| r.id().as_str()) == Some("h-3"),
        "{HTTP_DEVICE}: {detail:?}"
    );
    Ok(())
}

/// A message delivered again (a device that did not see the reply, a redelivering
/// broker) is recognised reading by reading: nothing is counted twice.
async fn redelivery(nats_url: &str) -> Result<()> {
    let nats = connect(nats_url).await?;
    let subject = format!("neongrid.readings.{DEVICE}");
    let s = request(&nats, &subject, &batch_message()).await?;
    ensure!(s.counts() == (0, 1, 1, 0), "redelivered batch: {s:?}");
    // A subject that names no device is judged but stores nothing, so that no reading
    // reaches the store around its device's ordered delivery.
    let s = request(
        &nats,
        "neongrid.ingest",
        &reading("r-9", DEVICE, "temperature_c", 20.0),
    )
    .await?;
    ensure!(
        s.counts() == (0, 1, 0, 0) && s.rejections[0].code == "unordered_subject",
        "a reading on neongrid.ingest: {s:?}"
    );
    Ok(())
}

/// A device's resend with the same `Nats-Msg-Id` (its receipt lost, say) is stored once:
/// the stream answers it with a duplicate receipt and no summary, or, with no stream (the
/// builtin provider), ingest finds the reading a duplicate.
async fn resend_with_msg_id(pipeline: &Pipeline) -> Result<()> {
    const RESENT_DEVICE: &str = "resend-1";
    let nats = connect(&pipeline.nats_url).await?;
    let streamed = async_nats::jetstream::new(nats.clone())
        .get_stream("NEONGRID_READINGS")
        .await
        .is_ok();
    let subject = format!("neongrid.readings.{RESENT_DEVICE}");
    let body = reading("s-1", RESENT_DEVICE, "temperature_c", 20.0).to_string();
    let msg_id = device::reading_msg_id(RESENT_DEVICE, "s-1");
    let send = || {
        timeout(
            REPLY_TIMEOUT,
            device::request(&nats, subject.clone(), body.clone().into(), Some(&msg_id)),
        )
    };
    let first: Summary = serde_json::from_slice(&send().await??.handled()?.payload)?;
    ensure!(first.counts() == (1, 0, 0, 0), "first send: {first:?}");
    match (send().await??, streamed) {
        (device::Answer::AlreadyStored, true) => {}
        (device::Answer::Handled(reply), false) => {
            let again: Summary = serde_json::from_slice(&reply.payload)?;
            ensure!(again.counts() == (0, 0, 1, 0), "resend: {again:?}");
        }
        (answer, streamed) => bail!("resend with a stream: {streamed}, answered {answer:?}"),
    }
    let url = pipeline.url(&format!("/api/devices/{RESENT_DEVICE}"));
    let r = tokio::task::spawn_blocking(move || http::get(&url)).await??;
    ensure!(
        r.status == 200 && r.json()?["count"] == json!(1),
        "{RESENT_DEVICE} after the resend: {} {}",
        r.status,
        r.body
    );
    Ok(())
}

/// Devices and readings of the concurrent burst.
const BURST_DEVICES: usize = 10;
const BURST_READINGS: usize = 1000;

/// A thousand readings published at once, one message each, over ten devices; one in
/// ten is out of range. Every one must be accounted for: stored (and counted,
/// summed, archived and taken into min and max exactly once) or rejected with a reason.
async fn burst(pipeline: &Pipeline) -> Result<()> {
    let nats = connect(&pipeline.nats_url).await?;
    let mut rejected = nats.subscribe("neongrid.rejected").await?;
    nats.flush().await?;

    // Rejections spread over every device: readings 90..99, 190..199, ...
    let value = |i: usize| {
        if (i / 10) % 10 == 9 {
            500.0
        } else {
            (i % 50) as f64 + 0.25
        }
    };
    let device = |i: usize| format!("load-{}", i % BURST_DEVICES);
    trace(&format!("publishing {BURST_READINGS} readings at once"));
    let started = std::time::Instant::now();
    let sends = (0..BURST_READINGS).map(|i| {
        let nats = nats.clone();
        let (device, value) = (device(i), value(i));
        async move {
            let body = reading(&format!("b-{i}"), &device, "temperature_c", value).to_string();
            let reply = timeout(
                BURST_TIMEOUT,
                device::request(
                    &nats,
                    format!("neongrid.readings.{device}"),
                    body.into(),
                    None,
                ),
            )
            .await;
            match reply.map(|answer| answer.and_then(device::Answer::handled)) {
                Ok(Ok(reply)) => serde_json::from_slice::<Summary>(&reply.payload)
                    .map_err(|err| anyhow!("reading {i}: reply is not a summary: {err}")),
                Ok(Err(err)) => Err(anyhow!("reading {i}: {err}")),
                Err(_) => Err(anyhow!("reading {i}: no reply within {BURST_TIMEOUT:?}")),
            }
        }
    });
    let replies = futures::future::join_all(sends).await;
    trace(&format!(
        "{BURST_READINGS} replies in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let mut total = Summary::default();
    let mut unanswered = Vec::new();
    for reply in replies {
        match reply {
            Ok(s) => {
                total.accepted += s.accepted;
                total.rejected += s.rejected;
                total.duplicates += s.duplicates;
            }
            Err(err) => unanswered.push(err.to_string()),
        }
    }

    // Every rejection was published too.
    let mut published_rejections = 0;
    while let Ok(Some(msg)) = timeout(Duration::from_secs(2), rejected.next()).await {
        let value: Value = serde_json::from_slice(&msg.payload)?;
        if value["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("neongrid.readings.load-"))
        {
            ensure!(
                value["code"] == json!("out_of_range"),
                "burst rejection: {value}"
            );
            published_rejections += 1;
        }
    }

    ensure!(
        unanswered.is_empty(),
        "{} of {BURST_READINGS} readings were not answered, e.g. {:?}; replies {total:?}",
        unanswered.len(),
        unanswered.first()
    );

    // Stored, read back through the API, per device: count, history and exact stats.
    let mut stored = 0;
    for d in 0..BURST_DEVICES {
        let name = format!("load-{d}");
        let expected: Vec<f64> = (0..BURST_READINGS)
            .filter(|i| i % BURST_DEVICES == d && value(*i) < 100.0)
            .map(value)
            .collect();
        let detail: DeviceDetail = get_json(pipeline, &format!("/api/devices/{name}"))?;
        let history: History =
            get_json(pipeline, &format!("/api/devices/{name}/history?limit=1000"))?;
        let stats = detail.metrics["temperature_c"]
            .stats
            .clone()
            .context("no stats")?;
        let sum: f64 = expected.iter().map(|v| (v * 1e6) as u64).sum::<u64>() as f64 / 1e6;
        let min = expected.iter().copied().fold(f64::INFINITY, f64::min);
        let max = expected.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut seqs: Vec<u64> = history.readings.iter().map(|e| e.seq).collect();
        seqs.sort_unstable();
        ensure!(
            detail.count == expected.len() as u64
                && stats.count == detail.count
                && stats.sum == sum
                && stats.min == Some(min)
                && stats.max == Some(max)
                && seqs == (1..=detail.count).collect::<Vec<_>>(),
            "{name}: expected {} readings summing to {sum}, from {min} to {max}; the API has \
             count {} stats {stats:?} \
             and {} archived (seqs {seqs:?})",
            expected.len(),
            detail.count,
            history.readings.len()
        );
        stored += detail.count;
    }
    trace(&format!(
        "burst: {stored} stored, {published_rejections} rejections published, replies {total:?}"
    ));
    let expected_rejections = (BURST_READINGS / 10) as u64;
    ensure!(
        stored + published_rejections == BURST_READINGS as u64
            && published_rejections == expected_rejections
            && total.accepted == stored
            && total.rejected == expected_rejections
            && total.duplicates == 0,
        "of {BURST_READINGS} readings, {stored} are stored and {published_rejections} \
         rejections were published (replies: {total:?}); expected {} and {expected_rejections}",
        BURST_READINGS as u64 - expected_rejections
    );
    Ok(())
}

/// Ingest reports store and publish failures only in the log (context `neongrid-ingest`),
/// and the messaging provider logs a handler that failed or trapped; none of that may
/// have happened.
pub fn check_host_log(lattice: &Lattice, pipeline: &Pipeline) -> Result<()> {
    let failures = host_log_failures(lattice, pipeline);
    ensure!(
        failures.is_empty(),
        "component failures in the host log:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// The host log's lines that report a component failing: its own error and warning
/// lines, and handler calls that failed or trapped.
pub fn host_log_failures(lattice: &Lattice, pipeline: &Pipeline) -> Vec<String> {
    let log = lattice.log("wasmcloud.log");
    // The whole log if the offset is not a character boundary: stricter, never laxer.
    log.get(pipeline.log_start..)
        .unwrap_or(&log)
        .lines()
        .filter(|line| {
            // The host logs a component's wasi:logging lines with their context as a
            // field (the component ids contain the same words, so match the field).
            ((line.contains("context=\"neongrid-ingest\"")
                || line.contains("context=\"neongrid-api\""))
                && (line.contains("ERROR") || line.contains("WARN")))
                || line.contains("failed to handle message")
                || line.contains("failed to call component")
        })
        .map(str::to_owned)
        .collect()
}

async fn next_message(sub: &mut async_nats::Subscriber) -> Result<Value> {
    let msg = timeout(EVENT_TIMEOUT, sub.next())
        .await
        .context("nothing published")?
        .context("subscription closed")?;
    let value: Value = serde_json::from_slice(&msg.payload)?;
    trace(&format!("{}: {value}", msg.subject));
    Ok(value)
}

/// How long one attempt of [`publish_until`] waits for ingest's answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`publish_until`] keeps sending one reading again before it gives up. A rollout
/// may leave the validator without its config for seconds on a slow machine, and each
/// "could not judge" answer comes back at once, so the budget is time, not attempts.
const RETRY_BUDGET: Duration = Duration::from_secs(60);
/// Between two attempts of one reading.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Between one publisher's readings: a steady trickle, not a flood.
const PUBLISH_PAUSE: Duration = Duration::from_millis(10);

/// Several [`publish_until`] publishers of one device, running until [`Publishers::finish`].
pub struct Publishers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(usize, usize)>>>,
}

impl Publishers {
    /// `count` publishers of `device` on `rt`, publisher `p` sending `<prefix>-<p>-<n>`.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        nats: &async_nats::Client,
        device: &'static str,
        prefix: &str,
        count: usize,
    ) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..count)
            .map(|p| {
                rt.spawn(publish_until(
                    nats.clone(),
                    device,
                    format!("{prefix}-{p}"),
                    std::sync::Arc::clone(&stop),
                ))
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops them and returns (readings sent, attempts repeated) over all of them; a
    /// reading refused for good fails its publisher, and so this.
    pub fn finish(self, rt: &tokio::runtime::Runtime) -> Result<(usize, usize)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (mut sent, mut retried) = (0, 0);
        for task in self.tasks {
            let (n, r) = rt.block_on(task)??;
            sent += n;
            retried += r;
        }
        Ok((sent, retried))
    }
}

/// Publishes readings `<prefix>-<n>` of `device` one after another until `stop`, each
/// sent again with the same id and `Nats-Msg-Id` until ingest answers for it or the
/// stream says it has it (at-least-once; the stream's deduplication and ingest's
/// idempotency keep the count exact). A reading the validator could not judge is sent
/// again too; any other refusal fails. Returns (readings sent, attempts repeated). A
/// reading the stream had may still wait in its device's queue when this returns.
pub async fn publish_until(
    nats: async_nats::Client,
    device: &'static str,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(usize, usize)> {
    let subject = format!("neongrid.readings.{device}");
    let (mut sent, mut retried) = (0, 0);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let id = format!("{prefix}-{sent}");
        let body = reading(&id, device, "temperature_c", 20.0 + (sent % 10) as f64).to_string();
        let msg_id = device::reading_msg_id(device, &id);
        let mut attempt = 0;
        let give_up = std::time::Instant::now() + RETRY_BUDGET;
        loop {
            attempt += 1;
            let answer = timeout(
                ATTEMPT_TIMEOUT,
                device::request(&nats, subject.clone(), body.clone().into(), Some(&msg_id)),
            )
            .await;
            let why = match answer {
                Ok(Ok(device::Answer::AlreadyStored)) => break,
                Ok(Ok(device::Answer::Handled(reply))) => {
                    let summary: Summary = serde_json::from_slice(&reply.payload)
                        .map_err(|err| anyhow!("{id}: reply is not a summary: {err}"))?;
                    match summary.counts() {
                        (1, 0, 0, _) | (0, 0, 1, 0) => break,
                        (0, 1, 0, 0) if summary.rejections.iter().all(|r| r.retryable) => {
                            format!("{summary:?}")
                        }
                        _ => bail!("{id}: unexpected summary {summary:?}"),
                    }
                }
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer in {ATTEMPT_TIMEOUT:?}"),
            };
            trace(&format!("{id} attempt {attempt}: {why}"));
            retried += 1;
            if std::time::Instant::now() >= give_up {
                bail!("{id}: not accepted after {attempt} attempts in {RETRY_BUDGET:?}: {why}");
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        sent += 1;
        tokio::time::sleep(PUBLISH_PAUSE).await;
    }
    Ok((sent, retried))
}
