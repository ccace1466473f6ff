//! A load generator for the neongrid pipeline, as devices would load it: readings
//! published on `neongrid.readings.<device>` at a chosen rate, at most `concurrency`
//! unanswered at a time, each sent again with the same id and `Nats-Msg-Id` until ingest
//! answers with anything but a retryable refusal, or the stream says it stored the message
//! already (at-least-once; the stream's deduplication and ingest's idempotency keep the
//! count exact). Given several NATS servers, it connects to each and sends the readings round
//! robin, as devices spread over several edge sites would.
//!
//! Two latencies are measured. The *reply* latency is publish until ingest's summary
//! arrives (or, for a resend, the stream's receipt saying it had the message). The *end-to-end* latency is publish until the reading is visible in the
//! HTTP API: a poller reads each device's count every [`POLL_INTERVAL`], and once a
//! device's count has grown by k since the start, its first k readings are visible.
//! That is exact for the count and at most one poll interval late for the time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod device;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::sync::Semaphore;

/// How often the poller reads the devices' counts from the API.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long one attempt waits for ingest's answer before the reading is sent again.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reading is sent again, from its first send, before it counts as failed: a
/// NATS server lost with a stream's leader leaves the stream without one for seconds, and
/// each publish meanwhile fails at once, so the bound is time, not attempts alone.
pub const RETRY_BUDGET: Duration = Duration::from_secs(60);
/// Attempts per reading, at most, within [`RETRY_BUDGET`].
pub const MAX_ATTEMPTS: u32 = 50;
/// The first pause before a reading is sent again; it doubles up to [`RETRY_PAUSE_MAX`].
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// How long, after the last answer, the poller waits for readings to become visible.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to send, and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// One or more NATS servers; each gets its own connection and an equal share.
    pub nats_urls: Vec<String>,
    /// The API's base URL, e.g. `http://127.0.0.1:8000`.
    pub api_url: String,
    /// Readings per second.
    pub rate: u32,
    /// Most readings awaiting ingest's answer at once.
    pub concurrency: usize,
    pub duration: Duration,
    /// Devices the readings are spread over, round robin.
    pub devices: usize,
    /// Start of every device id, e.g. `lg-<run>`, so runs never share devices.
    pub device_prefix: String,
    /// Print a progress line every second on stderr.
    pub progress: bool,
}

/// What a run measured. Latencies are in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Readings whose last attempt got the stream's duplicate receipt: an earlier attempt
    /// was stored and its summary lost, so it counts as stored, with no summary.
    pub receipts: u64,
    pub rejected: u64,
    /// Readings never answered within [`RETRY_BUDGET`] (or [`MAX_ATTEMPTS`]).
    pub failed: u64,
    /// Attempts sent again after no answer.
    pub retries: u64,
    /// Readings seen in the API's counts by the end, at most the readings sent per device.
    pub visible: u64,
    /// How much the devices' counts in the API grew, uncapped: equal to `accepted` when
    /// every reading was stored exactly once, larger if one was stored twice.
    pub stored: u64,
    pub seconds: f64,
    /// `accepted / seconds`.
    pub accepted_per_second: f64,
    pub reply_ms: Percentiles,
    pub end_to_end_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e3
        };
        Self {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Per device, when each of this run's readings was published, in order.
type Published = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    duplicates: u64,
    receipts: u64,
    rejected: u64,
    failed: u64,
    retries: u64,
    reply: Vec<Duration>,
}

/// Runs the load and returns what it measured.
pub async fn run(config: &Config) -> Result<Report> {
    if config.rate == 0 || config.concurrency == 0 || config.devices == 0 {
        bail!("rate, concurrency and devices must each be at least 1");
    }
    if config.nats_urls.is_empty() {
        bail!("no NATS server given; expected at least one URL such as nats://127.0.0.1:4222");
    }
    let mut servers = Vec::new();
    for url in &config.nats_urls {
        let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url))
            .await
            .with_context(|| format!("timed out connecting to {url}"))?
            .with_context(|| format!("connecting to {url}"))?;
        servers.push(client);
    }
    let devices: Vec<String> = (0..config.devices)
        .map(|n| format!("{}-{n}", config.device_prefix))
        .collect();
    let published: Published = Arc::default();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let poller = {
        let (api, devices, published, done) = (
            config.api_url.clone(),
            devices.clone(),
            Arc::clone(&published),
            Arc::clone(&done),
        );
        let (ready, baseline_read) = std::sync::mpsc::channel();
        let poller =
            std::thread::spawn(move || poll_visibility(&api, &devices, &published, &done, ready));
        // Send nothing until the poller has every device's starting count: a count read
        // after the first readings landed would hide them from the report (under load one
        // GET takes long enough for many to land).
        if tokio::task::spawn_blocking(move || baseline_read.recv())
            .await?
            .is_err()
        {
            return Err(poller
                .join()
                .map_err(|_| anyhow::anyhow!("the API poller panicked"))?
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the API poller stopped early")));
        }
        poller
    };

    let start = Instant::now();
    let in_flight = Arc::new(Semaphore::new(config.concurrency));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(config.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_progress = start;
    let mut n: u64 = 0;
    while start.elapsed() < config.duration {
        ticker.tick().await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        let device = &devices[(n % devices.len() as u64) as usize];
        let id = format!("r-{n}");
        let msg_id = device::reading_msg_id(device, &id);
        let body = serde_json::json!({
            "id": id, "device": device, "metric": "temperature_c",
            "value": 15.0 + (n % 200) as f64 / 10.0, "ts": "2026-11-20T10:00:00Z",
        })
        .to_string();
        let subject = format!("neongrid.readings.{device}");
        published
            .lock()
            .unwrap()
            .entry(device.clone())
            .or_default()
            .push(Instant::now());
        tally.lock().unwrap().sent += 1;
        let task_nats = servers[(n % servers.len() as u64) as usize].clone();
        let task_tally = Arc::clone(&tally);
        tasks.spawn(async move {
            send(&task_nats, subject, body, &msg_id, &task_tally).await;
            drop(permit);
        });
        n += 1;
        if config.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let t = tally.lock().unwrap();
            eprintln!(
                "[{:>5.1}s] sent {} accepted {} retries {} in flight {}",
                start.elapsed().as_secs_f64(),
                t.sent,
                t.accepted,
                t.retries,
                config.concurrency - in_flight.available_permits()
            );
        }
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (visible, stored, end_to_end) = poller
        .join()
        .map_err(|_| anyhow::anyhow!("the API poller panicked"))??;

    let t = std::mem::take(&mut *tally.lock().unwrap());
    Ok(Report {
        sent: t.sent,
        accepted: t.accepted,
        duplicates: t.duplicates,
        receipts: t.receipts,
        rejected: t.rejected,
        failed: t.failed,
        retries: t.retries,
        visible,
        stored,
        seconds,
        accepted_per_second: t.accepted as f64 / seconds,
        reply_ms: Percentiles::of(t.reply),
        end_to_end_ms: Percentiles::of(end_to_end),
    })
}

/// A summary that refuses the reading only for reasons worth another try (a store that
/// is down, say): the sender must send it again.
fn only_retryable_refusals(summary: &serde_json::Value) -> bool {
    let rejections = summary["rejections"].as_array().map(Vec::as_slice);
    summary["accepted"].as_u64() == Some(0)
        && summary["duplicates"].as_u64() == Some(0)
        && rejections.is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["retryable"] == true))
}

/// What became of one attempt.
enum Heard {
    Summary(serde_json::Value),
    AlreadyStored,
}

/// Sends one reading until ingest answers or the stream says it has it, and tallies that.
async fn send(
    nats: &async_nats::Client,
    subject: String,
    body: String,
    msg_id: &str,
    tally: &Mutex<Tally>,
) {
    let first = Instant::now();
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            device::request(nats, subject.clone(), body.clone().into(), Some(msg_id)),
        )
        .await;
        let heard = match answer {
            Ok(Ok(device::Answer::Handled(reply))) => {
                serde_json::from_slice::<serde_json::Value>(&reply.payload)
                    .ok()
                    .filter(|s| !only_retryable_refusals(s))
                    .map(Heard::Summary)
            }
            Ok(Ok(device::Answer::AlreadyStored)) => Some(Heard::AlreadyStored),
            _ => None,
        };
        let last = attempt == MAX_ATTEMPTS || first.elapsed() + pause >= RETRY_BUDGET;
        if heard.is_none() && !last {
            // A growing pause before trying again, so that a store being restarted or a
            // stream electing a leader is not hammered by every reading in flight at once.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
        let mut t = tally.lock().unwrap();
        match heard {
            Some(Heard::Summary(s)) => {
                t.reply.push(first.elapsed());
                let count = |field: &str| s[field].as_u64().unwrap_or(0);
                t.accepted += count("accepted");
                t.duplicates += count("duplicates");
                t.rejected += count("rejected");
                return;
            }
            Some(Heard::AlreadyStored) => {
                // The device's answer is the receipt: its reading is durably stored.
                t.reply.push(first.elapsed());
                t.receipts += 1;
                return;
            }
            None if !last => t.retries += 1,
            None => {
                t.failed += 1;
                return;
            }
        }
    }
}

/// Polls the devices' counts until `done` and everything published is visible (or
/// [`SETTLE_TIMEOUT`] after `done`); returns how many readings became visible, how much
/// the counts grew, and the end-to-end latency of each visible reading. Signals `ready`
/// once it has read every device's count before the run.
fn poll_visibility(
    api: &str,
    devices: &[String],
    published: &Mutex<HashMap<String, Vec<Instant>>>,
    done: &std::sync::atomic::AtomicBool,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<(u64, u64, Vec<Duration>)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let count = |device: &str| -> Result<u64> {
        match agent.get(&format!("{api}/api/devices/{device}")).call() {
            Ok(resp) => {
                let body: serde_json::Value = serde_json::from_reader(resp.into_reader())?;
                body["count"]
                    .as_u64()
                    .with_context(|| format!("no count for {device}: {body}"))
            }
            Err(ureq::Error::Status(404, _)) => Ok(0),
            Err(err) => Err(err).with_context(|| format!("GET {api}/api/devices/{device}")),
        }
    };
    // Counts before the run, so that only this run's readings are measured. An API that
    // does not answer now is misconfigured: say so at once.
    let mut baseline = HashMap::new();
    for device in devices {
        baseline.insert(device.as_str(), count(device)?);
    }
    // The sender may have given up waiting; the counts are still worth polling.
    let _ = ready.send(());
    // During the run the API may fail for a while (a store restarting, a host lost):
    // the last count stands until it answers again, unless it stays down too long.
    let mut last = baseline.clone();
    let mut failing_since: Option<Instant> = None;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut latencies = Vec::new();
    let mut done_at = None;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let mut all_visible = true;
        let mut all_answered = true;
        for device in devices {
            match count(device) {
                Ok(n) => {
                    last.insert(device, n);
                }
                Err(err) => {
                    all_answered = false;
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= SETTLE_TIMEOUT {
                        return Err(
                            err.context(format!("the API has not answered for {SETTLE_TIMEOUT:?}"))
                        );
                    }
                    continue;
                }
            }
            let visible = (last[device.as_str()] - baseline[device.as_str()]) as usize;
            let now = Instant::now();
            let published = published.lock().unwrap();
            let times = published.get(device).map(Vec::as_slice).unwrap_or_default();
            let seen = seen.entry(device).or_default();
            for t in times.iter().take(visible).skip(*seen) {
                latencies.push(now - *t);
            }
            *seen = (*seen).max(visible.min(times.len()));
            all_visible &= *seen >= times.len();
        }
        if all_answered {
            failing_since = None;
        }
        if finished {
            let since = *done_at.get_or_insert_with(Instant::now);
            if (all_visible && all_answered) || since.elapsed() >= SETTLE_TIMEOUT {
                let grown = devices
                    .iter()
                    .map(|d| last[d.as_str()] - baseline[d.as_str()])
                    .sum();
                return Ok((seen.values().sum::<usize>() as u64, grown, latencies));
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_ranks() {
        let ms = |n: u64| Duration::from_millis(n);
        let p = Percentiles::of((1..=100).map(ms).collect());
        assert_eq!((p.count, p.p50, p.p99, p.max), (100, 50.0, 99.0, 100.0));
        let one = Percentiles::of(vec![ms(7)]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }

    #[test]
    fn only_a_wholly_retryable_refusal_is_sent_again() {
        let summary = |accepted: u64, retryable: &[bool]| {
            serde_json::json!({
                "accepted": accepted, "rejected": retryable.len(), "duplicates": 0,
                "rejections": retryable.iter().map(|r| serde_json::json!({
                    "index": 0, "code": "store_unavailable", "reason": "down", "retryable": r,
                })).collect::<Vec<_>>(),
            })
        };
        assert!(only_retryable_refusals(&summary(0, &[true])));
        assert!(!only_retryable_refusals(&summary(0, &[false])));
        assert!(!only_retryable_refusals(&summary(0, &[true, false])));
        assert!(!only_retryable_refusals(&summary(1, &[])));
        assert!(!only_retryable_refusals(&serde_json::json!({"error": "?"})));
    }
}
