//! What to do with each reading, as plain data: the component only executes
//! it, in order.
//!
//! For each [`Outcome`](crate::Outcome) of a message, in message order:
//!
//! - [`Outcome::Rejected`](crate::Outcome::Rejected): publish [`reject`]'s message.
//! - [`Outcome::Reading`](crate::Outcome::Reading): ask the validator, then
//!   [`decide`]. A [`Decision::Reject`] is published. For a
//!   [`Decision::Store`], increment its `seen_key` by 1 on [`Target::Hot`]:
//!   on 1 execute its effects in order, on anything more it is a duplicate and
//!   nothing else happens. [`StorePlan::applied`] says which, for the [`Summary`](crate::Summary).
//!
//! Readings must be handled one after another: two readings with the same id in
//! one message are then a first delivery and a duplicate.
//!
//! # Marking first
//!
//! The seen mark is taken *before* the reading is stored. If ingest crashes, or
//! a store write fails, between the mark and the last effect, a redelivery is
//! taken for a duplicate and the rest of that reading is lost. Marking *after*
//! storing would instead count, sum and archive a reading twice when it is
//! redelivered after a crash in between, and a double count can't be told from
//! real data later, while a lost reading leaves a visible gap (a sequence number
//! without a reading, a count below the archive's). Marking first also makes two
//! concurrent deliveries of one reading safe: exactly one of them gets 1.
//!
//! Readings the validator rejects are not marked, so one that was not judged
//! (validator misconfigured or unavailable) can be republished later.
//!
//! # Effect order
//!
//! The archive comes first, as it is the record that can't be rebuilt; then
//! the latest reading before any count, so that a device whose count is
//! non-zero has a reading to show (the HTTP API relies on that order too);
//! min and max before the stats count, so a count is never ahead of them; the
//! device index after `latest`, so a listed device has data; the alert last, so
//! it never names a reading that was not stored.

use telemetry_domain::DeviceId;

use crate::alert::{AlertMessage, AlertVerdict};
use std::borrow::Cow;

use crate::keys::{
    device_count_key, device_index_key, latest_key, metrics_bucket, reading_key, seen_key, seq_key,
    StatsKeys, ARCHIVE_LINK, BUCKET, DEVICES_BUCKET, HOT_LINK, INDEX_MARKER,
};
use crate::lock::TicketLock;
use crate::message::{IngestReading, ParsedReading, Rejected};
use crate::reason::{RejectReason, ValidatorRejection};
use crate::rejected::RejectedMessage;
use crate::subject::alert_subject;
use crate::summary::Applied;

/// A link and bucket that effects write to and the API reads from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// [`BUCKET`] on the [`HOT_LINK`].
    Hot,
    /// [`DEVICES_BUCKET`] on the [`HOT_LINK`].
    DeviceIndex,
    /// The device's metric index, [`metrics_bucket`], on the [`HOT_LINK`].
    MetricIndex(DeviceId),
    /// [`BUCKET`] on the [`ARCHIVE_LINK`].
    Archive,
}

impl Target {
    /// The link name to select before calling `wasi:keyvalue`.
    pub fn link(&self) -> &'static str {
        match self {
            Self::Hot | Self::DeviceIndex | Self::MetricIndex(_) => HOT_LINK,
            Self::Archive => ARCHIVE_LINK,
        }
    }

    /// The bucket identifier to `open`.
    pub fn bucket(&self) -> Cow<'static, str> {
        match self {
            Self::Hot | Self::Archive => Cow::Borrowed(BUCKET),
            Self::DeviceIndex => Cow::Borrowed(DEVICES_BUCKET),
            Self::MetricIndex(device) => Cow::Owned(metrics_bucket(device)),
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub subject: String,
    pub body: Vec<u8>,
}

/// The validator's verdict on one reading (the WIT `verdict`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Store the reading; `Some` when it also raises an alert.
    Accepted(Option<AlertVerdict>),
    Rejected {
        kind: ValidatorRejection,
        /// The validator's reason, passed on unchanged.
        reason: String,
    },
}

/// What to do with a parsed reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Publish ([`RejectedMessage::publish`]) on [`REJECTED_SUBJECT`](crate::REJECTED_SUBJECT); nothing
    /// is stored or marked.
    Reject(RejectedMessage),
    Store(StorePlan),
}

/// How to store a reading that the validator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct StorePlan {
    /// Increment by 1 on [`Target::Hot`] first; see [`StorePlan::is_first_delivery`].
    pub seen_key: String,
    /// To execute in order, and only on the first delivery.
    pub effects: Vec<Effect>,
    /// Whether `effects` end by publishing an alert.
    pub alerts: bool,
}

impl StorePlan {
    /// Whether the value the seen increment returned means this is the
    /// reading's first delivery, so the effects must run.
    pub fn is_first_delivery(seen: u64) -> bool {
        seen == 1
    }

    /// What this plan did, given the value the seen increment returned.
    pub fn applied(&self, seen: u64) -> Applied {
        if Self::is_first_delivery(seen) {
            Applied::Stored {
                alerted: self.alerts,
            }
        } else {
            Applied::Duplicate
        }
    }
}

/// One step of storing a reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Atomically add `delta` to the counter at `key`.
    Increment {
        target: Target,
        key: String,
        delta: u64,
    },
    Set {
        target: Target,
        key: String,
        value: Vec<u8>,
    },
    /// Take the device's next sequence number `n` by incrementing `seq_key` by
    /// 1, then set [`Append::key`]`(n)` to `value`.
    Append(Append),
    /// Under `lock` ([`crate::lock`]: take a ticket, wait for the turn), read
    /// `min` and `max`, write back what [`Extreme::update`] returns for each,
    /// then release the lock, also when an update failed.
    Extremes {
        target: Target,
        lock: TicketLock,
        min: String,
        max: String,
        value: f64,
    },
    Publish(Publish),
}

/// Appending a reading to a device's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub target: Target,
    pub seq_key: String,
    pub device: DeviceId,
    pub value: Vec<u8>,
}

impl Append {
    /// The key of the reading with sequence number `seq`.
    pub fn key(&self, seq: u64) -> String {
        reading_key(&self.device, seq)
    }
}

/// The message announcing a reading or whole message that parsing refused.
pub fn reject(subject: &str, rejected: &Rejected) -> RejectedMessage {
    RejectedMessage::from_rejected(subject, rejected)
}

/// Decides what to do with a parsed reading that arrived on `subject`, given
/// the validator's verdict. When the validator could not be called at all, pass
/// a [`Verdict::Rejected`] of kind [`ValidatorRejection::Unavailable`].
pub fn decide(subject: &str, parsed: &ParsedReading, verdict: Verdict) -> Decision {
    match verdict {
        Verdict::Rejected { kind, reason } => {
            let reason = RejectReason::Validator { kind, reason };
            Decision::Reject(RejectedMessage::new(
                subject,
                parsed.index,
                &reason,
                &parsed.original,
            ))
        }
        Verdict::Accepted(alert) => Decision::Store(store_plan(&parsed.reading, alert.as_ref())),
    }
}

fn store_plan(reading: &IngestReading, alert: Option<&AlertVerdict>) -> StorePlan {
    let device = reading.device();
    let json = reading.to_json();
    let stats = StatsKeys::new(device, reading.metric());
    let micros = reading.micros();

    let mut effects = vec![
        Effect::Append(Append {
            target: Target::Archive,
            seq_key: seq_key(device),
            device: device.clone(),
            value: json.clone(),
        }),
        Effect::Set {
            target: Target::Hot,
            key: latest_key(device, reading.metric()),
            value: json,
        },
        Effect::Extremes {
            target: Target::Hot,
            lock: stats.lock.clone(),
            min: stats.min.clone(),
            max: stats.max.clone(),
            value: reading.value(),
        },
    ];
    // Adding zero would only cost a round trip.
    if micros.magnitude() > 0 {
        effects.push(Effect::Increment {
            target: Target::Hot,
            key: stats.sum_key(micros).to_owned(),
            delta: micros.magnitude(),
        });
    }
    effects.extend([
        Effect::Increment {
            target: Target::Hot,
            key: stats.count,
            delta: 1,
        },
        Effect::Increment {
            target: Target::Hot,
            key: device_count_key(device),
            delta: 1,
        },
        // Written every time rather than on the device's first reading: a
        // crash right after the first count would otherwise leave the device
        // out of the index for good.
        Effect::Set {
            target: Target::MetricIndex(device.clone()),
            key: reading.metric().to_string(),
            value: INDEX_MARKER.to_vec(),
        },
        Effect::Set {
            target: Target::DeviceIndex,
            key: device_index_key(device),
            value: INDEX_MARKER.to_vec(),
        },
    ]);
    if let Some(alert) = alert {
        effects.push(Effect::Publish(Publish {
            subject: alert_subject(device),
            body: AlertMessage::new(reading, alert).to_bytes(),
        }));
    }

    StorePlan {
        seen_key: seen_key(device, reading.id()),
        effects,
        alerts: alert.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use telemetry_domain::MetricName;

    use super::*;
    use crate::alert::Side;
    use crate::keys::history_keys;
    use crate::stats::{decode_extreme, StatsView};
    use crate::test_support::Executor;
    use crate::{parse_message, Outcome};

    const SUBJECT: &str = "neongrid.readings.thermo-17";

    fn reading(id: &str, value: &str) -> String {
        format!(
            r#"{{"id":"{id}","device":"thermo-17","metric":"temperature_c","value":{value},"ts":"2026-11-20T10:00:00Z"}}"#
        )
    }

    /// Like the validator with `valid=-40..85;alert=-10..45`.
    fn validate(reading: &IngestReading) -> Verdict {
        let value = reading.value();
        if !(-40.0..=85.0).contains(&value) {
            return Verdict::Rejected {
                kind: ValidatorRejection::OutOfRange,
                reason: format!("value {value} is outside -40..85"),
            };
        }
        let alert = |side, bound| {
            Some(AlertVerdict {
                side,
                bound,
                message: format!("value {value} is outside -10..45"),
            })
        };
        Verdict::Accepted(match value {
            v if v < -10.0 => alert(Side::Low, -10.0),
            v if v > 45.0 => alert(Side::High, 45.0),
            _ => None,
        })
    }

    fn device() -> DeviceId {
        DeviceId::parse("thermo-17").unwrap()
    }

    fn metric() -> MetricName {
        MetricName::parse("temperature_c").unwrap()
    }

    #[test]
    fn targets_name_their_link_and_bucket() {
        assert_eq!(
            (Target::Hot.link(), &*Target::Hot.bucket()),
            ("hot", "neongrid")
        );
        assert_eq!(
            (Target::DeviceIndex.link(), &*Target::DeviceIndex.bucket()),
            ("hot", "neongrid-devices")
        );
        assert_eq!(
            (Target::Archive.link(), &*Target::Archive.bucket()),
            ("archive", "neongrid")
        );
        let metrics = Target::MetricIndex(device());
        assert_eq!(
            (metrics.link(), &*metrics.bucket()),
            ("hot", "neongrid-metrics/thermo-17")
        );
    }

    #[test]
    fn a_stored_reading_plans_the_documented_effects_in_order() {
        let payload = reading("r-1", "50");
        let Outcome::Reading(parsed) = &parse_message(SUBJECT, payload.as_bytes())[0] else {
            panic!("rejected");
        };
        let Decision::Store(plan) = decide(SUBJECT, parsed, validate(&parsed.reading)) else {
            panic!("not stored");
        };
        assert_eq!(plan.seen_key, "seen/thermo-17/r-1");
        assert!(plan.alerts);
        let described: Vec<String> = plan
            .effects
            .iter()
            .map(|effect| match effect {
                Effect::Increment { target, key, delta } => {
                    format!("{target:?} increment {key} {delta}")
                }
                Effect::Set { target, key, .. } => format!("{target:?} set {key}"),
                Effect::Append(append) => {
                    format!(
                        "{:?} append {} {}",
                        append.target,
                        append.seq_key,
                        append.key(7)
                    )
                }
                Effect::Extremes {
                    target,
                    lock,
                    min,
                    max,
                    value,
                } => format!(
                    "{target:?} under {} min/max {min} {max} {value}",
                    lock.ticket
                ),
                Effect::Publish(publish) => format!("publish {}", publish.subject),
            })
            .collect();
        assert_eq!(
            described,
            [
                "Archive append device/thermo-17/seq device/thermo-17/reading/00000000000000000007",
                "Hot set device/thermo-17/latest/temperature_c",
                "Hot under device/thermo-17/stats/temperature_c/lock/ticket min/max device/thermo-17/stats/temperature_c/min device/thermo-17/stats/temperature_c/max 50",
                "Hot increment device/thermo-17/stats/temperature_c/sum_pos 50000000",
                "Hot increment device/thermo-17/stats/temperature_c/count 1",
                "Hot increment device/thermo-17/count 1",
                "MetricIndex(DeviceId(\"thermo-17\")) set temperature_c",
                "DeviceIndex set thermo-17",
                "publish neongrid.alerts.thermo-17",
            ]
        );
    }

    #[test]
    fn zero_adds_to_no_sum() {
        let payload = reading("z", "0");
        let Outcome::Reading(parsed) = &parse_message(SUBJECT, payload.as_bytes())[0] else {
            panic!("rejected");
        };
        let Decision::Store(plan) = decide(SUBJECT, parsed, Verdict::Accepted(None)) else {
            panic!("not stored");
        };
        assert!(!plan.alerts);
        assert!(!plan.effects.iter().any(|effect| matches!(
            effect,
            Effect::Increment { key, .. } if key.contains("sum_")
        )));
        assert!(!plan
            .effects
            .iter()
            .any(|effect| matches!(effect, Effect::Publish(_))));
    }

    #[test]
    fn a_message_end_to_end_stores_counts_archives_and_alerts() {
        let mut executor = Executor::default();
        let payload = format!(
            "[{},{},{},{},{}]",
            reading("a", "21.5"),
            reading("b", "-12.25"),
            reading("c", "90"),
            reading("a", "21.5"),
            r#"{"id":"d"}"#,
        );
        let summary = executor.handle(SUBJECT, payload.as_bytes(), validate);
        assert_eq!(summary.counts(), (2, 2, 1, 1));
        let codes: Vec<_> = summary
            .rejections
            .iter()
            .map(|note| (note.index, note.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [(Some(2), "out_of_range"), (Some(4), "missing_field")]
        );

        let d = device();
        let stats = StatsKeys::new(&d, &metric());
        let view = StatsView::from_counters(
            executor.counter(&stats.count),
            executor.counter(&stats.sum_pos),
            executor.counter(&stats.sum_neg),
            executor
                .get(&Target::Hot, &stats.min)
                .map(|b| decode_extreme(b).unwrap()),
            executor
                .get(&Target::Hot, &stats.max)
                .map(|b| decode_extreme(b).unwrap()),
        )
        .unwrap();
        assert_eq!(
            view,
            StatsView {
                count: 2,
                min: Some(-12.25),
                max: Some(21.5),
                sum: 9.25,
                mean: 4.625
            }
        );
        assert_eq!(executor.counter(&device_count_key(&d)), 2);
        assert_eq!(
            executor.get(&Target::DeviceIndex, "thermo-17"),
            Some(&b"1".to_vec())
        );

        // History: one batch-get of the keys, newest first.
        let last_seq: u64 =
            std::str::from_utf8(executor.get(&Target::Archive, &seq_key(&d)).unwrap())
                .unwrap()
                .parse()
                .unwrap();
        let history: Vec<IngestReading> = history_keys(&d, last_seq, 10)
            .iter()
            .map(|key| {
                serde_json::from_slice(executor.get(&Target::Archive, key).unwrap()).unwrap()
            })
            .collect();
        let ids: Vec<&str> = history.iter().map(|r| r.id().as_str()).collect();
        assert_eq!(ids, ["b", "a"]);

        let latest: IngestReading = serde_json::from_slice(
            executor
                .get(&Target::Hot, &latest_key(&d, &metric()))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(latest.id().as_str(), "b");

        // Published: the alert for b, the validator's rejection of c, the parse rejection of d.
        let subjects: Vec<&str> = executor
            .published
            .iter()
            .map(|p| p.subject.as_str())
            .collect();
        assert_eq!(
            subjects,
            [
                "neongrid.alerts.thermo-17",
                "neongrid.rejected",
                "neongrid.rejected"
            ]
        );
        let alert: serde_json::Value = serde_json::from_slice(&executor.published[0].body).unwrap();
        assert_eq!(alert["reading_id"], "b");
        assert_eq!(alert["side"], "low");
        let out_of_range: RejectedMessage =
            serde_json::from_slice(&executor.published[1].body).unwrap();
        assert_eq!(out_of_range.index, Some(2));
        assert_eq!(out_of_range.code, "out_of_range");
        assert_eq!(
            out_of_range.original_bytes().unwrap(),
            reading("c", "90").as_bytes()
        );
        let missing: RejectedMessage = serde_json::from_slice(&executor.published[2].body).unwrap();
        assert_eq!(missing.index, Some(4));
        assert_eq!(missing.code, "missing_field");

        // Redelivery of the whole message: everything valid is a duplicate now.
        let again = executor.handle(SUBJECT, payload.as_bytes(), validate);
        assert_eq!(again.counts(), (0, 2, 3, 0));
        assert_eq!(executor.counter(&device_count_key(&d)), 2);
    }

    #[test]
    fn unjudged_readings_are_retryable_and_not_marked_seen() {
        let mut executor = Executor::default();
        let payload = reading("r", "20");
        let unavailable = |_: &IngestReading| Verdict::Rejected {
            kind: ValidatorRejection::Unavailable,
            reason: "no link to the validator".into(),
        };
        let summary = executor.handle(SUBJECT, payload.as_bytes(), unavailable);
        assert_eq!(summary.rejected, 1);
        let rejection: RejectedMessage =
            serde_json::from_slice(&executor.published[0].body).unwrap();
        assert!(rejection.retryable);
        assert_eq!(rejection.code, "validator_unavailable");
        assert_eq!(rejection.index, None);
        assert_eq!(rejection.original_bytes().unwrap(), payload.as_bytes());

        // Replayed from the rejection once the validator is back: stored.
        let replay = rejection.original_bytes().unwrap();
        let summary = executor.handle(&rejection.subject, &replay, validate);
        assert_eq!(summary.accepted, 1);
    }

    #[test]
    fn a_whole_message_rejection_is_published_once() {
        let mut executor = Executor::default();
        let summary = executor.handle(SUBJECT, b"not json", validate);
        assert_eq!(summary.rejected, 1);
        assert_eq!(summary.total(), 1);
        let rejection: RejectedMessage =
            serde_json::from_slice(&executor.published[0].body).unwrap();
        assert_eq!(rejection.code, "not_json");
        assert_eq!(rejection.subject, SUBJECT);
        assert_eq!(rejection.original_bytes().unwrap(), b"not json");
    }
}
