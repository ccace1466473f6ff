//! The key-value conformance cases through the lattice: one component binary, deployed by
//! wadm against the memory, then the Redis, then the Postgres provider, with only the
//! manifest changing. The component runs the cases from inside WebAssembly (`GET /run`),
//! so every call crosses wasi:keyvalue, wRPC over NATS and the provider. Afterwards a
//! plain Redis client and `psql` find the one key the run leaves where
//! providers/README.md says each backend keeps its data.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::{build_artifact, free_port, http, repo_root, wait_for, Lattice};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use sha2::{Digest, Sha256};
use test_servers::{PostgresServer, RedisServer};

const COMPONENT: &str = "kv-conformance-component.wasm";
const TEMPLATE: &str = "tests/e2e/manifests/kv-conformance.yaml";
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// A run takes about a second; the margin is for a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The Redis provider's key layout (providers/README.md, "Where the data lives").
const REDIS_PREFIX: &str = "neongrid:kv:";

fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(bytes)))
}

/// The template, renamed to `app`, with the given provider archive and the key-value
/// link's target config; written into the lattice's directory, ready to deploy.
fn manifest_for(
    lattice: &Lattice,
    app: &str,
    provider: &str,
    link_config: &[(&str, String)],
    http_port: u16,
) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(repo_root().join(TEMPLATE))?;
    let mut doc: Yaml = serde_yaml::from_str(&text)?;
    doc["metadata"]["name"] = Yaml::from(app);
    let components = doc["spec"]["components"]
        .as_sequence_mut()
        .context("template has no spec.components")?;
    let mut swapped = (false, false);
    for c in components.iter_mut() {
        match c["name"].as_str() {
            Some("keyvalue") => {
                c["properties"]["image"] = Yaml::from(format!("file://./build/{provider}"));
                swapped.0 = true;
            }
            Some("conformance") if !link_config.is_empty() => {
                let link = c["traits"]
                    .as_sequence_mut()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == "link")
                    .context("conformance component has no link")?;
                let mut props = serde_yaml::Mapping::new();
                for (k, v) in link_config {
                    props.insert(Yaml::from(*k), Yaml::from(v.as_str()));
                }
                let mut cfg = serde_yaml::Mapping::new();
                cfg.insert("name".into(), Yaml::from(format!("{app}-keyvalue")));
                cfg.insert("properties".into(), Yaml::Mapping(props));
                link["properties"]["target"]["config"] = Yaml::Sequence(vec![Yaml::Mapping(cfg)]);
                swapped.1 = true;
            }
            Some("httpserver") => {
                // Named configs are lattice-wide; one per application.
                let cfg = c
                    .get_mut("traits")
                    .and_then(Yaml::as_sequence_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        t.get_mut("properties")?
                            .get_mut("source")?
                            .get_mut("config")
                    })
                    .filter_map(Yaml::as_sequence_mut)
                    .flatten()
                    .next()
                    .context("http server link has no source config")?;
                cfg["name"] = Yaml::from(format!("{app}-http"));
            }
            _ => {}
        }
    }
    ensure!(swapped.0, "template has no `keyvalue` provider to swap");
    ensure!(
        link_config.is_empty() || swapped.1,
        "template has no key-value link to configure"
    );

    let raw = lattice.dir().join(format!("{app}.template.yaml"));
    std::fs::write(&raw, serde_yaml::to_string(&doc)?)?;
    let mut manifest = Manifest::load(&raw)?;
    manifest
        .absolutize_images(&repo_root())?
        .set_http_address(&format!("127.0.0.1:{http_port}"))?;
    let path = lattice.dir().join(format!("{app}.yaml"));
    manifest.write(&path)?;
    Ok(path)
}

/// Deploys the component against one provider, runs the cases, checks every one passed,
/// and returns the `/run` answer; the application is left deployed.
fn deploy_and_run(
    lattice: &Lattice,
    app: &str,
    provider: &str,
    link_config: &[(&str, String)],
    query: &str,
) -> Result<Value> {
    let port = free_port()?;
    let manifest = manifest_for(lattice, app, provider, link_config, port)?;
    let t0 = Instant::now();
    lattice.deploy(&manifest, app, DEPLOY_TIMEOUT)?;
    let base = format!("http://127.0.0.1:{port}");
    // Deployed can precede the HTTP listener and the provider's subscriptions by a moment:
    // first wait until one key-value call gets through. Every request has a timeout, so a
    // call that never gets an answer fails the test instead of hanging it.
    wait_for("GET /ready to answer 200", Duration::from_secs(90), || {
        let r = http::get_with_timeout(&format!("{base}/ready"), READY_TIMEOUT)?;
        ensure!(r.status == 200, "{} {}", r.status, r.body);
        Ok(Some(()))
    })
    .map_err(|e| anyhow!("{e:#}\n{}", lattice.logs()))?;
    let resp = http::get_with_timeout(&format!("{base}/run{query}"), RUN_TIMEOUT)
        .map_err(|e| anyhow!("GET /run: {e:#}\n{}", lattice.logs()))?;
    ensure!(
        resp.content_type == "application/json",
        "{app}: GET /run answered {} {:?} (a trap in the component?)\n{}",
        resp.status,
        resp.body,
        lattice.logs()
    );
    let body = resp.json()?;
    eprintln!(
        "{app} ({provider}): {} in {:.1?}: {body}",
        resp.status,
        t0.elapsed()
    );
    let failed = body["failed"].as_array().context("no `failed` list")?;
    ensure!(
        resp.status == 200 && failed.is_empty(),
        "{app}: conformance failed through the lattice ({}): {failed:#?}",
        resp.status
    );
    let passed = body["passed"].as_array().context("no `passed` list")?;
    ensure!(passed.len() >= 10, "too few cases ran: {passed:?}");
    Ok(body)
}

fn undeploy(lattice: &Lattice, app: &str) -> Result<()> {
    lattice.wash(&["app", "undeploy", app])?;
    lattice.wash(&["app", "delete", app])?;
    // The provider goes away with its application before the next one starts.
    wait_for(
        &format!("{app}'s workloads to leave the host"),
        Duration::from_secs(60),
        || {
            let inventory = lattice.wash_json(&["get", "inventory"])?.to_string();
            Ok((!inventory.contains("kv-conformance-component.wasm")
                && !inventory.contains(".par.gz"))
            .then_some(()))
        },
    )
}

#[test]
// Passes when run on its own (and after dev_slice), but twice hung in GET /run (memory
// phase) inside the full `scripts/test.sh` run; not yet diagnosed. Run it explicitly:
//   cargo test -p neongrid-e2e --test kv_lattice_conformance -- --ignored
#[ignore = "hangs in GET /run under the full scripts/test.sh run; not yet diagnosed"]
fn one_component_binary_passes_on_memory_redis_and_postgres_through_the_lattice() -> Result<()> {
    let component = build_artifact(COMPONENT)?;
    for p in ["memory", "redis", "postgres"] {
        build_artifact(&format!("keyvalue-{p}.par.gz"))?;
    }
    let digest = sha256(&component)?;
    let same_binary = || -> Result<()> {
        let now = sha256(&component)?;
        ensure!(now == digest, "{COMPONENT} changed during the test");
        Ok(())
    };

    let mut lattice = Lattice::up()?;

    // 1. Memory.
    deploy_and_run(&lattice, "kvc-memory", "keyvalue-memory.par.gz", &[], "")?;
    undeploy(&lattice, "kvc-memory")?;
    same_binary()?;

    // 2. Redis, with a witness key left behind to find in the server.
    let redis = RedisServer::start()?;
    let body = deploy_and_run(
        &lattice,
        "kvc-redis",
        "keyvalue-redis.par.gz",
        &[("url", redis.url())],
        "?witness",
    )?;
    undeploy(&lattice, "kvc-redis")?;
    same_binary()?;
    check_redis_layout(&redis.url(), &body)?;

    // 3. Postgres, again with a witness.
    let postgres = PostgresServer::start()?;
    let body = deploy_and_run(
        &lattice,
        "kvc-postgres",
        "keyvalue-postgres.par.gz",
        &[("url", postgres.url())],
        "?witness",
    )?;
    undeploy(&lattice, "kvc-postgres")?;
    same_binary()?;
    check_postgres_layout(&postgres.url(), &body)?;

    let leaked = lattice.down()?;
    ensure!(
        leaked.is_empty(),
        "processes outlived `wash down`: {leaked:?}"
    );
    Ok(())
}

/// The witness the run left: (bucket, key, value).
fn witness(body: &Value) -> Result<(&str, &str, &str)> {
    let w = &body["witness"];
    match (w["bucket"].as_str(), w["key"].as_str(), w["value"].as_str()) {
        (Some(b), Some(k), Some(v)) => Ok((b, k, v)),
        _ => bail!("no witness in the answer: {body}"),
    }
}

/// With `psql`: the only row the run left is the witness, in table `neongrid_kv` with its
/// bucket in the `bucket` column, as providers/README.md says.
fn check_postgres_layout(url: &str, body: &Value) -> Result<()> {
    let (bucket, key, value) = witness(body)?;
    let out = std::process::Command::new("psql")
        .args([
            url,
            "-At",
            "-F",
            "|",
            "-c",
            "SELECT convert_from(bucket, 'UTF8'), convert_from(key, 'UTF8'), \
             convert_from(value, 'UTF8') FROM neongrid_kv ORDER BY id",
        ])
        .output()
        .context("running psql (apt-get install postgresql-client)")?;
    ensure!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = String::from_utf8_lossy(&out.stdout);
    ensure!(
        rows.trim() == format!("{bucket}|{key}|{value}"),
        "the run should leave only its witness in neongrid_kv, found:\n{rows}"
    );
    Ok(())
}

/// With a plain Redis client: the only key the run left is the witness, stored under
/// `neongrid:kv:<bucket>:<key>` as providers/README.md says, and every other bucket of
/// the run is empty.
fn check_redis_layout(url: &str, body: &Value) -> Result<()> {
    let (bucket, key, value) = witness(body)?;
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection()?;
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{REDIS_PREFIX}{bucket}:{key}"))
        .query(&mut con)?;
    ensure!(
        stored.as_deref() == Some(value),
        "witness not at {REDIS_PREFIX}{bucket}:{key}: {stored:?}"
    );
    let mut all: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con)?;
    all.sort();
    ensure!(
        all == vec![format!("{REDIS_PREFIX}{bucket}:{key}")],
        "the run should leave only its witness in Redis, found {all:?}"
    );
    for b in body["buckets"].as_array().context("no buckets")? {
        let b = b.as_str().context("bucket is not a string")?;
        ensure!(
            b.chars().all(|c| c != ':' && c != '%'),
            "bucket {b:?} would be escaped in Redis keys"
        );
    }
    Ok(())
}
