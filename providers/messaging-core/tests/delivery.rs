//! The delivery contract on a real nats-server with JetStream: acknowledged only after
//! success, redelivered after a failure, dead-lettered after the last attempt, kept in
//! progress while a handler runs, ordered per key across two subscribers, deduplicated by
//! `Nats-Msg-Id`, and a conflicting layout refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use messaging_core::*;
use test_servers::NatsServer;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(60);

fn config(stream: &str, extra: &[(&str, &str)]) -> DeliveryConfig {
    let mut values: HashMap<String, String> = [
        (CONFIG_STREAM, stream.to_string()),
        (CONFIG_SUBJECTS, format!("{}.in.>", stream.to_lowercase())),
        (CONFIG_CONSUMER, "handler".to_string()),
        (
            CONFIG_DEAD_LETTER_SUBJECT,
            format!("{}.dead", stream.to_lowercase()),
        ),
        (CONFIG_ACK_WAIT_MS, "1000".to_string()),
        (CONFIG_BACKOFF_MS, "50".to_string()),
        (CONFIG_PARTITIONS, "4".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    DeliveryConfig::from_map(&values).expect("test config is valid")
}

/// A durable subscription on `client`'s connection, as one provider instance runs it.
async fn start<H: Handler>(
    client: &async_nats::Client,
    config: DeliveryConfig,
    handler: H,
) -> Subscription {
    Subscription::start(jetstream::new(client.clone()), config, handler)
        .await
        .expect("the subscription starts")
}

async fn client(nats: &NatsServer) -> async_nats::Client {
    connect(&[nats.url()], "messaging-core-test")
        .await
        .expect("connect")
}

/// Waits until `done` holds, or fails the test after [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records every delivery; fails each message's first `failures` attempts.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Delivery>>>,
    failures: u64,
}

impl Handler for Recorder {
    async fn handle(&self, delivery: Delivery) -> Result<(), String> {
        let attempt = delivery.attempt;
        self.seen.lock().unwrap().push(delivery);
        if attempt <= self.failures {
            Err(format!("deliberate failure of attempt {attempt}"))
        } else {
            Ok(())
        }
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }
}

async fn pending(js: &jetstream::Context, config: &DeliveryConfig) -> (u64, usize) {
    let stream = js.get_stream(layout::parts_stream(config)).await.unwrap();
    let (mut pending, mut ack_pending) = (0, 0);
    for p in 0..config.partitions {
        let info = stream
            .consumer_info(layout::consumer_name(config, p))
            .await
            .unwrap();
        pending += info.num_pending;
        ack_pending += info.num_ack_pending;
    }
    (pending, ack_pending)
}

#[tokio::test]
async fn a_handler_that_fails_twice_is_acknowledged_once_after_the_third_attempt() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("ACKS", &[]);
    let handler = Recorder {
        failures: 2,
        ..Default::default()
    };
    let sub = start(&client, config.clone(), handler.clone()).await;
    let publisher = Publisher::new(client.clone());
    let receipt = publisher
        .publish("acks.in.dev-1", Bytes::from_static(b"reading"), None, true)
        .await
        .unwrap();
    assert!(
        matches!(receipt, Published::Stored { ref stream, sequence: 1, duplicate: false } if stream == "ACKS")
    );
    eventually("three attempts", || handler.seen().len() >= 3).await;
    // Twice the ack wait: an unacknowledged message would have come back by now.
    tokio::time::sleep(config.ack_wait * 2).await;
    let seen = handler.seen();
    assert_eq!(
        seen.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(seen
        .iter()
        .all(|d| d.subject == "acks.in.dev-1" && &d.body[..] == b"reading"));
    assert_eq!(pending(&jetstream::new(client), &config).await, (0, 0));
    sub.stop().await;
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_with_its_reason_and_bytes() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("DL", &[(CONFIG_MAX_DELIVER, "3")]);
    let handler = Recorder {
        failures: u64::MAX,
        ..Default::default()
    };
    let sub = start(&client, config.clone(), handler.clone()).await;
    let body = Bytes::from_static(b"\x00\xffnot json");
    Publisher::new(client.clone())
        .publish("dl.in.dev-9.sub", body.clone(), None, true)
        .await
        .unwrap();
    let js = jetstream::new(client.clone());
    let dead = js
        .get_stream(layout::dead_letter_stream(&config))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let letter = loop {
        if let Ok(letter) = dead.get_raw_message(1).await {
            break letter;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(letter.payload, body);
    assert_eq!(letter.subject.as_str(), "dl.dead");
    let header = |name: &str| letter.headers.get(name).unwrap().as_str().to_string();
    assert_eq!(
        header(DEAD_LETTER_REASON_HEADER),
        "deliberate failure of attempt 3"
    );
    assert_eq!(header(DEAD_LETTER_SUBJECT_HEADER), "dl.in.dev-9.sub");
    assert_eq!(header(DEAD_LETTER_ATTEMPTS_HEADER), "3");
    tokio::time::sleep(config.ack_wait * 2).await;
    assert_eq!(handler.seen().len(), 3, "no attempt after the dead letter");
    assert_eq!(pending(&js, &config).await, (0, 0));
    sub.stop().await;
}

/// Blocks on the first attempt until released; handles later ones at once.
#[derive(Clone)]
struct SlowFirst {
    attempts: Arc<Mutex<Vec<u64>>>,
    hold: Duration,
}

impl Handler for SlowFirst {
    async fn handle(&self, delivery: Delivery) -> Result<(), String> {
        self.attempts.lock().unwrap().push(delivery.attempt);
        if delivery.attempt == 1 {
            tokio::time::sleep(self.hold).await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_slow_live_handler_is_never_delivered_to_twice() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("SLOW", &[]);
    // Three and a half ack waits: only the in-progress signals keep the message.
    let handler = SlowFirst {
        attempts: Arc::default(),
        hold: config.ack_wait * 7 / 2,
    };
    let first = start(&client, config.clone(), handler.clone()).await;
    let second = start(&client, config.clone(), handler.clone()).await;
    Publisher::new(client.clone())
        .publish("slow.in.d", Bytes::from_static(b"x"), None, true)
        .await
        .unwrap();
    eventually("the slow attempt", || {
        !handler.attempts.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(handler.hold + config.ack_wait * 2).await;
    assert_eq!(*handler.attempts.lock().unwrap(), vec![1]);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_dies_mid_handling_leaves_the_message_to_another() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("DIES", &[]);
    let handler = SlowFirst {
        attempts: Arc::default(),
        hold: Duration::from_secs(3600),
    };
    let dying = start(&client, config.clone(), handler.clone()).await;
    Publisher::new(client.clone())
        .publish("dies.in.d", Bytes::from_static(b"x"), None, true)
        .await
        .unwrap();
    eventually("the first attempt", || {
        !handler.attempts.lock().unwrap().is_empty()
    })
    .await;
    // Dropped, not stopped: its loops end where they are, as in a killed process.
    drop(dying);
    let other_client = connect(&[nats.url()], "other").await.unwrap();
    let survivor = start(&other_client, config.clone(), handler.clone()).await;
    eventually("the second attempt", || {
        handler.attempts.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*handler.attempts.lock().unwrap(), vec![1, 2]);
    tokio::time::sleep(config.ack_wait * 2).await;
    assert_eq!(pending(&jetstream::new(client), &config).await, (0, 0));
    survivor.stop().await;
}

/// Checks one-at-a-time per key and per partition, and records the order per key.
#[derive(Clone, Default)]
struct OrderChecker {
    in_flight_keys: Arc<Mutex<HashSet<String>>>,
    in_flight_partitions: Arc<Mutex<HashSet<u32>>>,
    order: Arc<Mutex<HashMap<String, Vec<u64>>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Handler for OrderChecker {
    async fn handle(&self, delivery: Delivery) -> Result<(), String> {
        let text = String::from_utf8(delivery.body.to_vec()).unwrap();
        let (key, n) = text.split_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        if !self.in_flight_keys.lock().unwrap().insert(key.to_string()) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("two messages of {key} at once"));
        }
        if !self
            .in_flight_partitions
            .lock()
            .unwrap()
            .insert(delivery.partition)
        {
            self.violations.lock().unwrap().push(format!(
                "two messages of partition {} at once",
                delivery.partition
            ));
        }
        // Long enough for another subscriber to take a message of the same key if the
        // server let it.
        tokio::time::sleep(Duration::from_micros(200 + (n % 7) * 100)).await;
        self.order
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .push(n);
        self.in_flight_partitions
            .lock()
            .unwrap()
            .remove(&delivery.partition);
        self.in_flight_keys.lock().unwrap().remove(key);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_handled_one_at_a_time_in_order_across_two_subscribers() {
    const KEYS: usize = 64;
    const PER_KEY: u64 = 100;
    const PUBLISHERS: usize = 4;
    let nats = NatsServer::start().unwrap();
    let config = config("ORDER", &[(CONFIG_PARTITIONS, "8")]);
    let checker = OrderChecker::default();
    let mut subs = Vec::new();
    for name in ["host-a", "host-b"] {
        let client = connect(&[nats.url()], name).await.unwrap();
        subs.push(start(&client, config.clone(), checker.clone()).await);
    }
    // Each key's messages come from one connection in sequence (awaiting each receipt),
    // so their stream order is 0, 1, 2, ...; the connections run concurrently.
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let publisher = Publisher::new(connect(&[nats.url()], "publisher").await.unwrap());
        publishers.push(tokio::spawn(async move {
            for n in 0..PER_KEY {
                for key in (p..KEYS).step_by(PUBLISHERS) {
                    // Keys with dots share their first token's partition.
                    let subject = format!("order.in.k{key}.sensor");
                    let body = Bytes::from(format!("k{key} {n}"));
                    publisher.publish(&subject, body, None, true).await.unwrap();
                }
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let total = KEYS * PER_KEY as usize;
    eventually("every message handled", || {
        checker
            .order
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= total
    })
    .await;
    let order = checker.order.lock().unwrap().clone();
    assert_eq!(order.len(), KEYS);
    for (key, seen) in &order {
        assert_eq!(seen, &(0..PER_KEY).collect::<Vec<_>>(), "order of {key}");
    }
    assert!(
        checker.violations.lock().unwrap().is_empty(),
        "{:?}",
        checker.violations.lock().unwrap()
    );
    for sub in subs {
        sub.stop().await;
    }
}

#[tokio::test]
async fn a_repeated_msg_id_is_stored_and_handled_once() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("DEDUP", &[]);
    let handler = Recorder::default();
    let sub = start(&client, config.clone(), handler.clone()).await;
    let js = jetstream::new(client.clone());
    let mut duplicates = Vec::new();
    for _ in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "reading-42");
        let ack = js
            .publish_with_headers("dedup.in.d", headers, Bytes::from_static(b"r"))
            .await
            .unwrap()
            .await
            .unwrap();
        duplicates.push((ack.sequence, ack.duplicate));
    }
    assert_eq!(duplicates, vec![(1, false), (1, true)]);
    eventually("the delivery", || !handler.seen().is_empty()).await;
    tokio::time::sleep(config.ack_wait * 2).await;
    assert_eq!(handler.seen().len(), 1);
    sub.stop().await;
}

#[derive(Clone)]
struct Replier(async_nats::Client);

impl Handler for Replier {
    async fn handle(&self, delivery: Delivery) -> Result<(), String> {
        let reply_to = delivery.reply_to.ok_or("no reply-to")?;
        let mut body = b"summary of ".to_vec();
        body.extend_from_slice(&delivery.body);
        self.0
            .publish(reply_to, body.into())
            .await
            .map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn a_request_into_the_stream_gets_the_handlers_reply() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let config = config("REQ", &[]);
    let sub = start(&client, config, Replier(client.clone())).await;
    let publisher = Publisher::new(client);
    let reply = publisher
        .request(
            "req.in.d",
            Bytes::from_static(b"m1"),
            Duration::from_secs(10),
            true,
        )
        .await
        .unwrap();
    assert_eq!(&reply.body[..], b"summary of m1");
    // Many at once, sharing one reply subscription: each gets its own answer.
    let answers = futures::future::join_all((0..50).map(|n| {
        let publisher = publisher.clone();
        async move {
            let body = Bytes::from(format!("m{n}"));
            let subject = format!("req.in.k{}", n % 7);
            let reply = publisher
                .request(&subject, body, Duration::from_secs(30), true)
                .await
                .unwrap();
            (n, String::from_utf8(reply.body.to_vec()).unwrap())
        }
    }))
    .await;
    for (n, answer) in answers {
        assert_eq!(answer, format!("summary of m{n}"));
    }
    sub.stop().await;
}

#[tokio::test]
async fn a_conflicting_existing_layout_is_refused_and_an_identical_one_reused() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let js = jetstream::new(client.clone());
    let config4 = config("CONFLICT", &[]);
    let first = Subscription::start(js.clone(), config4.clone(), Recorder::default())
        .await
        .unwrap();
    // The same layout again (another host): accepted.
    let again = Subscription::start(js.clone(), config4.clone(), Recorder::default())
        .await
        .unwrap();
    let err = Subscription::start(
        js.clone(),
        config("CONFLICT", &[(CONFIG_PARTITIONS, "8")]),
        Recorder::default(),
    )
    .await
    .err()
    .expect("a different partition count is refused");
    let text = err.to_string();
    assert!(
        text.contains("CONFLICT_PARTS") && text.contains("partition layout"),
        "{text}"
    );
    let err = Subscription::start(
        js.clone(),
        config("CONFLICT", &[(CONFIG_SUBJECTS, "other.>")]),
        Recorder::default(),
    )
    .await
    .err()
    .expect("different subjects are refused");
    assert!(err.to_string().contains("subjects"), "{err}");
    // An updatable setting is updated in place.
    let longer = config("CONFLICT", &[(CONFIG_DEDUP_WINDOW_MS, "60000")]);
    let updated = Subscription::start(js.clone(), longer, Recorder::default())
        .await
        .unwrap();
    let mut stream = js.get_stream("CONFLICT").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.duplicate_window,
        Duration::from_secs(60)
    );
    for sub in [first, again, updated] {
        sub.stop().await;
    }
}

#[tokio::test]
async fn what_was_stored_survives_a_nats_restart() {
    use test_servers::TestServer as _;
    let mut nats = NatsServer::start().unwrap();
    let config = config("RESTART", &[]);
    {
        let client = client(&nats).await;
        // The layout exists, no subscriber runs: the message waits in the stream.
        start(&client, config.clone(), Recorder::default())
            .await
            .stop()
            .await;
        let receipt = Publisher::new(client)
            .publish("restart.in.d", Bytes::from_static(b"kept"), None, true)
            .await
            .unwrap();
        assert!(matches!(receipt, Published::Stored { .. }));
    }
    nats.stop().unwrap();
    nats.start_again().unwrap();
    let client = client(&nats).await;
    let handler = Recorder::default();
    let sub = start(&client, config, handler.clone()).await;
    eventually("the stored message", || !handler.seen().is_empty()).await;
    assert_eq!(&handler.seen()[0].body[..], b"kept");
    sub.stop().await;
}

#[tokio::test]
async fn publishes_outside_a_stream_go_out_on_core_nats() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let mut inbox = client.subscribe("plain.subject").await.unwrap();
    let sent = Publisher::new(client.clone())
        .publish(
            "plain.subject",
            Bytes::from_static(b"hi"),
            Some("reply.here"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(sent, Published::Sent);
    let got = tokio::time::timeout(WAIT, inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.reply.as_deref(), Some("reply.here"));
    let err = Publisher::new(client)
        .publish("bad subject.>", Bytes::new(), None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid subject"), "{err}");
}

#[tokio::test]
async fn core_subscriptions_deliver_as_the_builtin_provider_does() {
    let nats = NatsServer::start().unwrap();
    let client = client(&nats).await;
    let subscriptions = core_subscriptions(
        &[(
            CONFIG_SUBSCRIPTIONS.to_string(),
            "svc.ask|workers".to_string(),
        )]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let _subscriber = CoreSubscriber::start(
        client.clone(),
        subscriptions,
        Arc::new(Replier(client.clone())),
    )
    .await
    .unwrap();
    let reply = tokio::time::timeout(WAIT, client.request("svc.ask", Bytes::from_static(b"q")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply.payload[..], b"summary of q");
}
