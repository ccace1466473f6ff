//! A handler that records what a messaging provider delivers to it, for the e2e tests.
//!
//! A delivery's body is `<key> <n> [fail=<k>|fail=always] [sleep=<ms>]`:
//! - every attempt increments `attempts/<key>/<n>`; the first `k` attempts (or all, for
//!   `always`) answer `Err`, so the provider must deliver again or dead-letter;
//! - a successful attempt increments `handled/<key>/<n>` and `total`, and appends `n` to
//!   `order/<key>`; the append is a read and a write, so two deliveries of one key at once
//!   would lose one;
//! - entering counts per key (`enter/<key>`) and leaving records the count it entered
//!   with (`leave/<key>`): an entry that finds the previous one not left increments
//!   `violations`. A delivery whose handler died (its host killed) is never left, so it
//!   costs one violation at the key's next entry, not one at every later entry;
//! - `sleep` holds the delivery that long, to widen the window for such overlaps.
//!
//! A body of `noop` is answered at once, with nothing recorded: the trivial handler the
//! messaging bench compares the providers with.
//!
//! A message on a subject that starts with `probe.query` asks what was seen (body
//! `order <key>`, `handled <key> <n>`, `attempts <key> <n>`, `violations` or `total`); the
//! answer goes to its reply-to.

wit_bindgen::generate!({
    path: "../../wit",
    world: "messaging-probe",
    with: {
        "wasmcloud:messaging/types@0.2.0": generate,
        "wasmcloud:messaging/consumer@0.2.0": generate,
        "wasmcloud:messaging/handler@0.2.0": generate,
        "wasi:keyvalue/store@0.2.0-draft": generate,
        "wasi:keyvalue/atomics@0.2.0-draft": generate,
    },
});

use std::time::Duration;

use exports::wasmcloud::messaging::handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasmcloud::messaging::{consumer, types::BrokerMessage};

const BUCKET: &str = "probe";
const QUERY_PREFIX: &str = "probe.query";
const NOOP: &str = "noop";
/// The longest hold a delivery may ask for.
const MAX_SLEEP_MS: u64 = 10_000;

struct Probe;

export!(Probe);

fn kv_err(what: &str, err: store::Error) -> String {
    format!("{what}: {err:?}")
}

fn bucket() -> Result<store::Bucket, String> {
    store::open(BUCKET).map_err(|e| kv_err("open", e))
}

fn incr(bucket: &store::Bucket, key: &str) -> Result<u64, String> {
    atomics::increment(bucket, key, 1).map_err(|e| kv_err(key, e))
}

fn number(bucket: &store::Bucket, key: &str) -> Result<u64, String> {
    match bucket.get(key).map_err(|e| kv_err(key, e))? {
        None => Ok(0),
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .parse()
            .map_err(|_| format!("{key} is not a number")),
    }
}

fn text(bucket: &store::Bucket, key: &str) -> Result<String, String> {
    Ok(bucket
        .get(key)
        .map_err(|e| kv_err(key, e))?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default())
}

/// One delivery: parsed, counted, failed or recorded.
fn deliver(body: &str) -> Result<(), String> {
    let mut words = body.split_whitespace();
    let (Some(key), Some(n)) = (words.next(), words.next()) else {
        return Err(format!(
            "expected `<key> <n> [fail=..] [sleep=..]`, got {body:?}"
        ));
    };
    let (mut fail, mut sleep) = (0u64, 0u64);
    for word in words {
        match word.split_once('=') {
            Some(("fail", "always")) => fail = u64::MAX,
            Some(("fail", k)) => fail = k.parse().map_err(|_| format!("bad fail count {k:?}"))?,
            Some(("sleep", ms)) => {
                sleep = ms
                    .parse::<u64>()
                    .map_err(|_| format!("bad sleep {ms:?}"))?
                    .min(MAX_SLEEP_MS)
            }
            _ => return Err(format!("unknown option {word:?}")),
        }
    }
    let bucket = bucket()?;
    let attempt = incr(&bucket, &format!("attempts/{key}/{n}"))?;
    let entered = incr(&bucket, &format!("enter/{key}"))?;
    let leave_key = format!("leave/{key}");
    let left = number(&bucket, &leave_key)?;
    if entered != left + 1 {
        incr(&bucket, "violations")?;
    }
    if sleep > 0 {
        std::thread::sleep(Duration::from_millis(sleep));
    }
    let outcome = if attempt <= fail {
        Err(format!(
            "deliberate failure of attempt {attempt} of {key} {n}"
        ))
    } else {
        let order_key = format!("order/{key}");
        let mut order = text(&bucket, &order_key)?;
        if !order.is_empty() {
            order.push(',');
        }
        order.push_str(n);
        bucket
            .set(&order_key, order.as_bytes())
            .map_err(|e| kv_err(&order_key, e))?;
        incr(&bucket, &format!("handled/{key}/{n}"))?;
        incr(&bucket, "total")?;
        Ok(())
    };
    bucket
        .set(&leave_key, entered.to_string().as_bytes())
        .map_err(|e| kv_err(&leave_key, e))?;
    outcome
}

fn query(body: &str) -> Result<String, String> {
    let bucket = bucket()?;
    let words: Vec<&str> = body.split_whitespace().collect();
    match words.as_slice() {
        ["order", key] => text(&bucket, &format!("order/{key}")),
        ["handled", key, n] => {
            number(&bucket, &format!("handled/{key}/{n}")).map(|v| v.to_string())
        }
        ["attempts", key, n] => {
            number(&bucket, &format!("attempts/{key}/{n}")).map(|v| v.to_string())
        }
        ["violations"] => number(&bucket, "violations").map(|v| v.to_string()),
        ["total"] => number(&bucket, "total").map(|v| v.to_string()),
        _ => Err(format!("unknown query {body:?}")),
    }
}

impl Guest for Probe {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        if msg.subject.starts_with(QUERY_PREFIX) {
            let answer = query(&body).unwrap_or_else(|err| format!("error: {err}"));
            if let Some(reply_to) = msg.reply_to {
                consumer::publish(&BrokerMessage {
                    subject: reply_to,
                    body: answer.into_bytes(),
                    reply_to: None,
                })?;
            }
            return Ok(());
        }
        let outcome = if body == NOOP { Ok(()) } else { deliver(&body) };
        if let (Some(reply_to), Ok(())) = (msg.reply_to, &outcome) {
            consumer::publish(&BrokerMessage {
                subject: reply_to,
                body: format!("ok {body}").into_bytes(),
                reply_to: None,
            })?;
        }
        outcome
    }
}
