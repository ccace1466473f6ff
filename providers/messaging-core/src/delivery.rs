//! The delivery loops: one per partition, each pulling one message at a time and
//! acknowledging it only after the handler succeeded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::config::DeliveryConfig;
use crate::error::Error;
use crate::layout::{self, consumer_name};
use crate::subject::original_subject;

/// The header a publisher names its reply inbox in: JetStream keeps no reply subject for
/// a consumer, so the provider hands this to the handler as `reply-to`.
pub const REPLY_TO_HEADER: &str = "Neongrid-Reply-To";
/// Dead-letter headers: why the last attempt failed, where the message was published,
/// its sequence in the ingress stream and how many attempts it had.
pub const DEAD_LETTER_REASON_HEADER: &str = "Neongrid-Dead-Letter-Reason";
pub const DEAD_LETTER_SUBJECT_HEADER: &str = "Neongrid-Original-Subject";
pub const DEAD_LETTER_SEQUENCE_HEADER: &str = "Neongrid-Stream-Sequence";
pub const DEAD_LETTER_ATTEMPTS_HEADER: &str = "Neongrid-Attempts";
/// The longest dead-letter reason kept, in bytes.
pub const MAX_REASON_LEN: usize = 4096;

/// Pauses between attempts at a pull, an ack or a dead-letter publish that failed.
const RETRY_PAUSES: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// One message as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    pub body: Bytes,
    /// From the publisher's [`REPLY_TO_HEADER`].
    pub reply_to: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u64,
    /// Its sequence in the partitioned stream (stream order within the partition).
    pub sequence: u64,
    pub partition: u32,
}

/// What the provider calls for every message: `Ok` acknowledges it, `Err` (with a reason)
/// delivers it again after the backoff, or dead-letters it after the last attempt.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Result<(), String>> + Send;
}

/// A running durable subscription: its partition loops stop when it is stopped or dropped.
pub struct Subscription {
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
}

impl Subscription {
    /// Creates or checks the streams and consumers, then starts one loop per partition.
    pub async fn start<H: Handler>(
        js: jetstream::Context,
        config: DeliveryConfig,
        handler: H,
    ) -> Result<Self, Error> {
        let layout = layout::ensure(&js, &config).await?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            js,
            config,
            handler,
        });
        let mut loops = JoinSet::new();
        for partition in 0..shared.config.partitions {
            let consumer: Consumer<pull::Config> = layout
                .parts
                .get_consumer(&consumer_name(&shared.config, partition))
                .await
                .map_err(|err| {
                    Error::jetstream(format!("opening consumer of partition {partition}"), err)
                })?;
            loops.spawn(partition_loop(
                shared.clone(),
                partition,
                consumer,
                stopped.clone(),
            ));
        }
        info!(
            stream = %shared.config.stream,
            consumer = %shared.config.consumer,
            partitions = shared.config.partitions,
            "durable subscription started"
        );
        Ok(Self { stop, loops })
    }

    /// Stops pulling; a handler call under way finishes (and is acknowledged) first.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        while self.loops.join_next().await.is_some() {}
    }
}

struct Shared<H> {
    js: jetstream::Context,
    config: DeliveryConfig,
    handler: H,
}

async fn partition_loop<H: Handler>(
    shared: Arc<Shared<H>>,
    partition: u32,
    consumer: Consumer<pull::Config>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures = 0usize;
    // One long-lived pull subscription per partition: a pull of one message waits at the
    // server, which hands the next message out only once this one is acknowledged.
    let mut messages: Option<pull::Stream> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        let next = match messages.as_mut() {
            Some(stream) => tokio::select! {
                _ = stopped.changed() => return,
                next = stream.next() => next.map(|n| n.map_err(|err| err.to_string())),
            },
            None => match consumer.stream().max_messages_per_batch(1).messages().await {
                Ok(stream) => {
                    messages = Some(stream);
                    continue;
                }
                Err(err) => Some(Err(err.to_string())),
            },
        };
        match next {
            Some(Ok(message)) => {
                failures = 0;
                handle_one(&shared, partition, message).await;
            }
            // The pull subscription ended (the connection went away): open a new one.
            None => messages = None,
            Some(Err(err)) => {
                messages = None;
                let pause = RETRY_PAUSES[failures.min(RETRY_PAUSES.len() - 1)];
                failures += 1;
                warn!(partition, error = %err, pause_ms = pause.as_millis() as u64, "pulling from the partition failed; pulling again");
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|h| h.get(name))
        .map(|value| value.as_str().to_string())
        .filter(|value| !value.is_empty())
}

async fn handle_one<H: Handler>(shared: &Shared<H>, partition: u32, message: jetstream::Message) {
    let config = &shared.config;
    let (attempt, sequence) = match message.info() {
        Ok(info) => (
            u64::try_from(info.delivered).unwrap_or(1).max(1),
            info.stream_sequence,
        ),
        Err(err) => {
            // Not a JetStream delivery: nothing to acknowledge, and nothing to hand over.
            error!(partition, error = %err, "a pulled message has no JetStream metadata; skipped");
            return;
        }
    };
    let subject = original_subject(&message.subject, partition).to_string();
    let max_deliver = u64::from(config.max_deliver);
    if attempt > max_deliver {
        // An attempt beyond the last one: the final attempt never reported back (the
        // provider stopped or lost NATS while the handler ran).
        let reason = format!(
            "{max_deliver} attempts made; the last did not finish (its provider stopped or lost \
             its NATS connection while the handler ran)"
        );
        dead_letter(
            shared,
            &message,
            partition,
            &subject,
            sequence,
            attempt - 1,
            &reason,
        )
        .await;
        return;
    }
    let delivery = Delivery {
        subject: subject.clone(),
        body: message.payload.clone(),
        reply_to: header(message.headers.as_ref(), REPLY_TO_HEADER),
        attempt,
        sequence,
        partition,
    };
    let outcome = run_in_progress(shared, &message, delivery).await;
    match outcome {
        Ok(()) => {
            debug!(partition, sequence, attempt, "handled; acknowledging");
            acknowledge(&message, AckKind::Ack, partition, sequence).await;
        }
        Err(reason) if attempt >= max_deliver => {
            dead_letter(
                shared, &message, partition, &subject, sequence, attempt, &reason,
            )
            .await;
        }
        Err(reason) => {
            let delay = config.backoff_after(attempt);
            warn!(partition, sequence, attempt, max_deliver, delay_ms = delay.as_millis() as u64, %reason, "handler failed; delivering again after the backoff");
            acknowledge(&message, AckKind::Nak(Some(delay)), partition, sequence).await;
        }
    }
}

/// Calls the handler, telling JetStream every third of the ack wait that the message is
/// still being handled, so a slow but live handler is never delivered to twice.
async fn run_in_progress<H: Handler>(
    shared: &Shared<H>,
    message: &jetstream::Message,
    delivery: Delivery,
) -> Result<(), String> {
    let config = &shared.config;
    let timeout = config.handler_timeout;
    let handling = tokio::time::timeout(timeout, shared.handler.handle(delivery));
    tokio::pin!(handling);
    let mut ticks = tokio::time::interval(config.ack_wait / 3);
    ticks.tick().await;
    loop {
        tokio::select! {
            outcome = &mut handling => {
                return outcome.unwrap_or_else(|_| Err(format!(
                    "the handler did not answer within {} ms", timeout.as_millis()
                )));
            }
            _ = ticks.tick() => {
                if let Err(err) = message.ack_with(AckKind::Progress).await {
                    warn!(error = %err, "telling JetStream the message is in progress failed");
                }
            }
        }
    }
}

/// Sends an ack or nak; the acknowledgement of a handled message is confirmed by the
/// server (double ack), so that a lost ack shows here rather than as a redelivery.
async fn acknowledge(message: &jetstream::Message, kind: AckKind, partition: u32, sequence: u64) {
    for (attempt, pause) in RETRY_PAUSES.iter().enumerate() {
        let sent = match kind {
            AckKind::Ack => message.double_ack().await,
            kind => message.ack_with(kind).await,
        };
        match sent {
            Ok(()) => return,
            Err(err) => {
                warn!(partition, sequence, attempt, error = %err, "acknowledging failed; trying again");
                tokio::time::sleep(*pause).await;
            }
        }
    }
    error!(
        partition,
        sequence,
        ?kind,
        "acknowledgement not confirmed; JetStream delivers the message again after the ack wait"
    );
}

/// A header value: one line, at most [`MAX_REASON_LEN`] bytes.
fn header_value(text: &str) -> String {
    let mut value: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if value.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// Stores the message on the dead-letter subject with the reason and the original bytes,
/// then terminates it. If the dead letter cannot be stored the message is delivered again
/// later instead: it is never let go unstored.
async fn dead_letter<H: Handler>(
    shared: &Shared<H>,
    message: &jetstream::Message,
    partition: u32,
    subject: &str,
    sequence: u64,
    attempts: u64,
    reason: &str,
) {
    let config = &shared.config;
    let mut headers = HeaderMap::new();
    headers.insert(DEAD_LETTER_REASON_HEADER, header_value(reason).as_str());
    headers.insert(DEAD_LETTER_SUBJECT_HEADER, subject);
    headers.insert(DEAD_LETTER_SEQUENCE_HEADER, sequence.to_string().as_str());
    headers.insert(DEAD_LETTER_ATTEMPTS_HEADER, attempts.to_string().as_str());
    // A dead letter written twice (a crash between store and terminate) is kept once.
    headers.insert(
        "Nats-Msg-Id",
        format!("{}-{}", layout::parts_stream(config), sequence).as_str(),
    );
    let stored = match shared
        .js
        .publish_with_headers(
            config.dead_letter_subject.clone(),
            headers,
            message.payload.clone(),
        )
        .await
    {
        Ok(ack) => ack.await.map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match stored {
        Ok(ack) => {
            warn!(
                subject,
                sequence,
                attempts,
                dead_letter_subject = %config.dead_letter_subject,
                dead_letter_sequence = ack.sequence,
                reason = %header_value(reason),
                "message dead-lettered after its last attempt"
            );
            acknowledge(message, AckKind::Term, partition, sequence).await;
        }
        Err(err) => {
            let delay = config.backoff_after(attempts);
            error!(subject, sequence, error = %err, "storing the dead letter failed; the message stays and comes back after the backoff");
            acknowledge(message, AckKind::Nak(Some(delay)), partition, sequence).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_value("a\r\nb"), "a  b");
        let long = "é".repeat(MAX_REASON_LEN);
        let value = header_value(&long);
        assert!(value.len() <= MAX_REASON_LEN);
        assert!(value.chars().all(|c| c == 'é'));
    }
}
