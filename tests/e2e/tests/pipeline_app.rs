//! The application manifest end to end: `wadm.yaml` on one host that carries every role
//! label (`neongrid.edge`, `neongrid.core`, `neongrid.data`), with `hot` on a real
//! redis-server and `archive` on a real Postgres, driven through the same checks as the
//! development manifest (`neongrid_e2e::pipeline`). Then the data is looked up where
//! providers/README.md says each database keeps it, with plain `redis-cli` and `psql`.

use std::process::Command;

use anyhow::{ensure, Result};
use neongrid_e2e::pipeline;
use neongrid_e2e::{run_tool, Lattice};
use test_servers::{PostgresServer, RedisServer};

const MANIFEST: &str = "wadm.yaml";
const LABELS: &[&str] = &[
    "neongrid.edge=true",
    "neongrid.core=true",
    "neongrid.data=true",
];

#[test]
fn application_manifest_runs_the_pipeline_on_redis_and_postgres() -> Result<()> {
    let redis = RedisServer::start()?;
    let postgres = PostgresServer::start()?;
    let args: Vec<&str> = LABELS.iter().flat_map(|label| ["--label", label]).collect();
    Lattice::run_test(&args, |lattice| run(lattice, &redis, &postgres))
}

fn run(lattice: &Lattice, redis: &RedisServer, postgres: &PostgresServer) -> Result<()> {
    let pipeline = pipeline::deploy(
        lattice,
        MANIFEST,
        &["keyvalue-redis.par.gz", "keyvalue-postgres.par.gz"],
        |manifest| {
            manifest
                .set_component_config("hot-store", "neongrid-hot-store", "url", &redis.url())?
                .set_component_config(
                    "archive-store",
                    "neongrid-archive-store",
                    "url",
                    &postgres.url(),
                )?;
            Ok(())
        },
    )?;

    // wadm placed every component on the one host, which satisfies every role.
    let inventory = lattice.wash_json(&["get", "inventory"])?;
    let host = &inventory["inventories"][0];
    for label in LABELS {
        let (key, value) = label.split_once('=').unwrap();
        ensure!(
            host["labels"][key] == value,
            "host lacks {label}: {}",
            host["labels"]
        );
    }
    let text = inventory.to_string();
    for expected in [
        "ingest.wasm",
        "validator.wasm",
        "api.wasm",
        "keyvalue-redis.par.gz",
        "keyvalue-postgres.par.gz",
    ] {
        ensure!(
            text.contains(expected),
            "{expected} not in inventory: {text}"
        );
    }

    pipeline::exercise(lattice, &pipeline)?;
    check_databases(redis, postgres)
}

/// Hot state in Redis, the archive in Postgres, each under the layout providers/README.md
/// documents, and nothing of one in the other.
fn check_databases(redis: &RedisServer, postgres: &PostgresServer) -> Result<()> {
    // thermo-9's count, a counter in bucket `neongrid` on the hot link.
    let count = run_tool(
        Command::new("redis-cli").args([
            "-u",
            &redis.url(),
            "GET",
            "neongrid:kv:neongrid:device/thermo-9/count",
        ]),
        "redis-cli",
    )?;
    ensure!(count.trim() == "3", "thermo-9's count in Redis: {count:?}");
    let archive_in_redis = run_tool(
        Command::new("redis-cli").args([
            "-u",
            &redis.url(),
            "--scan",
            "--pattern",
            "neongrid:kv:neongrid:device/*/reading/*",
        ]),
        "redis-cli",
    )?;
    ensure!(
        archive_in_redis.trim().is_empty(),
        "archived readings leaked into Redis: {archive_in_redis}"
    );

    // Its three archived readings, rows of `neongrid_kv` in Postgres, and no hot state.
    let rows = run_tool(
        Command::new("psql").args([
            &postgres.url(),
            "-At",
            "-c",
            "SELECT convert_from(key, 'UTF8') FROM neongrid_kv \
             WHERE convert_from(key, 'UTF8') LIKE 'device/thermo-9/%' ORDER BY 1",
        ]),
        "psql",
    )?;
    let keys: Vec<&str> = rows.lines().collect();
    ensure!(
        keys == [
            "device/thermo-9/reading/00000000000000000001",
            "device/thermo-9/reading/00000000000000000002",
            "device/thermo-9/reading/00000000000000000003",
            "device/thermo-9/seq",
        ],
        "thermo-9's keys in Postgres: {keys:?}"
    );
    Ok(())
}
