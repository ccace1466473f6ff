//! The host reuses one wRPC client per lattice target (third_party/README.md,
//! "client-per-target"), and a shared client never hands a reply to the wrong call.
//!
//! 40 callers at once, each on its own counter, send rounds of increments through the key-value
//! conformance component to the memory provider. Every answer must be exactly the caller's own
//! count: a reply routed to another call would show another counter's value, and a lost one
//! would time out. Meanwhile nats-server's `/subsz` counters show how many subscriptions the
//! calls made. A host that builds a client per call subscribes an inbox for every call
//! (thousands here); one that reuses them subscribes a handful, whatever the number of calls.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::kv::{self, Backend};
use neongrid_e2e::{trace, Lattice};

/// The burst width that found the lost-reply race (third_party/README.md).
const CALLERS: usize = 40;
const ROUNDS: u64 = 5;
/// Increments per request: each is one wRPC call from the host to the provider.
const INCREMENTS_PER_REQUEST: u64 = 23;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Subscriptions the burst may add: a client per target and component, with room for the
/// host's and providers' own bookkeeping. Far below one per call
/// (`CALLERS * ROUNDS * INCREMENTS_PER_REQUEST`).
const MAX_NEW_SUBSCRIPTIONS: u64 = 20;

#[test]
fn calls_share_one_client_per_target_and_replies_reach_their_own_call() -> Result<()> {
    Lattice::run_test(&[], |lattice| {
        let deployed = Arc::new(kv::deploy(
            lattice,
            "wrpc-clients",
            Backend::Memory,
            &[],
            CALLERS as u32,
        )?);
        // One warm-up call per caller's key creates the client(s) before counting.
        for caller in 0..CALLERS {
            increment(&deployed, caller, 1, 1)?;
        }
        let before = lattice.nats_subscriptions()?;
        trace(&format!("before the burst: {before:?}"));

        let workers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let deployed = Arc::clone(&deployed);
                std::thread::spawn(move || -> Result<()> {
                    let mut expected = 1;
                    for _ in 0..ROUNDS {
                        expected += INCREMENTS_PER_REQUEST;
                        increment(&deployed, caller, INCREMENTS_PER_REQUEST, expected)?;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut failures = Vec::new();
        for (caller, worker) in workers.into_iter().enumerate() {
            match worker.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("caller {caller}: {e:#}")),
                Err(_) => failures.push(format!("caller {caller}: panicked")),
            }
        }
        ensure!(failures.is_empty(), "{}", failures.join("\n"));

        let after = lattice.nats_subscriptions()?;
        let calls = CALLERS as u64 * ROUNDS * INCREMENTS_PER_REQUEST;
        let inserted = after.inserts - before.inserts;
        trace(&format!(
            "after {calls} calls: {after:?}; {inserted} subscriptions inserted"
        ));
        ensure!(
            inserted <= MAX_NEW_SUBSCRIPTIONS,
            "{calls} calls made nats-server insert {inserted} subscriptions (removed {}); \
             expected at most {MAX_NEW_SUBSCRIPTIONS}, one wRPC client per target reused \
             for every call",
            after.removes - before.removes
        );
        kv::undeploy(lattice, "wrpc-clients")
    })
}

/// `times` increments of caller's own counter; the answer must be `expected`.
fn increment(deployed: &kv::Deployed, caller: usize, times: u64, expected: u64) -> Result<()> {
    let path = format!("/increment?bucket=wrpc-clients&key=caller-{caller}&times={times}");
    let resp = deployed.get_ok(&path, REQUEST_TIMEOUT)?;
    let url = deployed.url(&path);
    let value = resp.json()?["value"]
        .as_u64()
        .with_context(|| format!("GET {url}: no number `value` in {}", resp.body))?;
    ensure!(
        value == expected,
        "GET {url}: counter caller-{caller} answered {value}, expected {expected}: a reply \
         reached the wrong call, or an increment was lost or applied twice"
    );
    Ok(())
}
