//! The first slice, end to end: the development manifest deployed through wadm on a real
//! lattice (wash, nats-server, wasmCloud host, wadm), then driven over HTTP.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::{build_artifact, free_port, http, repo_root, wait_for, Lattice};
use serde_json::{json, Value};

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);

fn reading(base: &str, device: &str, body: Value) -> Result<http::Response> {
    http::post(
        &format!("{base}/api/devices/{device}/readings"),
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// A 4xx with a JSON body whose `error` mentions `needle`.
fn assert_client_error(resp: &http::Response, status: u16, needle: &str) -> Result<()> {
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

#[test]
fn dev_manifest_deploys_through_wadm_and_serves_the_api() -> Result<()> {
    build_artifact("api.wasm")?;
    build_artifact("keyvalue-memory.par.gz")?;

    let mut lattice = Lattice::up()?;
    let port = free_port()?;
    let mut manifest = Manifest::load(&repo_root().join("wadm.dev.yaml"))?;
    manifest
        .absolutize_images(&repo_root())?
        .set_http_address(&format!("127.0.0.1:{port}"))?;
    let path = lattice.dir().join("wadm.dev.yaml");
    manifest.write(&path)?;
    let app = manifest.name()?;
    lattice.deploy(&path, &app, DEPLOY_TIMEOUT)?;

    // wadm reports Deployed once the host accepted the workloads; the HTTP listener and
    // the provider's lattice subscriptions can trail that by a moment.
    let base = format!("http://127.0.0.1:{port}");
    let health = wait_for(
        "GET /healthz to answer 200",
        Duration::from_secs(60),
        || {
            let r = http::get(&format!("{base}/healthz"))?;
            Ok((r.status == 200).then_some(r))
        },
    )?;
    assert_eq!(health.json()?, json!({"status": "ok"}));

    // The component and the provider run on the host, as wadm placed them.
    let inventory = lattice.wash_json(&["get", "inventory"])?.to_string();
    assert!(
        inventory.contains("api.wasm"),
        "api component not in inventory: {inventory}"
    );
    assert!(
        inventory.contains("keyvalue-memory.par.gz"),
        "memory provider not in inventory: {inventory}"
    );

    // Record readings: the latest value is replaced, the count goes up atomically.
    let r = reading(
        &base,
        "thermo-17",
        json!({"metric": "temperature_c", "value": 21.4}),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()?["count"], json!(1));
    let r = reading(
        &base,
        "thermo-17",
        json!({"metric": "temperature_c", "value": 22.5}),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()?["count"], json!(2));
    let r = reading(
        &base,
        "hygro-3",
        json!({"metric": "humidity_pct", "value": 40}),
    )?;
    assert_eq!(r.json()?["count"], json!(1), "devices do not share a count");

    let r = http::get(&format!("{base}/api/devices/thermo-17"))?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let device = r.json()?;
    assert_eq!(device["device"], json!("thermo-17"));
    assert_eq!(device["count"], json!(2));
    assert_eq!(device["latest"]["metric"], json!("temperature_c"));
    assert_eq!(device["latest"]["value"], json!(22.5));

    // Concurrent writers: every increment lands, through the provider, exactly once.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || -> Result<()> {
                for j in 0..5 {
                    let r = reading(
                        &base,
                        "burst-1",
                        json!({"metric": "load", "value": i * 10 + j}),
                    )?;
                    ensure!(r.status == 200, "write failed: {} {}", r.status, r.body);
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread")?;
    }
    let r = http::get(&format!("{base}/api/devices/burst-1"))?;
    assert_eq!(r.json()?["count"], json!(40));

    // Bad input gets a 4xx JSON error that names the problem, and breaks nothing.
    let r = http::post(
        &format!("{base}/api/devices/thermo-17/readings"),
        "application/json",
        b"{not json",
    )?;
    assert_client_error(&r, 400, "json")?;
    let r = reading(&base, "thermo-17", json!({"metric": "temperature_c"}))?;
    ensure!(
        matches!(r.status, 400 | 422),
        "missing value: {} {}",
        r.status,
        r.body
    );
    assert_client_error(&r, r.status, "value")?;
    let r = reading(
        &base,
        "thermo-17",
        json!({"metric": "temperature_c", "value": "hot"}),
    )?;
    ensure!(
        matches!(r.status, 400 | 422),
        "wrong type: {} {}",
        r.status,
        r.body
    );
    assert_client_error(&r, r.status, "value")?;
    let r = reading(&base, "bad%20id!", json!({"metric": "t", "value": 1}))?;
    assert_client_error(&r, 400, "device")?;
    let r = http::get(&format!("{base}/api/devices/never-seen"))?;
    assert_client_error(&r, 404, "never-seen")?;
    let r = http::request("DELETE", &format!("{base}/api/devices/thermo-17"))?;
    assert_client_error(&r, 405, "method")?;
    let r = http::get(&format!("{base}/no/such/route"))?;
    assert_client_error(&r, 404, "/no/such/route")?;
    let big = vec![b' '; 128 * 1024];
    let r = http::post(
        &format!("{base}/api/devices/thermo-17/readings"),
        "application/json",
        &big,
    )?;
    assert_client_error(&r, 413, "large")?;

    // None of that changed the stored state.
    let r = http::get(&format!("{base}/api/devices/thermo-17"))?;
    assert_eq!(r.json()?["count"], json!(2));
    assert_eq!(r.json()?["latest"]["value"], json!(22.5));

    // `wash down` takes everything with it.
    let leaked = lattice.down()?;
    assert!(
        leaked.is_empty(),
        "processes outlived `wash down`: {leaked:?}"
    );
    Ok(())
}
