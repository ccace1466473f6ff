//! The key-value conformance cases through the lattice: one component binary, deployed by
//! wadm against the memory, then the Redis, then the Postgres provider, with only the
//! manifest changing. Every call crosses wasi:keyvalue, the host, wRPC over NATS and the
//! provider. For each backend:
//!
//! - the component runs its cases (`GET /run`), named as in the native suite;
//! - the test drives the cases that need many callers or large values from outside;
//! - for Redis and Postgres, the backend server is stopped and started again under the
//!   running provider: calls fail with a clear error, then succeed, and the provider
//!   process is the same one;
//! - a plain `redis-cli` and `psql` find the key each run leaves where providers/README.md
//!   says each backend keeps its data.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use neongrid_e2e::kv::{self, Backend, Deployed, COMPONENT};
use neongrid_e2e::{build_artifact, http, run_tool, trace, wait_for, Lattice};
use serde_json::Value;
use sha2::{Digest, Sha256};
use test_servers::{PostgresServer, RedisServer, TestServer};

/// A run takes seconds; the margin is for a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// A single operation; a call that hangs fails the test after this long.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// The Redis provider's key layout (providers/README.md, "Where the data lives").
const REDIS_PREFIX: &str = "neongrid:kv:";
/// Every provider's default `max_value_size` (providers/README.md): the largest value that
/// crosses the lattice, which this test proves, and one byte more must be refused.
const MAX_VALUE_SIZE: usize = keyvalue_memory::DEFAULT_MAX_VALUE_SIZE;

/// Native cases (`keyvalue_conformance::CASES`) that the test itself drives through the
/// lattice, because they need many callers at once, values too large for one request, or
/// a backend restart.
const DRIVEN_BY_TEST: &[&str] = &[
    "concurrent_increments_match_declaration",
    "concurrent_callers_on_distinct_keys",
    "value_size_limit_matches_declaration",
    "persistence_matches_declaration",
];

/// Native cases that cannot cross `wasi:keyvalue`, and why. They run natively for every
/// backend.
const NOT_THROUGH_LATTICE: &[(&str, &str)] = &[
    (
        "list_keys_clamps_limits",
        "wasi:keyvalue's list-keys has no page-size parameter",
    ),
    (
        "batch_atomicity_matches_declaration",
        "needs a batch refused half way, which only the store API can provoke",
    ),
    (
        "health_reports_reachable",
        "health is a host-to-provider check that components cannot call",
    ),
];

fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(bytes)))
}

fn get(d: &Deployed, path_and_query: &str) -> Result<http::Response> {
    http::get_with_timeout(&d.url(path_and_query), OP_TIMEOUT)
        .with_context(|| format!("{}: GET {path_and_query}", d.app))
}

/// The component's cases pass, and together with the test-driven and excluded ones they
/// are exactly the native suite's cases.
fn run_cases(lattice: &Lattice, d: &Deployed, witness: bool) -> Result<Value> {
    let query = if witness { "/run?witness" } else { "/run" };
    let resp = http::get_with_timeout(&d.url(query), RUN_TIMEOUT)
        .with_context(|| format!("{}: GET {query}\n{}", d.app, lattice.logs()))?;
    ensure!(
        resp.content_type == "application/json",
        "{}: GET /run answered {} {:?} (a trap in the component?)\n{}",
        d.app,
        resp.status,
        resp.body,
        lattice.logs()
    );
    let body = resp.json()?;
    trace(&format!("{}: {} {body}", d.app, resp.status));
    let failed = body["failed"].as_array().context("no `failed` list")?;
    ensure!(
        resp.status == 200 && failed.is_empty(),
        "{}: conformance failed through the lattice ({}): {failed:#?}",
        d.app,
        resp.status
    );
    let passed: BTreeSet<&str> = body["passed"]
        .as_array()
        .context("no `passed` list")?
        .iter()
        .filter_map(Value::as_str)
        .filter(|c| !matches!(*c, "cleanup_leaves_buckets_empty" | "witness_written"))
        .collect();
    let accounted: BTreeSet<&str> = passed
        .iter()
        .copied()
        .chain(DRIVEN_BY_TEST.iter().copied())
        .chain(NOT_THROUGH_LATTICE.iter().map(|(c, _)| *c))
        .collect();
    let native: BTreeSet<&str> = keyvalue_conformance::CASES.iter().copied().collect();
    ensure!(
        accounted == native,
        "the lattice run must account for every native case exactly;\n  missing: {:?}\n  unknown: {:?}",
        native.difference(&accounted).collect::<Vec<_>>(),
        accounted.difference(&native).collect::<Vec<_>>()
    );
    Ok(body)
}

/// Many callers at once: 8 requests × 25 increments of one counter add up exactly (every
/// backend declares `atomic_increment`), and 16 callers on distinct keys never see each
/// other's values.
fn concurrent_callers(d: &Deployed, backend: Backend) -> Result<()> {
    let bucket = format!("kvc-race-{}", backend.name());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = d.url(&format!("/increment?bucket={bucket}&key=race&times=25"));
            std::thread::spawn(move || http::get_with_timeout(&url, OP_TIMEOUT))
        })
        .collect();
    for t in threads {
        let r = t.join().expect("increment thread")?;
        ensure!(r.status == 200, "increment: {} {}", r.status, r.body);
    }
    let r = get(d, &format!("/increment?bucket={bucket}&key=race&times=1"))?;
    ensure!(r.status == 200, "increment: {} {}", r.status, r.body);
    let after = r.json()?["value"].as_u64().context("no counter value")?;
    ensure!(
        after == 201,
        "8 × 25 concurrent increments plus one should make 201, got {after}"
    );

    let threads: Vec<_> = (0..16)
        .map(|t| {
            let d = d.url("");
            std::thread::spawn(move || -> Result<()> {
                for i in 0..5 {
                    let url = format!("{d}/value?size={}&bucket=kvc-distinct-{t}", 16 + i * t);
                    let r = http::get_with_timeout(&url, OP_TIMEOUT)?;
                    ensure!(r.status == 200, "caller {t}: {} {}", r.status, r.body);
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller thread")?;
    }
    Ok(())
}

/// The largest value the providers accept by default crosses the lattice both ways intact
/// (16 MiB, well over NATS's 1 MiB message limit, which wRPC splits values across); one
/// byte more comes back as the provider's clear error, not a trap or a hang.
fn value_size_limit(d: &Deployed, backend: Backend) -> Result<()> {
    for size in [0, 1 << 20, (1 << 20) + 1, MAX_VALUE_SIZE] {
        let r = get(d, &format!("/value?size={size}"))?;
        ensure!(
            r.status == 200 && r.json()?["round_trip"] == Value::Bool(true),
            "{}: a {size}-byte value should cross the lattice: {} {}",
            backend.name(),
            r.status,
            r.body
        );
    }
    let over = MAX_VALUE_SIZE + 1;
    let r = get(d, &format!("/value?size={over}"))?;
    let error = r.json()?["error"].as_str().unwrap_or_default().to_string();
    ensure!(
        r.status == 503
            && error.contains(&format!("{over} bytes"))
            && error.contains(&MAX_VALUE_SIZE.to_string()),
        "{}: a {over}-byte value should be refused with the size and the limit, got {} {}",
        backend.name(),
        r.status,
        r.body
    );
    Ok(())
}

/// The pids of the key-value provider processes of this lattice. The host runs a provider
/// from its cache under a name made of the archive's path with `/`, `-` and `.` as `_`.
fn provider_pids(lattice: &Lattice, backend: Backend) -> Vec<u32> {
    let name = backend.archive().replace(['-', '.'], "_");
    lattice
        .processes()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&name))
        .map(|(pid, _)| pid)
        .collect()
}

/// Stops the backend under the running provider and starts it again: while it is down a
/// call fails fast with an error naming the backend and the operation; afterwards calls
/// succeed again, the same provider process serves them, and the data written before the
/// restart is still there (Redis and Postgres declare `persistent`).
fn survives_backend_restart(
    lattice: &Lattice,
    d: &Deployed,
    backend: Backend,
    server: &mut dyn TestServer,
) -> Result<()> {
    let probe = "/probe?bucket=kvc-restart";
    let r = get(d, probe)?;
    ensure!(
        r.status == 200,
        "probe before restart: {} {}",
        r.status,
        r.body
    );
    let before = r.json()?["count"].as_u64().context("no count")?;
    let pids = provider_pids(lattice, backend);
    ensure!(
        !pids.is_empty(),
        "no {} provider process among {:?}",
        backend.name(),
        lattice.processes()
    );

    server.stop()?;
    trace(&format!("{} stopped", backend.name()));
    let r = get(d, probe)?;
    trace(&format!("while down: {} {}", r.status, r.body));
    let error = r.json()?["error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    ensure!(
        r.status == 503 && error.contains(backend.name()) && error.contains("set"),
        "while {} is down, a set should fail with an error naming the backend and the \
         operation, got {} {}",
        backend.name(),
        r.status,
        r.body
    );

    server.start_again()?;
    trace(&format!("{} started again", backend.name()));
    let r = wait_for(
        &format!("calls to succeed after {} came back", backend.name()),
        Duration::from_secs(60),
        || {
            let r = get(d, probe)?;
            Ok((r.status == 200).then_some(r))
        },
    )?;
    let after = r.json()?["count"].as_u64().context("no count")?;
    ensure!(
        after == before + 1,
        "the counter should continue from {before} after the restart, got {after}"
    );
    ensure!(
        provider_pids(lattice, backend) == pids,
        "the provider was restarted ({pids:?} -> {:?}); it should have reconnected",
        provider_pids(lattice, backend)
    );
    Ok(())
}

/// Deploys the component against `backend` (linked to `server`, if it has one), runs every
/// check through the lattice, and undeploys it.
fn exercise(
    lattice: &Lattice,
    backend: Backend,
    server: Option<&mut dyn TestServer>,
) -> Result<()> {
    let link: Vec<(&str, String)> = server
        .as_ref()
        .map(|s| vec![("url", s.url())])
        .unwrap_or_default();
    let app = format!("kvc-{}", backend.name());
    let d = kv::deploy(lattice, &app, backend, &link, 16)?;
    let body = run_cases(lattice, &d, server.is_some())?;
    concurrent_callers(&d, backend)?;
    value_size_limit(&d, backend)?;
    if let Some(server) = server {
        match backend {
            Backend::Redis => check_redis_layout(&server.url(), &body)?,
            Backend::Postgres => check_postgres_layout(&server.url(), &body)?,
            Backend::Memory => {}
        }
        survives_backend_restart(lattice, &d, backend, server)?;
    }
    kv::undeploy(lattice, &d.app)
}

#[test]
fn one_component_binary_passes_on_memory_redis_and_postgres_through_the_lattice() -> Result<()> {
    let component = build_artifact(COMPONENT)?;
    for backend in Backend::ALL {
        build_artifact(&backend.archive())?;
    }
    let digest = sha256(&component)?;
    let same_binary = || -> Result<()> {
        ensure!(
            sha256(&component)? == digest,
            "{COMPONENT} changed during the test"
        );
        Ok(())
    };

    let mut lattice = Lattice::up()?;

    // The same binary each time; only the provider and its link config change.
    exercise(&lattice, Backend::Memory, None)?;
    same_binary()?;
    exercise(&lattice, Backend::Redis, Some(&mut RedisServer::start()?))?;
    same_binary()?;
    exercise(
        &lattice,
        Backend::Postgres,
        Some(&mut PostgresServer::start()?),
    )?;
    same_binary()?;

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

/// With `psql`: the witness sits in table `neongrid_kv`, its bucket in the `bucket`
/// column, as providers/README.md says, and no other row of the run's buckets is left.
fn check_postgres_layout(url: &str, body: &Value) -> Result<()> {
    let (bucket, key, value) = witness(body)?;
    let run_buckets: Vec<&str> = body["buckets"]
        .as_array()
        .context("no buckets")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let rows = run_tool(
        Command::new("psql").args([
            url,
            "-At",
            "-F",
            "|",
            "-c",
            "SELECT convert_from(bucket, 'UTF8'), convert_from(key, 'UTF8'), \
             convert_from(value, 'UTF8') FROM neongrid_kv ORDER BY id",
        ]),
        "psql",
    )?;
    let of_run: Vec<&str> = rows
        .lines()
        .filter(|row| {
            run_buckets
                .iter()
                .any(|b| row.starts_with(&format!("{b}|")))
        })
        .collect();
    ensure!(
        of_run == [format!("{bucket}|{key}|{value}")],
        "the run should leave only its witness in neongrid_kv, found:\n{rows}"
    );
    Ok(())
}

/// With `redis-cli`: the witness is stored under `neongrid:kv:<bucket>:<key>` as
/// providers/README.md says, and no other key of the run's buckets is left.
fn check_redis_layout(url: &str, body: &Value) -> Result<()> {
    let (bucket, key, value) = witness(body)?;
    let stored_at = format!("{REDIS_PREFIX}{bucket}:{key}");
    let stored = run_tool(
        Command::new("redis-cli").args(["-u", url, "--no-raw", "GET", &stored_at]),
        "redis-cli",
    )?;
    ensure!(
        stored.trim() == format!("\"{value}\""),
        "witness not at {stored_at}: {stored:?}"
    );
    let mut of_run = Vec::new();
    for b in body["buckets"].as_array().context("no buckets")? {
        let b = b.as_str().context("bucket is not a string")?;
        let pattern = format!("{REDIS_PREFIX}{b}:*");
        let keys = run_tool(
            Command::new("redis-cli").args(["-u", url, "--scan", "--pattern", &pattern]),
            "redis-cli",
        )?;
        of_run.extend(keys.lines().map(str::to_string));
    }
    ensure!(
        of_run == [stored_at.clone()],
        "the run should leave only its witness in Redis, found {of_run:?}"
    );
    Ok(())
}
