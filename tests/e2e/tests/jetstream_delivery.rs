//! The JetStream messaging provider's delivery contract on a real lattice (wash, host,
//! wadm, nats-server with JetStream): the messaging probe (`tests/messaging-probe`) is fed
//! from the stream PROBE and records what it sees; the test publishes as a device would
//! (a JetStream publish, straight to NATS) and asks the probe over core NATS.
//!
//! 1. Ack after success: a message that fails its first two attempts is handled on the
//!    third, exactly once.
//! 2. Dead letter: a message that always fails reaches `probe.dead` after three attempts,
//!    with its reason and original bytes.
//! 3. Reply: a publish naming an inbox in `Neongrid-Reply-To` gets the handler's answer.
//! 4. Ordering: 64 keys × 200 messages from four connections at once; each key's messages
//!    are handled in stream order, never two at once.
//! 5. Provider kill mid-handling: the provider process is killed while a backlog is being
//!    handled; the host starts it again and every message is still handled, in order.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::pipeline::{connect, runtime};
use neongrid_e2e::probe::{
    check_order, complete_keys, count, publish, publish_keys, query, redeliveries, APP, ARTIFACTS,
    STREAM, TEMPLATE,
};
use neongrid_e2e::{build_artifact, repo_root, trace, wait_for, Lattice};

/// As the template's handler link sets them.
const ACK_WAIT: Duration = Duration::from_secs(2);
const MAX_DELIVER: u64 = 3;
const KEYS: usize = 64;
const PER_KEY: usize = 200;
/// The backlog the provider is killed in the middle of.
const KILL_KEYS: usize = 16;
const KILL_PER_KEY: usize = 40;

#[test]
fn jetstream_provider_acks_after_success_dead_letters_orders_and_survives_a_kill() -> Result<()> {
    for artifact in ARTIFACTS {
        build_artifact(artifact)?;
    }
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    let nats_url = format!("nats://127.0.0.1:{}", lattice.nats_port);
    let mut manifest = Manifest::load(&repo_root().join(TEMPLATE))?;
    manifest
        .absolutize_images(&repo_root())?
        .set_nats_uris(&nats_url)?;
    let path = lattice.dir().join("messaging-probe.yaml");
    manifest.write(&path)?;
    lattice.deploy(&path, APP, Duration::from_secs(180))?;

    let rt = runtime()?;
    let nc = rt.block_on(connect(&nats_url))?;
    let js = jetstream::new(nc.clone());
    wait_for(
        "the provider to create the stream",
        Duration::from_secs(90),
        || Ok(rt.block_on(js.get_stream(STREAM)).ok().map(|_| ())),
    )?;
    wait_for(
        "the probe to answer queries",
        Duration::from_secs(90),
        || Ok(rt.block_on(query(&nc, "total")).ok()),
    )?;

    // 1. Two failed attempts, then success: handled once, three attempts in all.
    rt.block_on(publish(&js, "probe.in.a", "a 1 fail=2"))?;
    wait_for("a 1 to be handled", Duration::from_secs(60), || {
        Ok((rt.block_on(query(&nc, "handled a 1"))? == "1").then_some(()))
    })?;
    std::thread::sleep(ACK_WAIT * 2);
    ensure!(
        rt.block_on(query(&nc, "attempts a 1"))? == "3",
        "a 1: three attempts"
    );
    ensure!(
        rt.block_on(query(&nc, "handled a 1"))? == "1",
        "a 1: handled once"
    );
    trace("ack after success: handled once on the third attempt");

    // 2. Always failing: dead-lettered after MAX_DELIVER attempts, reason and bytes kept.
    rt.block_on(publish(&js, "probe.in.b", "b 1 fail=always"))?;
    let dead = wait_for("the dead letter", Duration::from_secs(60), || {
        let Ok(stream) = rt.block_on(js.get_stream(format!("{STREAM}_DEAD"))) else {
            return Ok(None);
        };
        Ok(rt.block_on(stream.get_raw_message(1)).ok())
    })?;
    ensure!(
        &dead.payload[..] == b"b 1 fail=always",
        "dead letter body: {:?}",
        dead.payload
    );
    let header = |name: &str| -> Result<String> {
        Ok(dead
            .headers
            .get(name)
            .with_context(|| format!("dead letter has no {name}"))?
            .as_str()
            .to_string())
    };
    let reason = header(messaging_core::DEAD_LETTER_REASON_HEADER)?;
    ensure!(
        reason.contains("deliberate failure of attempt 3 of b 1"),
        "dead letter reason: {reason}"
    );
    ensure!(header(messaging_core::DEAD_LETTER_SUBJECT_HEADER)? == "probe.in.b");
    ensure!(header(messaging_core::DEAD_LETTER_ATTEMPTS_HEADER)? == MAX_DELIVER.to_string());
    ensure!(rt.block_on(query(&nc, "attempts b 1"))? == MAX_DELIVER.to_string());
    trace(&format!(
        "dead letter after {MAX_DELIVER} attempts: {reason}"
    ));

    // 3. A reply through the header.
    let reply = rt.block_on(async {
        let inbox = nc.new_inbox();
        let mut replies = nc.subscribe(inbox.clone()).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(messaging_core::REPLY_TO_HEADER, inbox.as_str());
        js.publish_with_headers("probe.in.c", headers, Bytes::from_static(b"c 1"))
            .await?
            .await?;
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .context("no reply within 30 s")?
            .context("reply subscription closed")?;
        anyhow::Ok(String::from_utf8_lossy(&reply.payload).into_owned())
    })?;
    ensure!(reply == "ok c 1", "reply: {reply:?}");
    trace("reply through Neongrid-Reply-To");

    // 4. Ordering under concurrent publishers.
    let total_before = rt.block_on(count(&nc, "total"))?;
    let redelivered_before = redeliveries(&lattice.log("wasmcloud.log"));
    rt.block_on(publish_keys(&[&nats_url], "o", KEYS, PER_KEY, ""))?;
    let expected = total_before + KEYS * PER_KEY;
    wait_for(
        "every ordered message to be handled",
        Duration::from_secs(600),
        || Ok((rt.block_on(count(&nc, "total"))? >= expected).then_some(())),
    )?;
    let redelivered = redeliveries(&lattice.log("wasmcloud.log")) - redelivered_before;
    let repeats = rt.block_on(check_order(&nc, "o", KEYS, PER_KEY, redelivered))?;
    ensure!(
        rt.block_on(query(&nc, "violations"))? == "0",
        "two deliveries of one key at once"
    );
    trace(&format!(
        "{KEYS} keys x {PER_KEY}: in order, one at a time; {repeats} redelivered after a lost answer"
    ));

    // 5. The provider killed in the middle of a backlog.
    let total_before = rt.block_on(count(&nc, "total"))?;
    rt.block_on(publish_keys(
        &[&nats_url],
        "k",
        KILL_KEYS,
        KILL_PER_KEY,
        " sleep=20",
    ))?;
    wait_for(
        "the backlog to be under way",
        Duration::from_secs(60),
        || Ok((rt.block_on(count(&nc, "total"))? > total_before + 20).then_some(())),
    )?;
    let pid = provider_pid(lattice).context("no messaging-jetstream process")?;
    trace(&format!("killing the messaging provider (pid {pid})"));
    // SAFETY: kill has no memory effects; pid is a process of this lattice.
    ensure!(
        unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0,
        "kill {pid}"
    );
    wait_for(
        "the host to start the provider again",
        Duration::from_secs(120),
        || Ok(provider_pid(lattice).filter(|p| *p != pid)),
    )?;
    wait_for(
        "the whole backlog to be handled",
        Duration::from_secs(300),
        || {
            let complete = rt.block_on(complete_keys(&nc, "k", KILL_KEYS, KILL_PER_KEY))?;
            Ok((complete == KILL_KEYS).then_some(()))
        },
    )?;
    // A message whose handling finished just before the kill, but whose ack was lost, is
    // handled again: at least once, and still in order.
    for key in 0..KILL_KEYS {
        let order = rt.block_on(query(&nc, &format!("order k{key}")))?;
        let seen: Vec<usize> = order.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let mut deduped = seen.clone();
        deduped.dedup();
        ensure!(
            deduped == (0..KILL_PER_KEY).collect::<Vec<_>>(),
            "k{key} after the kill: {order}"
        );
    }
    ensure!(
        rt.block_on(query(&nc, "violations"))? == "0",
        "two deliveries of one key at once after the kill"
    );
    trace("provider killed mid-handling: every message handled, in order");
    Ok(())
}

/// The messaging provider's process: the host runs it from a cache file named after it.
fn provider_pid(lattice: &Lattice) -> Option<u32> {
    lattice
        .processes()
        .into_iter()
        .find(|(_, cmd)| cmd.contains("messaging_jetstream") || cmd.contains("messaging-jetstream"))
        .map(|(pid, _)| pid)
}
