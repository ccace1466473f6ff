//! The streams and consumers one [`DeliveryConfig`] needs, created or checked idempotently.
//!
//! Three streams:
//! - `<stream>` captures the configured subjects: a publish is acknowledged once stored
//!   here (the device's durable receipt), and `Nats-Msg-Id` deduplicates within the
//!   dedup window. Kept for `max_age`.
//! - `<stream>_PARTS` sources `<stream>` through subject transforms that file each
//!   message under `part.<p>.<original subject>`, where the NATS server hashes the key
//!   token into one of `partitions`. Work-queue retention: a message leaves once acked.
//! - `<stream>_DEAD` captures the dead-letter subject, so that a dead letter is stored
//!   before its original is let go.
//!
//! Partition `p` has one durable pull consumer, `<consumer>-<p>`, that every provider
//! instance on every host pulls from. `max_ack_pending = 1` makes the server hand out one
//! message of the partition at a time, in stream order, whoever pulls.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{Context, GetStreamErrorKind};
use async_nats::jetstream::stream::{self, RetentionPolicy, Source, StorageType, SubjectTransform};
use async_nats::jetstream::ErrorCode;
use tracing::info;

use crate::config::{DeliveryConfig, Storage};
use crate::error::Error;
use crate::subject::partition_filter;

/// How long dead letters are kept.
pub const DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// The partitioned stream's name.
pub fn parts_stream(config: &DeliveryConfig) -> String {
    format!("{}_PARTS", config.stream)
}

/// The dead-letter stream's name.
pub fn dead_letter_stream(config: &DeliveryConfig) -> String {
    format!("{}_DEAD", config.stream)
}

/// Partition `p`'s durable consumer.
pub fn consumer_name(config: &DeliveryConfig, partition: u32) -> String {
    format!("{}-{partition}", config.consumer)
}

fn storage(config: &DeliveryConfig) -> StorageType {
    match config.storage {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

pub(crate) fn ingress_definition(config: &DeliveryConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: config.subjects.iter().map(ToString::to_string).collect(),
        retention: RetentionPolicy::Limits,
        storage: storage(config),
        num_replicas: config.replicas.unwrap_or(1),
        duplicate_window: config.dedup_window,
        max_age: config.max_age,
        ..Default::default()
    }
}

pub(crate) fn parts_definition(config: &DeliveryConfig) -> stream::Config {
    let subject_transforms = config
        .subjects
        .iter()
        .flat_map(|pattern| pattern.partition_transforms(config.partitions))
        .map(|(source, destination)| SubjectTransform {
            source,
            destination,
        })
        .collect();
    stream::Config {
        name: parts_stream(config),
        retention: RetentionPolicy::WorkQueue,
        storage: storage(config),
        num_replicas: config.replicas.unwrap_or(1),
        sources: Some(vec![Source {
            name: config.stream.clone(),
            subject_transforms,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

pub(crate) fn dead_letter_definition(config: &DeliveryConfig) -> stream::Config {
    stream::Config {
        name: dead_letter_stream(config),
        subjects: vec![config.dead_letter_subject.clone()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: config.replicas.unwrap_or(1),
        max_age: DEAD_LETTER_MAX_AGE,
        ..Default::default()
    }
}

pub(crate) fn consumer_definition(config: &DeliveryConfig, partition: u32) -> pull::Config {
    pull::Config {
        durable_name: Some(consumer_name(config, partition)),
        filter_subject: partition_filter(partition),
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        // The provider counts attempts itself and dead-letters after the last one, so
        // that an attempt cut short by a crash is still followed by a decision.
        max_deliver: -1,
        max_ack_pending: 1,
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    }
}

/// Compares what decides where messages go; the rest may be updated in place.
fn check_stream(existing: &stream::Config, wanted: &stream::Config) -> Result<bool, Error> {
    let name = wanted.name.clone();
    let conflict = |field: &'static str, was: String, asked: String| Error::Conflict {
        what: "stream",
        name: name.clone(),
        field,
        existing: was,
        wanted: asked,
    };
    let mut subjects_existing = existing.subjects.clone();
    let mut subjects_wanted = wanted.subjects.clone();
    subjects_existing.sort();
    subjects_wanted.sort();
    if subjects_existing != subjects_wanted {
        return Err(conflict(
            "subjects",
            format!("{subjects_existing:?}"),
            format!("{subjects_wanted:?}"),
        ));
    }
    let layout = |config: &stream::Config| {
        config
            .sources
            .iter()
            .flatten()
            .map(|source| {
                let transforms: Vec<String> = source
                    .subject_transforms
                    .iter()
                    .map(|t| format!("{} -> {}", t.source, t.destination))
                    .collect();
                format!("{} [{}]", source.name, transforms.join(", "))
            })
            .collect::<Vec<_>>()
    };
    if layout(existing) != layout(wanted) {
        return Err(conflict(
            "partition layout (sources)",
            format!("{:?}", layout(existing)),
            format!("{:?}", layout(wanted)),
        ));
    }
    if existing.retention != wanted.retention {
        return Err(conflict(
            "retention",
            format!("{:?}", existing.retention),
            format!("{:?}", wanted.retention),
        ));
    }
    if existing.storage != wanted.storage {
        return Err(conflict(
            "storage",
            format!("{:?}", existing.storage),
            format!("{:?}", wanted.storage),
        ));
    }
    Ok(existing.num_replicas != wanted.num_replicas
        || existing.duplicate_window != wanted.duplicate_window
        || existing.max_age != wanted.max_age)
}

async fn ensure_stream(
    js: &Context,
    mut wanted: stream::Config,
    replicas: Option<usize>,
) -> Result<stream::Stream, Error> {
    let name = wanted.name.clone();
    match js.get_stream(&name).await {
        Ok(existing) => {
            if replicas.is_none() {
                wanted.num_replicas = existing.cached_info().config.num_replicas;
            }
            if check_stream(&existing.cached_info().config, &wanted)? {
                info!(stream = %name, "updating the stream's replicas, dedup window or age limit");
                js.update_stream(&wanted)
                    .await
                    .map_err(|err| Error::jetstream(format!("updating stream {name:?}"), err))?;
                return js
                    .get_stream(&name)
                    .await
                    .map_err(|err| Error::jetstream(format!("reading stream {name:?}"), err));
            }
            Ok(existing)
        }
        Err(err)
            if matches!(err.kind(), GetStreamErrorKind::JetStream(ref js_err)
                if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            info!(stream = %name, "creating the stream");
            js.create_stream(wanted)
                .await
                .map_err(|err| Error::jetstream(format!("creating stream {name:?}"), err))
        }
        Err(err) => Err(Error::jetstream(format!("reading stream {name:?}"), err)),
    }
}

/// The partitioned stream, ready for its consumers.
pub(crate) struct Layout {
    pub parts: stream::Stream,
}

/// Creates the three streams and every partition's consumer, or checks that the existing
/// ones match. Safe to run from every provider instance at once.
pub(crate) async fn ensure(js: &Context, config: &DeliveryConfig) -> Result<Layout, Error> {
    ensure_stream(js, ingress_definition(config), config.replicas).await?;
    ensure_stream(js, dead_letter_definition(config), config.replicas).await?;
    let parts = ensure_stream(js, parts_definition(config), config.replicas).await?;
    for partition in 0..config.partitions {
        let wanted = consumer_definition(config, partition);
        let name = consumer_name(config, partition);
        match parts.consumer_info(&name).await {
            Ok(existing) => {
                let existing = &existing.config;
                let conflict =
                    |field: &'static str, existing: String, wanted: String| Error::Conflict {
                        what: "consumer",
                        name: name.clone(),
                        field,
                        existing,
                        wanted,
                    };
                if existing.filter_subject != wanted.filter_subject {
                    return Err(conflict(
                        "filter subject",
                        existing.filter_subject.clone(),
                        wanted.filter_subject.clone(),
                    ));
                }
                if existing.max_ack_pending != wanted.max_ack_pending
                    || existing.ack_policy != wanted.ack_policy
                    || existing.max_deliver != wanted.max_deliver
                {
                    return Err(conflict(
                        "delivery rules (ack policy, max ack pending, max deliver)",
                        format!(
                            "{:?}, {}, {}",
                            existing.ack_policy, existing.max_ack_pending, existing.max_deliver
                        ),
                        format!(
                            "{:?}, {}, {}",
                            wanted.ack_policy, wanted.max_ack_pending, wanted.max_deliver
                        ),
                    ));
                }
                if existing.ack_wait != wanted.ack_wait {
                    parts.update_consumer(wanted).await.map_err(|err| {
                        Error::jetstream(format!("updating consumer {name:?}"), err)
                    })?;
                }
            }
            Err(_) => {
                // Another instance may create it at the same moment; creating an identical
                // consumer twice is accepted by the server.
                parts
                    .create_consumer(wanted)
                    .await
                    .map_err(|err| Error::jetstream(format!("creating consumer {name:?}"), err))?;
            }
        }
    }
    Ok(Layout { parts })
}
