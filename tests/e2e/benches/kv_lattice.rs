//! What the lattice costs a key-value call: get, set, increment and batch-get of 100 keys
//! against the memory, Redis and Postgres providers, at concurrency 1 and 16, measured in
//! one run over three paths:
//!
//! - **patched** and **stock**: two lattices side by side, one on the host `scripts/setup.sh`
//!   installs, one on the same host built without the client-per-target fix
//!   (`scripts/build-stock-host.sh`). The conformance component's `GET /bench` route times
//!   each call inside the component, so a figure covers wasi:keyvalue, the host, wRPC over
//!   NATS, the provider and its backend, as a component sees it. The CPU time the host,
//!   nats-server and provider processes used during a batch, divided by its calls, is the
//!   CPU per call;
//! - **direct**: the backend's own Rust client in this process, sending what the provider
//!   sends (the memory store through the `Store` trait; the provider's Redis commands and
//!   increment script; the provider's SQL statements).
//!
//! Run after `scripts/build.sh` and `scripts/build-stock-host.sh`:
//! `cargo bench -p neongrid-e2e --bench kv_lattice`. The tables go to stdout and to
//! `target/kv-bench.md`. Targets are printed, never asserted.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use keyvalue_store::{Bytes, Store};
use neongrid_e2e::kv::{self, Backend, Deployed};
use neongrid_e2e::{build_artifact, repo_root, stock_host, trace, versions, CpuTime, Lattice};
use redis::aio::ConnectionManager;
use sqlx::postgres::PgPool;
use sqlx::Row;
use test_servers::{PostgresServer, RedisServer};

/// The higher concurrency, and how many component instances serve it.
const WORKERS: usize = 16;
const CONCURRENCY: [usize; 2] = [1, WORKERS];
/// The component's bench keys are `bench/0`..`bench/99`; the direct path uses the same.
const KEYS: usize = 100;
const VALUE: [u8; 64] = [b'x'; 64];
const COUNTER_KEY: &str = "bench/counter";
/// Room for a worker's 1200 calls even when 16 workers queue on two cores.
const BENCH_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Targets (issue 14): the lattice adds at most this many NATS round trips at p50 at c=1,
/// the patched host makes at least this many times the stock host's calls per second at
/// c=16, and uses at most this fraction of its CPU per call.
const TARGET_ADDED_ROUND_TRIPS: f64 = 2.0;
const TARGET_OPS_RATIO: f64 = 1.5;
const TARGET_CPU_RATIO: f64 = 0.6;
const TARGET_BATCH_RATIO: f64 = 3.0;

// The direct Postgres path runs the provider's own statements, schema and pool size: rows
// are found through the unique index on the sha256 digests of bucket and key, so any other
// SQL would measure something the provider never does.
use keyvalue_postgres::statements::{
    GET as PG_GET, GET_MANY as PG_GET_MANY, INCREMENT as PG_INCREMENT, SET as PG_SET,
    SET_MANY as PG_SET_MANY,
};
use keyvalue_postgres::{DEFAULT_POOL_SIZE as PG_POOL_SIZE, MIGRATOR as PG_MIGRATOR};

/// The provider's increment: a Lua script, not a bare INCRBY, because INCRBY stops at
/// i64::MAX and takes negative values while the shared semantics count to u64::MAX.
const REDIS_INCREMENT: &str = include_str!("../../../providers/keyvalue-redis/src/increment.lua");
const REDIS_PREFIX: &str = "neongrid:kv:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    Increment,
    GetMany,
}

impl Op {
    const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Increment, Op::GetMany];

    /// The component's name for the operation (`/bench?op=`).
    fn query_name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Increment => "increment",
            Op::GetMany => "get_many",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Increment => "increment",
            Op::GetMany => "batch-get(100)",
        }
    }

    /// Calls per worker: 12000 at concurrency 1 and 16×1200 at 16 for single-key
    /// operations, a quarter of that for batch-get, which moves 100 values per call; enough
    /// for a stable p99 while the whole bench stays within about three minutes on two cores.
    fn calls_per_worker(self, concurrency: usize) -> usize {
        match (self, concurrency) {
            (Op::GetMany, 1) => 3000,
            (Op::GetMany, _) => 300,
            (_, 1) => 12000,
            _ => 1200,
        }
    }

    /// Discarded calls before measuring: first connections, lazily started component
    /// instances, pooled connections and caches.
    fn warmup_calls(self) -> usize {
        match self {
            Op::GetMany => 50,
            _ => 300,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathKind {
    Stock,
    Patched,
    Direct,
}

impl PathKind {
    const ALL: [PathKind; 3] = [PathKind::Stock, PathKind::Patched, PathKind::Direct];
    const LATTICES: [PathKind; 2] = [PathKind::Stock, PathKind::Patched];

    fn name(self) -> &'static str {
        match self {
            PathKind::Stock => "stock",
            PathKind::Patched => "patched",
            PathKind::Direct => "direct",
        }
    }
}

/// Worker `w`'s bucket on one path; every worker has its own, so that concurrent
/// increments measure the store rather than contention on one counter.
fn bucket(path: PathKind, worker: usize) -> String {
    format!("kvbench-{}-{worker}", path.name())
}

fn key(i: usize) -> String {
    format!("bench/{}", i % KEYS)
}

/// Latencies of every call of one batch, and the wall-clock time of the whole batch.
struct Batch {
    micros: Vec<f64>,
    wall: Duration,
    /// CPU seconds of the lattice's processes during the batch (lattice paths).
    cpu: Option<CpuTime>,
}

#[derive(Clone, Copy)]
struct Stats {
    calls: usize,
    ops_per_sec: f64,
    p50: f64,
    p99: f64,
    /// CPU µs per call of the host, nats-server and provider processes (lattice paths).
    cpu_per_call: Option<f64>,
    /// The same, split into host / nats-server / provider.
    cpu_split: Option<[f64; 3]>,
}

impl Stats {
    fn of(mut batch: Batch) -> Result<Stats> {
        ensure!(!batch.micros.is_empty(), "no calls were timed");
        batch.micros.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let rank = |q: f64| {
            let i = (q * batch.micros.len() as f64).ceil() as usize;
            batch.micros[i.clamp(1, batch.micros.len()) - 1]
        };
        let calls = batch.micros.len();
        Ok(Stats {
            calls,
            ops_per_sec: calls as f64 / batch.wall.as_secs_f64(),
            p50: rank(0.50),
            p99: rank(0.99),
            cpu_per_call: batch.cpu.map(|t| t.call_path() * 1e6 / calls as f64),
            cpu_split: batch
                .cpu
                .map(|t| [t.host, t.nats, t.providers].map(|secs| secs * 1e6 / calls as f64)),
        })
    }
}

struct Measurement {
    backend: Backend,
    op: Op,
    concurrency: usize,
    path: PathKind,
    result: Result<Stats, String>,
}

#[derive(Default)]
struct Results {
    rows: Vec<Measurement>,
}

impl Results {
    fn record(
        &mut self,
        backend: Backend,
        op: Op,
        concurrency: usize,
        path: PathKind,
        result: Result<Stats>,
    ) {
        let result = result.map_err(|e| format!("{e:#}"));
        match &result {
            Ok(s) => println!(
                "{:<8} {:<15} c={:<2} {:<7} {:>9.0} ops/s  p50 {:>9} µs  p99 {:>9} µs  cpu/call {:>6} µs  ({} calls)",
                backend.name(),
                op.label(),
                concurrency,
                path.name(),
                s.ops_per_sec,
                micros(s.p50),
                micros(s.p99),
                s.cpu_per_call.map_or("-".into(), micros),
                s.calls
            ),
            Err(e) => println!(
                "{:<8} {:<15} c={:<2} {:<7} FAILED: {e}",
                backend.name(),
                op.label(),
                concurrency,
                path.name()
            ),
        }
        self.rows.push(Measurement {
            backend,
            op,
            concurrency,
            path,
            result,
        });
    }

    /// Records the same failure for every measurement of a path that could not start.
    fn fail_path(&mut self, backend: Backend, path: PathKind, error: &anyhow::Error) {
        for op in Op::ALL {
            self.fail_op(backend, op, path, error);
        }
    }

    fn fail_op(&mut self, backend: Backend, op: Op, path: PathKind, error: &anyhow::Error) {
        for c in CONCURRENCY {
            self.record(backend, op, c, path, Err(anyhow!("{error:#}")));
        }
    }

    fn find(&self, backend: Backend, op: Op, c: usize, path: PathKind) -> Option<&Measurement> {
        self.rows
            .iter()
            .find(|r| r.backend == backend && r.op == op && r.concurrency == c && r.path == path)
    }

    fn stats(&self, backend: Backend, op: Op, c: usize, path: PathKind) -> Option<Stats> {
        self.find(backend, op, c, path)
            .and_then(|r| r.result.as_ref().ok().copied())
    }

    fn failures(&self) -> usize {
        self.rows.iter().filter(|r| r.result.is_err()).count()
    }
}

/// Sub-microsecond figures (the memory store in-process) need decimals; lattice figures
/// are whole microseconds as the component reports them.
fn micros(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

// ---------------------------------------------------------------------------------------
// Lattice path

/// One `/bench` request: `n` calls timed inside the component.
fn bench_request(deployed: &Deployed, op: &str, n: usize, bucket: &str) -> Result<Vec<f64>> {
    let path = format!("/bench?op={op}&n={n}&bucket={bucket}");
    let resp = deployed.get_ok(&path, BENCH_REQUEST_TIMEOUT)?;
    let url = deployed.url(&path);
    let body = resp.json()?;
    if op == "fill" {
        return Ok(Vec::new());
    }
    let micros = body["micros"]
        .as_array()
        .with_context(|| format!("GET {url}: no `micros` in {}", resp.body))?;
    ensure!(
        micros.len() == n,
        "GET {url}: {} timings for {n} calls: {}",
        micros.len(),
        resp.body
    );
    micros
        .iter()
        .map(|m| {
            m.as_u64()
                .map(|m| m as f64)
                .with_context(|| format!("GET {url}: timing {m} is not a whole number"))
        })
        .collect()
}

/// A deployed conformance application on one of the two lattices.
struct OnLattice<'a> {
    path: PathKind,
    lattice: &'a Lattice,
    deployed: Deployed,
}

/// `concurrency` workers, each one `/bench` request of `n` calls in its own bucket; the
/// wall clock and the CPU readings run around all the requests.
fn lattice_batch(on: &OnLattice, op: Op, concurrency: usize, n: usize) -> Result<Batch> {
    let (deployed, path) = (&on.deployed, on.path);
    let cpu_before = on.lattice.cpu();
    let start = Instant::now();
    let per_worker: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency)
            .map(|w| s.spawn(move || bench_request(deployed, op.query_name(), n, &bucket(path, w))))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a bench worker panicked"))
            })
            .collect()
    });
    let wall = start.elapsed();
    let cpu = on.lattice.cpu().since(&cpu_before);
    let mut micros = Vec::with_capacity(concurrency * n);
    for worker in per_worker {
        micros.extend(worker?);
    }
    Ok(Batch {
        micros,
        wall,
        cpu: Some(cpu),
    })
}

/// `/bench?op=fill` into every lattice worker's bucket.
fn fill_lattice(deployed: &Deployed, path: PathKind) -> Result<()> {
    (0..WORKERS).try_for_each(|w| bench_request(deployed, "fill", 0, &bucket(path, w)).map(drop))
}

/// Warm-up, then `op` at each concurrency.
fn measure_lattice(on: &OnLattice, backend: Backend, op: Op, results: &mut Results) {
    let warmup = lattice_batch(on, op, 1, op.warmup_calls())
        .and_then(|_| lattice_batch(on, op, WORKERS, op.warmup_calls() / 10));
    for c in CONCURRENCY {
        let result = match &warmup {
            Err(e) => Err(anyhow!("warm-up: {e:#}")),
            Ok(_) => lattice_batch(on, op, c, op.calls_per_worker(c)).and_then(Stats::of),
        };
        results.record(backend, op, c, on.path, result);
    }
}

// ---------------------------------------------------------------------------------------
// Direct path

/// A backend's own client, issuing what the provider issues for each operation.
#[derive(Clone)]
enum Direct {
    Memory(Arc<dyn Store>),
    Redis {
        connection: ConnectionManager,
        increment: Arc<redis::Script>,
    },
    Postgres(PgPool),
}

/// The provider's Redis key for (bucket, key). Bench buckets hold neither `:` nor `%`, the
/// two characters the provider escapes in bucket names, so no escaping is needed.
fn redis_key(bucket: &str, key: &str) -> String {
    format!("{REDIS_PREFIX}{bucket}:{key}")
}

impl Direct {
    async fn connect(backend: Backend, url: Option<&str>) -> Result<Direct> {
        Ok(match backend {
            Backend::Memory => Direct::Memory(Arc::new(keyvalue_memory::MemoryStore::new())),
            Backend::Redis => {
                let url = url.context("no Redis URL")?;
                let client = redis::Client::open(url).context("opening the Redis client")?;
                // One multiplexed connection for every worker, as the provider has.
                let connection = ConnectionManager::new(client)
                    .await
                    .context("connecting to Redis")?;
                Direct::Redis {
                    connection,
                    increment: Arc::new(redis::Script::new(REDIS_INCREMENT)),
                }
            }
            Backend::Postgres => {
                let url = url.context("no Postgres URL")?;
                // The provider's own pool, liveness checks included.
                let pool = keyvalue_postgres::pool_options(PG_POOL_SIZE)
                    .connect(url)
                    .await
                    .context("connecting to Postgres")?;
                PG_MIGRATOR
                    .run(&pool)
                    .await
                    .context("applying the provider's migrations")?;
                Direct::Postgres(pool)
            }
        })
    }

    /// Writes `bench/0`..`bench/99` with 64-byte values, as `/bench?op=fill` does.
    async fn fill(&self, bucket: &str) -> Result<()> {
        let keys: Vec<String> = (0..KEYS).map(key).collect();
        match self {
            Direct::Memory(store) => {
                let entries = keys
                    .into_iter()
                    .map(|k| (k, Bytes::from_static(&VALUE)))
                    .collect();
                store.set_many(bucket, entries).await?;
            }
            Direct::Redis { connection, .. } => {
                let mut cmd = redis::cmd("MSET");
                for k in &keys {
                    cmd.arg(redis_key(bucket, k)).arg(&VALUE[..]);
                }
                cmd.query_async::<()>(&mut connection.clone()).await?;
            }
            Direct::Postgres(pool) => {
                let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                let values: Vec<&[u8]> = vec![&VALUE[..]; keys.len()];
                sqlx::query(PG_SET_MANY)
                    .bind(bucket.as_bytes())
                    .bind(&keys[..])
                    .bind(&values[..])
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Call number `i` of a worker, mirroring the component's `/bench` loop.
    async fn call(&self, op: Op, bucket: &str, i: usize) -> Result<()> {
        match (self, op) {
            (Direct::Memory(store), Op::Get) => {
                store
                    .get(bucket, &key(i))
                    .await?
                    .context("get found no value: the bucket was not filled")?;
            }
            (Direct::Memory(store), Op::Set) => {
                store
                    .set(bucket, &key(i), Bytes::from_static(&VALUE))
                    .await?
            }
            (Direct::Memory(store), Op::Increment) => {
                store.increment(bucket, COUNTER_KEY, 1).await?;
            }
            (Direct::Memory(store), Op::GetMany) => {
                let got = store.get_many(bucket, (0..KEYS).map(key).collect()).await?;
                ensure!(
                    got.iter().all(Option::is_some),
                    "get_many missed keys: the bucket was not filled"
                );
            }
            (Direct::Redis { connection, .. }, Op::Get) => {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(redis_key(bucket, &key(i)))
                    .query_async(&mut connection.clone())
                    .await?;
                value.context("GET found no value: the bucket was not filled")?;
            }
            (Direct::Redis { connection, .. }, Op::Set) => {
                redis::cmd("SET")
                    .arg(redis_key(bucket, &key(i)))
                    .arg(&VALUE[..])
                    .query_async::<()>(&mut connection.clone())
                    .await?;
            }
            (
                Direct::Redis {
                    connection,
                    increment,
                },
                Op::Increment,
            ) => {
                let (applied, value): (i64, redis::Value) = increment
                    .key(redis_key(bucket, COUNTER_KEY))
                    .arg("1")
                    .invoke_async(&mut connection.clone())
                    .await?;
                ensure!(
                    applied == 1,
                    "the increment script refused the stored value {value:?}"
                );
            }
            (Direct::Redis { connection, .. }, Op::GetMany) => {
                let mut cmd = redis::cmd("MGET");
                for k in 0..KEYS {
                    cmd.arg(redis_key(bucket, &key(k)));
                }
                let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut connection.clone()).await?;
                ensure!(
                    values.len() == KEYS && values.iter().all(Option::is_some),
                    "MGET missed keys: the bucket was not filled"
                );
            }
            (Direct::Postgres(pool), Op::Get) => {
                let value: Option<Vec<u8>> = sqlx::query_scalar(PG_GET)
                    .bind(bucket.as_bytes())
                    .bind(key(i).as_bytes())
                    .fetch_optional(pool)
                    .await?;
                value.context("get found no row: the bucket was not filled")?;
            }
            (Direct::Postgres(pool), Op::Set) => {
                sqlx::query(PG_SET)
                    .bind(bucket.as_bytes())
                    .bind(key(i).as_bytes())
                    .bind(&VALUE[..])
                    .execute(pool)
                    .await?;
            }
            (Direct::Postgres(pool), Op::Increment) => {
                let row = sqlx::query(PG_INCREMENT)
                    .bind(bucket.as_bytes())
                    .bind(COUNTER_KEY.as_bytes())
                    .bind("1")
                    .fetch_one(pool)
                    .await?;
                let applied: bool = row.try_get(0)?;
                let stored: Vec<u8> = row.try_get(1)?;
                ensure!(
                    applied,
                    "neongrid_kv_increment refused the stored value {:?}",
                    String::from_utf8_lossy(&stored)
                );
            }
            (Direct::Postgres(pool), Op::GetMany) => {
                let keys: Vec<String> = (0..KEYS).map(key).collect();
                let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                let rows = sqlx::query(PG_GET_MANY)
                    .bind(bucket.as_bytes())
                    .bind(&wanted[..])
                    .fetch_all(pool)
                    .await?;
                // Decoded like the provider does, so that both paths pay for the values.
                let mut found = std::collections::HashMap::with_capacity(rows.len());
                for row in rows {
                    let k: Vec<u8> = row.try_get(0)?;
                    let v: Vec<u8> = row.try_get(1)?;
                    found.insert(k, Bytes::from(v));
                }
                ensure!(
                    wanted.iter().all(|k| found.contains_key(*k)),
                    "get_many missed keys: the bucket was not filled"
                );
            }
        }
        Ok(())
    }
}

/// `concurrency` tasks, each `n` calls in its own bucket, each call timed where it is made;
/// the wall clock runs around all the tasks.
async fn direct_batch(direct: &Direct, op: Op, concurrency: usize, n: usize) -> Result<Batch> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let direct = direct.clone();
        tasks.spawn(async move {
            let bucket = bucket(PathKind::Direct, w);
            let mut micros = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                direct.call(op, &bucket, i).await?;
                micros.push(t.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(micros)
        });
    }
    let mut micros = Vec::with_capacity(concurrency * n);
    while let Some(worker) = tasks.join_next().await {
        micros.extend(worker.context("a bench task panicked")??);
    }
    Ok(Batch {
        micros,
        wall: start.elapsed(),
        cpu: None,
    })
}

/// Gives the planner statistics for the filled table, so that every run starts from the
/// same state rather than from wherever autovacuum happens to be: plans chosen without
/// statistics, or with those of a smaller table, can cost several times more.
async fn analyze(pool: &PgPool) -> Result<()> {
    sqlx::query("ANALYZE neongrid_kv")
        .execute(pool)
        .await
        .context("ANALYZE neongrid_kv")?;
    Ok(())
}

/// Connects and fills every direct worker's bucket.
async fn connect_direct(backend: Backend, url: Option<&str>) -> Result<Direct> {
    let direct = Direct::connect(backend, url).await?;
    for w in 0..WORKERS {
        direct
            .fill(&bucket(PathKind::Direct, w))
            .await
            .context("filling the buckets")?;
    }
    Ok(direct)
}

/// Warm-up, then `op` at each concurrency.
async fn measure_direct(direct: &Direct, backend: Backend, op: Op, results: &mut Results) {
    let warmup = async {
        direct_batch(direct, op, 1, op.warmup_calls()).await?;
        direct_batch(direct, op, WORKERS, op.warmup_calls() / 10).await
    }
    .await;
    for c in CONCURRENCY {
        let result = match &warmup {
            Err(e) => Err(anyhow!("warm-up: {e:#}")),
            Ok(_) => direct_batch(direct, op, c, op.calls_per_worker(c))
                .await
                .and_then(Stats::of),
        };
        results.record(backend, op, c, PathKind::Direct, result);
    }
}

/// One backend, all three paths, operation by operation: each operation is measured on
/// every path against the same backend state, since the writes of earlier operations change
/// it (the Postgres table's size, dead rows and statistics, for one).
fn run_backend(
    lattices: &[(PathKind, Result<Lattice>)],
    backend: Backend,
    runtime: &tokio::runtime::Runtime,
    results: &mut Results,
) {
    let server = match Server::start(backend) {
        Ok(server) => server,
        Err(e) => {
            for path in PathKind::ALL {
                results.fail_path(backend, path, &e);
            }
            return;
        }
    };
    let url = server.url();
    trace(&format!("{}: connecting the direct path", backend.name()));
    // Before the deploys: for Postgres this applies the migrations, and the providers then
    // find them applied.
    let direct = runtime
        .block_on(connect_direct(backend, url.as_deref()))
        .context("direct path");

    let app = format!("kvbench-{}", backend.name());
    let link: Vec<(&str, String)> = url.iter().map(|u| ("url", u.clone())).collect();
    let mut deployed: Vec<(PathKind, Result<OnLattice>)> = Vec::new();
    let mut deploy_attempted = Vec::new();
    for (path, lattice) in lattices {
        let on = match lattice {
            Err(e) => Err(anyhow!("starting the {} lattice: {e:#}", path.name())),
            Ok(lattice) => {
                trace(&format!(
                    "{}: deploying on the {} lattice",
                    backend.name(),
                    path.name()
                ));
                deploy_attempted.push(lattice);
                kv::deploy(lattice, &app, backend, &link, WORKERS as u32)
                    .context("deploying")
                    .and_then(|deployed| {
                        fill_lattice(&deployed, *path).context("filling the buckets")?;
                        Ok(OnLattice {
                            path: *path,
                            lattice,
                            deployed,
                        })
                    })
            }
        };
        deployed.push((*path, on));
    }

    if let Ok(Direct::Postgres(pool)) = &direct {
        if let Err(e) = runtime.block_on(analyze(pool)) {
            eprintln!("{e:#}: the Postgres figures depend on autovacuum's timing");
        }
    }
    for op in Op::ALL {
        for (path, on) in &deployed {
            match on {
                Ok(on) => measure_lattice(on, backend, op, results),
                Err(e) => results.fail_op(backend, op, *path, e),
            }
        }
        match &direct {
            Ok(d) => runtime.block_on(measure_direct(d, backend, op, results)),
            Err(e) => results.fail_op(backend, op, PathKind::Direct, e),
        }
    }

    for lattice in deploy_attempted {
        if let Err(e) = kv::undeploy(lattice, &app) {
            eprintln!("undeploying {app}: {e:#}");
        }
    }
    if let Ok(Direct::Postgres(pool)) = direct {
        runtime.block_on(pool.close());
    }
}

// ---------------------------------------------------------------------------------------
// Report

fn machine_context() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let command = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let date = command("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]);
    let kernel = command("uname", &["-sr"]);
    let host = versions()
        .ok()
        .and_then(|v| v.get("HOST_VERSION").cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("nproc {cpus} ({model}), {kernel}, wasmCloud host {host}, {date}; release build")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "no"
    }
}

/// `a / b` as a short ratio, or `n/a` when a figure is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> (String, Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            (format!("{r:.2}×"), Some(r))
        }
        _ => ("n/a".into(), None),
    }
}

fn opt_micros(v: Option<f64>) -> String {
    v.map_or("n/a".into(), micros)
}

fn report(results: &Results, context: &str, total: Duration, rtt: Option<f64>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Key-value bench: stock host, patched host, direct client\n"
    );
    let _ = writeln!(
        md,
        "Machine: {context}. Whole run: {:.0} s.\n",
        total.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Command: `scripts/build.sh && scripts/build-stock-host.sh && cargo bench -p neongrid-e2e --bench kv_lattice`. \
         Latency is per call, timed where the call is made: inside the wasm component for \
         the lattice paths (wasi:keyvalue → host → wRPC over NATS → provider → backend), \
         around the client call for the direct path. ops/s = total calls / wall-clock time \
         of the whole concurrent batch (lattice: around the HTTP requests to the component, \
         one per worker; direct: around the tokio tasks). CPU/call = CPU seconds (user + \
         system, from /proc) that the lattice's host, nats-server and provider processes \
         used during the batch, divided by its calls; the backend server and the load \
         generator are not counted. `stock` is a lattice whose host is built without the \
         client-per-target fix (scripts/build-stock-host.sh), `patched` one on the host \
         scripts/setup.sh installs; both run side by side, each with its own nats-server. \
         Each worker has its own bucket; warm-up calls are discarded. Per backend, each \
         operation runs on the stock, the patched and the direct path in turn, against the \
         same server (Redis and Postgres: local, on loopback); Postgres gets \
         `ANALYZE neongrid_kv` once the buckets are filled.\n"
    );

    let _ = writeln!(md, "### Results\n");
    let _ = writeln!(
        md,
        "| backend | op | c | path | calls | ops/s | p50 µs | p99 µs | CPU/call µs | host / nats / provider µs |"
    );
    let _ = writeln!(md, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|");
    // Grouped by backend and path, whatever order the measurements ran in.
    let ordered = Backend::ALL.into_iter().flat_map(|backend| {
        PathKind::ALL.into_iter().flat_map(move |path| {
            Op::ALL.into_iter().flat_map(move |op| {
                CONCURRENCY
                    .into_iter()
                    .filter_map(move |c| results.find(backend, op, c, path))
            })
        })
    });
    for r in ordered {
        match &r.result {
            Ok(s) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                    r.backend.name(),
                    r.op.label(),
                    r.concurrency,
                    r.path.name(),
                    s.calls,
                    s.ops_per_sec,
                    micros(s.p50),
                    micros(s.p99),
                    s.cpu_per_call.map_or("-".into(), micros),
                    s.cpu_split.map_or("-".into(), |[h, n, p]| format!(
                        "{} / {} / {}",
                        micros(h),
                        micros(n),
                        micros(p)
                    )),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | failed: {} | | | | | |",
                    r.backend.name(),
                    r.op.label(),
                    r.concurrency,
                    r.path.name(),
                    e.replace('|', "\\|").replace('\n', " ")
                );
            }
        }
    }

    let _ = writeln!(
        md,
        "\n### Patched host against stock host (targets: ≥{TARGET_OPS_RATIO}× ops/s at c=16, \
         CPU/call ≤{TARGET_CPU_RATIO}× of stock)\n"
    );
    let _ = writeln!(
        md,
        "| backend | op | p50 c=1 stock / patched µs | p50 c=1 patched/stock | ops/s c=16 stock / patched | ops/s c=16 patched/stock | ≥{TARGET_OPS_RATIO}× | CPU/call c=16 stock / patched µs | CPU patched/stock | ≤{TARGET_CPU_RATIO}× |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|--:|--:|---|");
    let stat = |b, op, c, path| results.stats(b, op, c, path);
    for backend in Backend::ALL {
        for op in Op::ALL {
            let (s1, p1) = (
                stat(backend, op, 1, PathKind::Stock),
                stat(backend, op, 1, PathKind::Patched),
            );
            let (s16, p16) = (
                stat(backend, op, WORKERS, PathKind::Stock),
                stat(backend, op, WORKERS, PathKind::Patched),
            );
            let (p50_ratio, _) = ratio(p1.map(|s| s.p50), s1.map(|s| s.p50));
            let (ops_ratio, ops) = ratio(p16.map(|s| s.ops_per_sec), s16.map(|s| s.ops_per_sec));
            let (cpu_ratio, cpu) = ratio(
                p16.and_then(|s| s.cpu_per_call),
                s16.and_then(|s| s.cpu_per_call),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} / {} | {p50_ratio} | {} / {} | {ops_ratio} | {} | {} / {} | {cpu_ratio} | {} |",
                backend.name(),
                op.label(),
                opt_micros(s1.map(|s| s.p50)),
                opt_micros(p1.map(|s| s.p50)),
                s16.map_or("n/a".into(), |s| format!("{:.0}", s.ops_per_sec)),
                p16.map_or("n/a".into(), |s| format!("{:.0}", s.ops_per_sec)),
                ops.map_or("n/a", |r| verdict(r >= TARGET_OPS_RATIO)),
                opt_micros(s16.and_then(|s| s.cpu_per_call)),
                opt_micros(p16.and_then(|s| s.cpu_per_call)),
                cpu.map_or("n/a", |r| verdict(r <= TARGET_CPU_RATIO)),
            );
        }
    }
    let _ = writeln!(md, "\nCPU per call at c=1, stock / patched µs (ratio):\n");
    for backend in Backend::ALL {
        let cells: Vec<String> = Op::ALL
            .into_iter()
            .map(|op| {
                let s = stat(backend, op, 1, PathKind::Stock).and_then(|s| s.cpu_per_call);
                let p = stat(backend, op, 1, PathKind::Patched).and_then(|s| s.cpu_per_call);
                format!(
                    "{} {} / {} ({})",
                    op.label(),
                    opt_micros(s),
                    opt_micros(p),
                    ratio(p, s).0
                )
            })
            .collect();
        let _ = writeln!(md, "- {}: {}", backend.name(), cells.join("; "));
    }

    let rtt_text = rtt.map_or("n/a".into(), micros);
    let _ = writeln!(
        md,
        "\n### What the lattice adds at c=1 (target: ≤{TARGET_ADDED_ROUND_TRIPS} NATS round trips, \
         one round trip measured in this run: p50 {rtt_text} µs)\n"
    );
    let _ = writeln!(
        md,
        "| backend | op | stock p50 µs | patched p50 µs | direct p50 µs | patched adds µs | in round trips | ≤{TARGET_ADDED_ROUND_TRIPS} |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|---|");
    for backend in Backend::ALL {
        for op in Op::ALL {
            let s = stat(backend, op, 1, PathKind::Stock).map(|s| s.p50);
            let p = stat(backend, op, 1, PathKind::Patched).map(|s| s.p50);
            let d = stat(backend, op, 1, PathKind::Direct).map(|s| s.p50);
            let added = p.zip(d).map(|(p, d)| p - d);
            let trips = added.zip(rtt).map(|(a, r)| a / r);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                backend.name(),
                op.label(),
                opt_micros(s),
                opt_micros(p),
                opt_micros(d),
                added.map_or("n/a".into(), |a| format!("{a:.0}")),
                trips.map_or("n/a".into(), |t| format!("{t:.1}")),
                trips.map_or("n/a", |t| verdict(t <= TARGET_ADDED_ROUND_TRIPS)),
            );
        }
    }

    let _ = writeln!(
        md,
        "\n### Batch-get of 100 keys vs one get (target: batch-get of 100 ≤ {TARGET_BATCH_RATIO:.0}× single get)\n"
    );
    let _ = writeln!(
        md,
        "| backend | path | c | get p50 µs | batch-get(100) p50 µs | ratio | ≤{TARGET_BATCH_RATIO:.0}× |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
    for backend in Backend::ALL {
        for path in PathKind::ALL {
            for c in CONCURRENCY {
                let get = results.stats(backend, Op::Get, c, path);
                let many = results.stats(backend, Op::GetMany, c, path);
                match (get, many) {
                    (Some(g), Some(m)) if g.p50 > 0.0 => {
                        let ratio = m.p50 / g.p50;
                        let _ = writeln!(
                            md,
                            "| {} | {} | {c} | {} | {} | {ratio:.1}× | {} |",
                            backend.name(),
                            path.name(),
                            micros(g.p50),
                            micros(m.p50),
                            verdict(ratio <= TARGET_BATCH_RATIO)
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            md,
                            "| {} | {} | {c} | n/a | n/a | n/a | a measurement failed |",
                            backend.name(),
                            path.name()
                        );
                    }
                }
            }
        }
    }
    let failures = results.failures();
    if failures > 0 {
        let _ = writeln!(
            md,
            "\n{failures} measurement(s) failed; the errors are in the results table."
        );
    }
    md
}

// ---------------------------------------------------------------------------------------

/// The backend's server, which lives as long as both paths use it.
enum Server {
    InProcess,
    Redis(RedisServer),
    Postgres(PostgresServer),
}

impl Server {
    fn start(backend: Backend) -> Result<Server> {
        Ok(match backend {
            Backend::Memory => Server::InProcess,
            Backend::Redis => Server::Redis(RedisServer::start().context("starting redis-server")?),
            Backend::Postgres => {
                Server::Postgres(PostgresServer::start().context("starting Postgres")?)
            }
        })
    }

    fn url(&self) -> Option<String> {
        match self {
            Server::InProcess => None,
            Server::Redis(s) => Some(s.url()),
            Server::Postgres(s) => Some(s.url()),
        }
    }
}

/// The floor under every lattice call: request/reply round trips through the lattice's own
/// nats-server, between two connections of this process. A wRPC call needs at least one
/// such round trip (the host's request, the provider's result) plus a handshake reply.
async fn nats_round_trips(port: u16, n: usize) -> Result<Batch> {
    use futures::StreamExt as _;
    const SUBJECT: &str = "neongrid.bench.echo";
    let url = format!("nats://127.0.0.1:{port}");
    let responder = async_nats::connect(&url).await.context("connecting")?;
    let mut requests = responder.subscribe(SUBJECT).await?;
    responder.flush().await?;
    let echo = tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, msg.payload).await;
            }
        }
    });
    let client = async_nats::connect(&url).await.context("connecting")?;
    let warm_up = 200;
    let mut micros = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..warm_up + n {
        let t = Instant::now();
        client
            .request(SUBJECT, "x".into())
            .await
            .context("NATS request")?;
        if i >= warm_up {
            micros.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.abort();
    Ok(Batch {
        micros,
        wall: started.elapsed(),
        cpu: None,
    })
}

fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench binaries without `--bench`; starting a lattice
    // for minutes there would only slow the tests down.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kv_lattice: run with `cargo bench -p neongrid-e2e --bench kv_lattice`");
        return Ok(());
    }
    let started = Instant::now();
    build_artifact(kv::COMPONENT)?;
    for backend in Backend::ALL {
        build_artifact(&backend.archive())?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let context = machine_context();
    println!("kv_lattice bench on {context}");
    println!(
        "ops/s = total calls / wall-clock time of the whole concurrent batch \
         (lattice: measured around the HTTP requests, one per worker)"
    );

    let mut results = Results::default();
    let stock = stock_host();
    let mut lattices: Vec<(PathKind, Result<Lattice>)> = PathKind::LATTICES
        .into_iter()
        .map(|path| {
            let lattice = match path {
                PathKind::Stock => stock
                    .as_ref()
                    .map_err(|e| anyhow!("{e:#}"))
                    .and_then(|host| Lattice::up_with_host(Some(host), &[])),
                _ => Lattice::up(),
            };
            if let Err(e) = &lattice {
                eprintln!("starting the {} lattice: {e:#}", path.name());
            }
            (path, lattice)
        })
        .collect();
    // The floor under every call, measured on each lattice's own nats-server.
    let rtts: Vec<(PathKind, Result<Stats, String>)> = lattices
        .iter()
        .filter_map(|(path, l)| {
            let l = l.as_ref().ok()?;
            let rtt = runtime
                .block_on(nats_round_trips(l.nats_port, 3000))
                .and_then(Stats::of)
                .map_err(|e| format!("{e:#}"));
            Some((*path, rtt))
        })
        .collect();
    for backend in Backend::ALL {
        run_backend(&lattices, backend, &runtime, &mut results);
    }
    for (path, lattice) in &mut lattices {
        if let Ok(lattice) = lattice {
            match lattice.down() {
                Ok(leaked) if !leaked.is_empty() => {
                    eprintln!("processes outlived `wash down` and were killed: {leaked:?}")
                }
                Ok(_) => {}
                Err(e) => eprintln!("stopping the {} lattice: {e:#}", path.name()),
            }
        }
    }

    let patched_rtt = rtts
        .iter()
        .find(|(path, _)| *path == PathKind::Patched)
        .and_then(|(_, r)| r.as_ref().ok().map(|s| s.p50));
    let mut md = report(&results, &context, started.elapsed(), patched_rtt);
    let _ = writeln!(
        md,
        "\n### Baseline: one NATS request/reply round trip (each lattice's nats-server, c=1)\n"
    );
    if rtts.is_empty() {
        let _ = writeln!(md, "not measured: no lattice started");
    }
    for (path, rtt) in &rtts {
        match rtt {
            Ok(s) => {
                let _ = writeln!(
                    md,
                    "- {}: {} round trips, p50 {} µs, p99 {} µs.",
                    path.name(),
                    s.calls,
                    micros(s.p50),
                    micros(s.p99)
                );
            }
            Err(e) => {
                let _ = writeln!(md, "- {}: failed: {e}", path.name());
            }
        }
    }
    println!("\n{md}");
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("kv-bench.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("written to {}", path.display());
    let failures = results.failures();
    ensure!(failures == 0, "{failures} measurement(s) failed; see above");
    Ok(())
}
