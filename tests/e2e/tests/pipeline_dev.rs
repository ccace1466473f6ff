//! The ingest pipeline end to end: `wadm.pipeline.dev.yaml` deployed through wadm on a
//! real lattice, then driven over NATS the way devices do. Readings go in on
//! `neongrid.readings.<device>` with a reply-to; the test checks each message's summary,
//! the rejections on `neongrid.rejected`, the alerts on `neongrid.alerts.<device>`, and
//! that the HTTP API, sharing the memory store, counts the ingested readings.
//!
//! Every wait has a timeout; a failure carries the tails of the lattice's logs.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures::StreamExt;
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::{build_artifact, free_port, http, repo_root, trace, wait_for, Lattice};
use serde_json::{json, Value};
use tokio::time::timeout;

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the builtin messaging provider may take to subscribe after Deployed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(90);
/// One message's round trip: ingest, the validator and a dozen key-value calls.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// A rejection or alert, published before the reply, is expected by then.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

const DEVICE: &str = "thermo-9";
const TS: &str = "2026-11-20T10:00:00Z";

fn reading(id: &str, value: f64) -> Value {
    json!({"id": id, "device": DEVICE, "metric": "temperature_c", "value": value, "ts": TS})
}

fn summary(accepted: u64, rejected: u64, duplicates: u64, alerts: u64) -> Value {
    json!({"accepted": accepted, "rejected": rejected, "duplicates": duplicates, "alerts": alerts})
}

#[test]
fn pipeline_manifest_ingests_readings_from_nats() -> Result<()> {
    for artifact in [
        "ingest.wasm",
        "validator.wasm",
        "api.wasm",
        "keyvalue-memory.par.gz",
    ] {
        build_artifact(artifact)?;
    }

    let mut lattice = Lattice::up()?;
    let result = run(&lattice);
    if let Err(err) = result {
        bail!("{err:#}\n{}", lattice.logs());
    }
    let leaked = lattice.down()?;
    ensure!(
        leaked.is_empty(),
        "processes outlived `wash down`: {leaked:?}"
    );
    Ok(())
}

fn run(lattice: &Lattice) -> Result<()> {
    let http_port = free_port()?;
    let nats_url = format!("nats://127.0.0.1:{}", lattice.nats_port);
    let mut manifest = Manifest::load(&repo_root().join("wadm.pipeline.dev.yaml"))?;
    manifest
        .absolutize_images(&repo_root())?
        .set_http_address(&format!("127.0.0.1:{http_port}"))?
        .set_nats_uris(&nats_url)?;
    let path = lattice.dir().join("wadm.pipeline.dev.yaml");
    manifest.write(&path)?;
    let app = manifest.name()?;
    lattice.deploy(&path, &app, DEPLOY_TIMEOUT)?;

    check_ingest_links(lattice)?;

    let base = format!("http://127.0.0.1:{http_port}");
    wait_for(
        "GET /healthz to answer 200",
        Duration::from_secs(60),
        || Ok((http::get(&format!("{base}/healthz"))?.status == 200).then_some(())),
    )?;

    // The API answers a device only once it holds the API's own latest reading, which
    // ingest does not write; one post through the API gives the device that, and a
    // count of 1 that ingest's readings then add to.
    let r = http::post(
        &format!("{base}/api/devices/{DEVICE}/readings"),
        "application/json",
        json!({"metric": "temperature_c", "value": 20.0})
            .to_string()
            .as_bytes(),
    )?;
    ensure!(r.status == 200, "API post failed: {} {}", r.status, r.body);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(drive(&nats_url))?;

    // Through the API: the shared count includes the three readings ingest stored.
    let r = http::get(&format!("{base}/api/devices/{DEVICE}"))?;
    ensure!(r.status == 200, "GET device: {} {}", r.status, r.body);
    let device = r.json()?;
    trace(&format!("API sees {device}"));
    ensure!(
        device["count"] == json!(4),
        "the API should count 1 posted + 3 ingested readings: {device}"
    );

    // Ingest reports store and publish failures only in the log (context
    // `neongrid-ingest`), and the messaging provider logs a handler that failed or
    // trapped; none of that may have happened.
    let log = lattice.log("wasmcloud.log");
    let failures: Vec<&str> = log
        .lines()
        .filter(|line| {
            (line.contains("neongrid-ingest") && (line.contains("ERROR") || line.contains("WARN")))
                || line.contains("failed to handle message")
                || line.contains("failed to call component")
        })
        .collect();
    ensure!(
        failures.is_empty(),
        "ingest failures in the host log:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// The manifest gives ingest two key-value links told apart by name, which is what
/// its `set-link-name` calls select; both must exist on the lattice.
fn check_ingest_links(lattice: &Lattice) -> Result<()> {
    let links = lattice.wash_json(&["get", "links"])?;
    let list = links["links"]
        .as_array()
        .with_context(|| format!("unexpected `wash get links` output: {links}"))?;
    for name in ["hot", "archive"] {
        let found = list.iter().any(|link| {
            link["name"] == json!(name)
                && link["source_id"]
                    .as_str()
                    .is_some_and(|source| source.contains("ingest"))
                && link["wit_namespace"] == json!("wasi")
                && link["wit_package"] == json!("keyvalue")
        });
        ensure!(found, "no key-value link named {name} from ingest: {links}");
    }
    Ok(())
}

async fn drive(nats_url: &str) -> Result<()> {
    let nats = timeout(Duration::from_secs(10), async_nats::connect(nats_url))
        .await
        .context("timed out connecting to NATS")??;
    let mut rejected = nats.subscribe("neongrid.rejected").await?;
    let mut alerts = nats.subscribe("neongrid.alerts.>").await?;
    timeout(Duration::from_secs(10), nats.flush())
        .await
        .context("timed out flushing subscriptions")??;

    // The provider subscribes for ingest a moment after wadm says Deployed: send a
    // reading of a device nobody looks at, with a fresh id each time, until one is
    // answered.
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let body = json!({"id": format!("w-{attempt}"), "device": "warmup-1",
                          "metric": "temperature_c", "value": 20.0, "ts": TS});
        let answer = timeout(
            Duration::from_secs(3),
            nats.request("neongrid.readings.warmup-1", body.to_string().into()),
        )
        .await;
        match answer {
            Ok(Ok(reply)) => {
                let reply: Value = serde_json::from_slice(&reply.payload)?;
                trace(&format!("ingest answers after {attempt} attempts: {reply}"));
                ensure!(reply == summary(1, 0, 0, 0), "warm-up reading: {reply}");
                break;
            }
            Ok(Err(err)) => trace(&format!("warm-up attempt {attempt}: {err}")),
            Err(_) => trace(&format!("warm-up attempt {attempt}: no answer in 3s")),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("ingest never answered a reading within {SUBSCRIBE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let subject = format!("neongrid.readings.{DEVICE}");
    let send = |payload: Vec<u8>| {
        let nats = nats.clone();
        let subject = subject.clone();
        async move {
            let reply = timeout(REPLY_TIMEOUT, nats.request(subject.clone(), payload.into()))
                .await
                .map_err(|_| anyhow!("no reply on {subject} within {REPLY_TIMEOUT:?}"))??;
            serde_json::from_slice::<Value>(&reply.payload)
                .with_context(|| format!("reply is not JSON: {:?}", reply.payload))
        }
    };
    let json_of = |value: &Value| value.to_string().into_bytes();

    // A normal reading is stored.
    let reply = send(json_of(&reading("r-1", 21.4))).await?;
    ensure!(reply == summary(1, 0, 0, 0), "normal reading: {reply}");

    // One above the alert band is stored and raises an alert on the device's subject.
    let reply = send(json_of(&reading("r-2", 50.0))).await?;
    ensure!(reply == summary(1, 0, 0, 1), "alerting reading: {reply}");
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
    let reply = send(json_of(&reading("r-1", 21.4))).await?;
    ensure!(reply == summary(0, 0, 1, 0), "repeated reading: {reply}");

    // A malformed message is rejected as a whole, with a reason and the original.
    let reply = send(b"{not json".to_vec()).await?;
    ensure!(reply == summary(0, 1, 0, 0), "malformed message: {reply}");
    let rejection = next_rejection(&mut rejected).await?;
    ensure!(
        rejection["subject"] == json!(format!("neongrid.readings.{DEVICE}"))
            && rejection["code"] == json!("not_json")
            && rejection["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("JSON"))
            && rejection["original"] == json!("{not json"),
        "unexpected rejection: {rejection}"
    );

    // The validator's rejection: outside the valid range, not stored.
    let reply = send(json_of(&reading("r-3", 90.0))).await?;
    ensure!(
        reply == summary(0, 1, 0, 0),
        "out-of-range reading: {reply}"
    );
    let rejection = next_rejection(&mut rejected).await?;
    ensure!(
        rejection["code"] == json!("out_of_range")
            && rejection["retryable"] == json!(false)
            && rejection["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("temperature_c")),
        "unexpected rejection: {rejection}"
    );

    // A batch: one good reading, one without a timestamp (rejected alone, by index).
    let mut incomplete = reading("r-5", 22.0);
    incomplete.as_object_mut().unwrap().remove("ts");
    let batch = json!([reading("r-4", 22.0), incomplete]);
    let reply = send(json_of(&batch)).await?;
    ensure!(reply == summary(1, 1, 0, 0), "batch: {reply}");
    let rejection = next_rejection(&mut rejected).await?;
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

async fn next_rejection(sub: &mut async_nats::Subscriber) -> Result<Value> {
    let msg = timeout(EVENT_TIMEOUT, sub.next())
        .await
        .context("no rejection published")?
        .context("rejection subscription closed")?;
    let value: Value = serde_json::from_slice(&msg.payload)?;
    trace(&format!("rejection: {value}"));
    Ok(value)
}
