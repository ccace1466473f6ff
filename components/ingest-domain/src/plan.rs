//! What to do with each reading, as plain data and pure functions; [`crate::execute`]
//! runs them against a [`Store`](crate::execute::Store).
//!
//! For each [`Outcome`](crate::Outcome) of a message, in message order:
//!
//! - [`Outcome::Rejected`](crate::Outcome::Rejected): publish [`reject`]'s message.
//! - [`Outcome::Reading`](crate::Outcome::Reading): ask the validator, then
//!   [`decide`]. A [`Decision::Reject`] is published; a [`Decision::Store`] is
//!   stored by [`crate::execute::store`].
//!
//! Readings must be handled one after another: two readings with the same id in
//! one message are then a first delivery and a duplicate.
//!
//! # Exactly once without compare-and-swap
//!
//! Senders are at-least-once: they send a reading again, same id, until it is
//! answered, and ingest may die at any point between two key-value calls. Every
//! reading must still be stored exactly once. `wasi:keyvalue` 0.2.0-draft offers
//! get, set, atomic increment and batches, no compare-and-swap; our providers
//! apply one `set-many` on one link atomically, but nothing spans both links.
//!
//! Earlier versions marked a reading seen (an increment) before storing it with
//! a dozen separate writes: a crash in between lost the rest of the reading,
//! as the resend was answered as a duplicate. Marking after storing would count
//! it twice instead. The way out is to make the mark and everything countable
//! *one* write, and to make everything before it repeatable:
//!
//! 1. Take the device lock ([`crate::lock`]): from here on, nobody else writes
//!    this device's state, so reading it and writing it back is safe.
//! 2. One `get-many` on the hot link ([`StorePlan::read_keys`]): the lock's
//!    `serving` (the first fence), the done mark, the device count and the
//!    metric's stats. A done mark means a duplicate (step 6).
//! 3. Compute the new state ([`StorePlan::next`], pure): the reading's
//!    sequence number is the device count + 1, and count, sum, min and max take
//!    the value in.
//! 4. One `set-many` on the archive: the reading under its sequence number, and
//!    the device's `seq`. Repeatable: until step 5 lands, the device count does
//!    not move, so a redo after a crash computes the same number and writes the
//!    same bytes (a different reading of the device coming first takes the
//!    number instead, overwriting a reading that was never counted).
//! 5. Read `serving` again (the second fence), then one `set-many` on the hot
//!    link: device count, latest reading, the metric's stats and the done mark
//!    holding the sequence number. **This is the commit**: before it nothing
//!    counts, after it the reading is stored, and it is atomic.
//! 6. Release the lock, then write the two index markers and publish the alert.
//!    A duplicate writes the markers too, which repairs a crash right after a
//!    commit; neither marker is needed to count a reading. An alert is
//!    published once, after the commit: if ingest dies between the commit and
//!    the publish, that alert is lost (the resend is a duplicate, and a
//!    duplicate does not alert, or every resend would).
//!
//! Every failure before the commit leaves nothing counted, so it is answered as
//! a retryable refusal and the resend stores the reading; a failure after it
//! (index markers) is logged and repaired by the next reading or resend.
//!
//! The fences and the lease of [`crate::lock`] keep a holder whose lock was
//! broken as stale from committing over the newer holder's state.
//!
//! # What readers see
//!
//! The device count, latest readings and stats change together, in one write,
//! so a reader never sees a count without its reading, or a sum without its
//! count. The archive's `seq` can be one ahead of the device count between
//! steps 4 and 5, and stays so when the sender gives up on a reading whose
//! ingest died there: the history then shows a reading that is not counted,
//! until the device's next reading takes (and overwrites) its number. A device
//! enters the device index after its first commit.

use std::borrow::Cow;

use telemetry_domain::DeviceId;

use crate::alert::{AlertMessage, AlertVerdict};
use crate::keys::{
    device_count_key, device_index_key, device_lock, latest_key, metrics_bucket, reading_key,
    seen_key, seq_key, StatsKeys, ARCHIVE_LINK, BUCKET, DEVICES_BUCKET, HOT_LINK, INDEX_MARKER,
};
use crate::lock::TicketLock;
use crate::message::{IngestReading, ParsedReading, Rejected};
use crate::reason::{RejectReason, ValidatorRejection};
use crate::rejected::RejectedMessage;
use crate::stats::{
    decode_count, encode_count, CorruptValue, MetricStats, StatsOverflow, Unreadable,
};
use crate::subject::alert_subject;

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
    /// Boxed: a plan holds every key of the reading.
    Store(Box<StorePlan>),
}

/// A write after the commit, or a message to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Set {
        target: Target,
        key: String,
        value: Vec<u8>,
    },
    Publish(Publish),
}

/// How to store a reading that the validator accepted; see the module docs
/// for the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StorePlan {
    /// The device lock, on [`Target::Hot`].
    pub lock: TicketLock,
    /// `seen/<device>/<id>`: the done mark.
    pub seen_key: String,
    pub count_key: String,
    pub latest_key: String,
    pub stats: StatsKeys,
    /// The archive's `device/<id>/seq`.
    pub seq_key: String,
    pub device: DeviceId,
    /// The reading's JSON, as archived and as the latest.
    pub json: Vec<u8>,
    reading: IngestReading,
    /// The index markers, written after a commit and after a duplicate.
    pub indexes: Vec<Effect>,
    /// Published after a commit only.
    pub alert: Option<Publish>,
}

/// The state [`StorePlan::read_keys`] read, decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// The lock's `serving` at the time of the read.
    pub serving: u64,
    /// The done mark: the sequence number the reading was stored under.
    pub done: Option<u64>,
    pub device_count: u64,
    pub stats: MetricStats,
}

/// What the state says to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Stored already, under this sequence number (0 if an earlier version
    /// marked it).
    Duplicate {
        seq: u64,
    },
    Commit(Commit),
}

/// The two writes that store a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub seq: u64,
    /// For one `set-many` on [`Target::Archive`]: repeatable.
    pub archive: Vec<(String, Vec<u8>)>,
    /// For one `set-many` on [`Target::Hot`]: the commit point.
    pub hot: Vec<(String, Vec<u8>)>,
}

/// Why the stored state can't take the reading; retrying won't help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("the statistics can't take the reading: {0}")]
    Overflow(#[from] StatsOverflow),
    #[error("the store answered {got} values for {expected} keys")]
    ShortAnswer { expected: usize, got: usize },
}

/// Keys [`StorePlan::read_keys`] puts before the metric's stats keys.
const READ_HEAD: usize = 3;

impl StorePlan {
    /// The keys of the one `get-many` on [`Target::Hot`] under the lock:
    /// `serving`, the done mark, the device count, then
    /// [`StatsKeys::read_keys`].
    pub fn read_keys(&self) -> Vec<String> {
        let mut keys = vec![
            self.lock.serving.clone(),
            self.seen_key.clone(),
            self.count_key.clone(),
        ];
        keys.extend(self.stats.read_keys());
        keys
    }

    /// Decodes the values of [`StorePlan::read_keys`], in order. An unreadable
    /// min or max is taken for missing and rewritten; anything else unreadable
    /// fails the reading.
    pub fn decode(&self, values: &[Option<Vec<u8>>]) -> Result<Snapshot, StateError> {
        let expected = READ_HEAD + 6;
        if values.len() != expected {
            return Err(StateError::ShortAnswer {
                expected,
                got: values.len(),
            });
        }
        let value = |i: usize| values[i].as_deref();
        // A done mark of an earlier version holds a delivery count, not a
        // sequence number; it still means stored.
        let done = value(1).map(|bytes| decode_count(&self.seen_key, Some(bytes)).unwrap_or(0));
        Ok(Snapshot {
            serving: decode_count(&self.lock.serving, value(0))?,
            done,
            device_count: decode_count(&self.count_key, value(2))?,
            stats: MetricStats::decode(&self.stats, &values[READ_HEAD..], Unreadable::Replace)?,
        })
    }

    /// What to write, given the state read under the lock. Pure: the same
    /// state gives the same writes, byte for byte, which is what makes a redo
    /// after a crash before the commit safe.
    pub fn next(&self, state: &Snapshot) -> Result<Next, StateError> {
        if let Some(seq) = state.done {
            return Ok(Next::Duplicate { seq });
        }
        let seq = state
            .device_count
            .checked_add(1)
            .ok_or(StatsOverflow::Count)?;
        let stats = state
            .stats
            .with(self.reading.value(), self.reading.micros())?;
        let seq_bytes = encode_count(seq);
        let archive = vec![
            (reading_key(&self.device, seq), self.json.clone()),
            (self.seq_key.clone(), seq_bytes.clone()),
        ];
        let mut hot = vec![
            (self.count_key.clone(), seq_bytes.clone()),
            (self.latest_key.clone(), self.json.clone()),
        ];
        hot.extend(stats.entries(&self.stats));
        // Last in the list for the reader's eye only: the write is atomic.
        hot.push((self.seen_key.clone(), seq_bytes));
        Ok(Next::Commit(Commit { seq, archive, hot }))
    }

    /// Whether storing the reading publishes an alert.
    pub fn alerts(&self) -> bool {
        self.alert.is_some()
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
        Verdict::Accepted(alert) => {
            Decision::Store(Box::new(store_plan(&parsed.reading, alert.as_ref())))
        }
    }
}

fn store_plan(reading: &IngestReading, alert: Option<&AlertVerdict>) -> StorePlan {
    let device = reading.device();
    StorePlan {
        lock: device_lock(device),
        seen_key: seen_key(device, reading.id()),
        count_key: device_count_key(device),
        latest_key: latest_key(device, reading.metric()),
        stats: StatsKeys::new(device, reading.metric()),
        seq_key: seq_key(device),
        device: device.clone(),
        json: reading.to_json(),
        reading: reading.clone(),
        indexes: vec![
            // The metric before the device, so that a listed device has metrics.
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
        ],
        alert: alert.map(|alert| Publish {
            subject: alert_subject(device),
            body: AlertMessage::new(reading, alert).to_bytes(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use telemetry_domain::MetricName;

    use super::*;
    use crate::alert::Side;
    use crate::keys::history_keys;
    use crate::lock::STALE_AFTER;
    use crate::stats::StatsView;
    use crate::summary::Summary;
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

    fn stats_of(executor: &Executor) -> MetricStats {
        let keys = StatsKeys::new(&device(), &metric());
        let values: Vec<_> = keys
            .read_keys()
            .iter()
            .map(|key| executor.get(&Target::Hot, key).cloned())
            .collect();
        MetricStats::decode(&keys, &values, Unreadable::Fail).unwrap()
    }

    /// The device's archived readings, `(seq, id)`, newest first, as the API reads them.
    fn archived(executor: &Executor) -> Vec<(u64, String)> {
        let d = device();
        let last_seq = executor
            .text(&Target::Archive, &seq_key(&d))
            .map_or(0, |text| text.parse().unwrap());
        history_keys(&d, last_seq, 100)
            .iter()
            .zip((1..=last_seq).rev())
            .filter_map(|(key, seq)| {
                let bytes = executor.get(&Target::Archive, key)?;
                let reading: IngestReading = serde_json::from_slice(bytes).unwrap();
                Some((seq, reading.id().to_string()))
            })
            .collect()
    }

    fn ingest(executor: &mut Executor, payload: &str) -> Summary {
        executor.handle(SUBJECT, payload.as_bytes(), validate)
    }

    /// The calls of one fresh reading, `r-1` of thermo-17's temperature_c.
    const FRESH_CALLS: [&str; 9] = [
        "increment hot device/thermo-17/lock/ticket +1",
        "increment hot device/thermo-17/lock/serving +0",
        "get-many hot device/thermo-17/lock/serving seen/thermo-17/r-1 device/thermo-17/count \
         device/thermo-17/stats/temperature_c/count device/thermo-17/stats/temperature_c/sum \
         device/thermo-17/stats/temperature_c/sum_pos device/thermo-17/stats/temperature_c/sum_neg \
         device/thermo-17/stats/temperature_c/min device/thermo-17/stats/temperature_c/max",
        "set-many archive device/thermo-17/reading/00000000000000000001 device/thermo-17/seq",
        "increment hot device/thermo-17/lock/serving +0",
        "set-many hot device/thermo-17/count device/thermo-17/latest/temperature_c \
         device/thermo-17/stats/temperature_c/count device/thermo-17/stats/temperature_c/sum \
         device/thermo-17/stats/temperature_c/min device/thermo-17/stats/temperature_c/max \
         seen/thermo-17/r-1",
        "increment hot device/thermo-17/lock/serving +1 once",
        "set metrics/thermo-17 temperature_c",
        "set devices thermo-17",
    ];
    /// The call after which the reading counts: the hot `set-many`.
    const COMMIT_CALL: usize = 6;
    /// The archive's `set-many`.
    const ARCHIVE_CALL: usize = 4;

    /// Everything one stored `r-1` of value 50 leaves, exactly once.
    fn assert_stored_once(executor: &Executor) {
        let d = device();
        assert_eq!(
            executor
                .text(&Target::Hot, &device_count_key(&d))
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            executor.text(&Target::Hot, "seen/thermo-17/r-1").as_deref(),
            Some("1")
        );
        assert_eq!(
            stats_of(executor),
            MetricStats {
                count: 1,
                sum: 50_000_000,
                min: Some(50.0),
                max: Some(50.0)
            }
        );
        assert_eq!(archived(executor), [(1, "r-1".to_owned())]);
        assert_eq!(
            executor.get(&Target::Archive, &reading_key(&d, 1)),
            executor.get(&Target::Hot, &latest_key(&d, &metric()))
        );
        assert!(executor.get(&Target::DeviceIndex, "thermo-17").is_some());
        assert!(executor
            .get(&Target::MetricIndex(d.clone()), "temperature_c")
            .is_some());
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
    fn a_fresh_reading_makes_the_documented_calls_in_order() {
        let mut executor = Executor::default();
        let summary = ingest(&mut executor, &reading("r-1", "50"));
        assert_eq!(summary.counts(), (1, 0, 0, 1));
        assert_eq!(executor.calls, FRESH_CALLS);
        assert_stored_once(&executor);
        assert_eq!(
            executor
                .text(&Target::Archive, "device/thermo-17/seq")
                .as_deref(),
            Some("1")
        );
        assert_eq!(executor.counter("device/thermo-17/lock/serving"), 1);
        assert_eq!(executor.published.len(), 1);
        assert_eq!(executor.published[0].subject, "neongrid.alerts.thermo-17");
        assert!(executor.warnings.is_empty(), "{:?}", executor.warnings);
    }

    #[test]
    fn the_commit_is_pure_and_the_same_state_gives_the_same_bytes() {
        let payload = reading("r-1", "-2.5");
        let Outcome::Reading(parsed) = &parse_message(SUBJECT, payload.as_bytes())[0] else {
            panic!("rejected");
        };
        let Decision::Store(plan) = decide(SUBJECT, parsed, Verdict::Accepted(None)) else {
            panic!("not stored");
        };
        assert!(!plan.alerts());
        let stored = |v: &str| Some(v.as_bytes().to_vec());
        let values = vec![
            stored("4"),
            None,
            stored("7"),
            stored("2"),
            stored("3000000"),
            None,
            None,
            stored("1.0"),
            stored("2.0"),
        ];
        let state = plan.decode(&values).unwrap();
        assert_eq!(state.serving, 4);
        let Next::Commit(commit) = plan.next(&state).unwrap() else {
            panic!("not a commit");
        };
        assert_eq!(plan.next(&state).unwrap(), Next::Commit(commit.clone()));
        assert_eq!(commit.seq, 8);
        let text = |entries: &[(String, Vec<u8>)]| -> Vec<(String, String)> {
            entries
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
                .collect()
        };
        assert_eq!(
            text(&commit.archive),
            [
                (
                    "device/thermo-17/reading/00000000000000000008".into(),
                    String::from_utf8(plan.json.clone()).unwrap()
                ),
                ("device/thermo-17/seq".into(), "8".into()),
            ]
        );
        let hot = text(&commit.hot);
        let value = |key: &str| hot.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(value("device/thermo-17/count"), Some("8"));
        assert_eq!(
            value("device/thermo-17/stats/temperature_c/count"),
            Some("3")
        );
        assert_eq!(
            value("device/thermo-17/stats/temperature_c/sum"),
            Some("500000")
        );
        assert_eq!(
            value("device/thermo-17/stats/temperature_c/min"),
            Some("-2.5")
        );
        assert_eq!(
            value("device/thermo-17/stats/temperature_c/max"),
            Some("2.0")
        );
        assert_eq!(value("seen/thermo-17/r-1"), Some("8"));

        let mut done = values.clone();
        done[1] = stored("8");
        assert_eq!(
            plan.next(&plan.decode(&done).unwrap()).unwrap(),
            Next::Duplicate { seq: 8 }
        );
        let mut corrupt = values;
        corrupt[2] = stored("many");
        assert!(matches!(plan.decode(&corrupt), Err(StateError::Corrupt(_))));
        assert!(matches!(
            plan.decode(&[]),
            Err(StateError::ShortAnswer {
                expected: 9,
                got: 0
            })
        ));
    }

    #[test]
    fn a_duplicate_is_not_counted_again_and_writes_the_index_markers() {
        let mut executor = Executor::default();
        ingest(&mut executor, &reading("r-1", "50"));
        executor.calls.clear();
        let summary = ingest(&mut executor, &reading("r-1", "50"));
        assert_eq!(summary.counts(), (0, 0, 1, 0));
        assert_eq!(
            executor.calls,
            [
                FRESH_CALLS[0].to_owned(),
                FRESH_CALLS[1].to_owned(),
                FRESH_CALLS[2].to_owned(),
                FRESH_CALLS[6].to_owned(),
                FRESH_CALLS[7].to_owned(),
                FRESH_CALLS[8].to_owned(),
            ]
        );
        assert_stored_once(&executor);
        assert_eq!(executor.published.len(), 1, "a duplicate alerts again");
    }

    #[test]
    fn a_crash_after_archiving_is_completed_exactly_once_by_the_redo() {
        let mut executor = Executor {
            crash_after: Some(ARCHIVE_CALL),
            ..Executor::default()
        };
        ingest(&mut executor, &reading("r-1", "50"));
        assert!(executor.crashed());
        // Archived, not counted.
        let d = device();
        let archived_bytes = executor.get(&Target::Archive, &reading_key(&d, 1)).cloned();
        assert!(archived_bytes.is_some());
        assert_eq!(executor.counter(&device_count_key(&d)), 0);
        assert_eq!(executor.get(&Target::Hot, "seen/thermo-17/r-1"), None);

        // The sender resends; the dead holder's lock is broken after STALE_AFTER.
        executor.restart();
        let started = executor.clock;
        let summary = ingest(&mut executor, &reading("r-1", "50"));
        assert_eq!(summary.counts(), (1, 0, 0, 1));
        assert!(executor.clock - started >= STALE_AFTER);
        assert_eq!(executor.warnings.len(), 1, "{:?}", executor.warnings);
        assert!(executor.warnings[0].contains("stood still"));
        // The same sequence number and the same bytes.
        assert_eq!(
            executor.get(&Target::Archive, &reading_key(&d, 1)).cloned(),
            archived_bytes
        );
        assert_stored_once(&executor);
    }

    #[test]
    fn a_crash_after_the_commit_is_a_duplicate_that_repairs_the_indexes() {
        let mut executor = Executor {
            crash_after: Some(COMMIT_CALL),
            ..Executor::default()
        };
        ingest(&mut executor, &reading("r-1", "50"));
        assert!(executor.crashed());
        assert_eq!(executor.get(&Target::DeviceIndex, "thermo-17"), None);
        assert!(executor.published.is_empty());

        executor.restart();
        let summary = ingest(&mut executor, &reading("r-1", "50"));
        assert_eq!(summary.counts(), (0, 0, 1, 0));
        assert_stored_once(&executor);
        // The alert died with the instance (documented in the module docs).
        assert!(executor.published.is_empty());
    }

    #[test]
    fn a_crash_after_any_call_leaves_the_reading_stored_exactly_once_after_the_resend() {
        for crash_after in 0..FRESH_CALLS.len() {
            let mut executor = Executor {
                crash_after: Some(crash_after),
                ..Executor::default()
            };
            ingest(&mut executor, &reading("r-1", "50"));
            assert!(executor.crashed(), "{crash_after}");
            executor.restart();
            let summary = ingest(&mut executor, &reading("r-1", "50"));
            let committed_before = crash_after >= COMMIT_CALL;
            let expected = if committed_before {
                (0, 0, 1, 0)
            } else {
                (1, 0, 0, 1)
            };
            assert_eq!(summary.counts(), expected, "crash after {crash_after}");
            assert_stored_once(&executor);
            // A later reading takes the next number: the lock and counts are in step.
            let summary = ingest(&mut executor, &reading("r-2", "1"));
            assert_eq!(summary.accepted, 1, "crash after {crash_after}");
            assert_eq!(
                archived(&executor),
                [(2, "r-2".to_owned()), (1, "r-1".to_owned())],
                "crash after {crash_after}"
            );
            assert_eq!(stats_of(&executor).count, 2);
        }
    }

    #[test]
    fn readings_of_one_device_take_consecutive_numbers_and_exact_stats() {
        let mut executor = Executor::default();
        let first = format!(
            "[{},{},{}]",
            reading("a", "21.5"),
            reading("b", "-12.25"),
            reading("c", "0.1")
        );
        assert_eq!(ingest(&mut executor, &first).accepted, 3);
        assert_eq!(ingest(&mut executor, &reading("d", "0.2")).accepted, 1);
        assert_eq!(
            archived(&executor),
            [
                (4, "d".to_owned()),
                (3, "c".to_owned()),
                (2, "b".to_owned()),
                (1, "a".to_owned())
            ]
        );
        let stats = stats_of(&executor);
        assert_eq!(
            stats,
            MetricStats {
                count: 4,
                sum: 9_550_000,
                min: Some(-12.25),
                max: Some(21.5)
            }
        );
        assert_eq!(StatsView::new(&stats).unwrap().sum, 9.55);
        assert_eq!(executor.counter("seen/thermo-17/c"), 3);
        assert_eq!(executor.counter("device/thermo-17/lock/ticket"), 4);
        assert_eq!(executor.counter("device/thermo-17/lock/serving"), 4);
    }

    /// Runs `payload` as another ingest instance on the same stores and clock.
    fn other_instance(
        payload: String,
        answer: Rc<RefCell<Option<Summary>>>,
    ) -> impl FnMut(&mut crate::test_support::Stores, &mut std::time::Duration) {
        move |stores, clock| {
            let mut other = Executor {
                stores: std::mem::take(stores),
                clock: *clock,
                ..Executor::default()
            };
            *answer.borrow_mut() = Some(ingest(&mut other, &payload));
            *stores = other.stores;
            *clock = other.clock;
        }
    }

    #[test]
    fn a_holder_whose_lock_was_taken_over_commits_nothing() {
        // Instance A stalls after reading the state, after archiving, or after
        // its last look at serving; meanwhile instance B waits out STALE_AFTER,
        // breaks A's lock and stores another reading.
        for stalls_after in [ARCHIVE_CALL - 1, ARCHIVE_CALL, COMMIT_CALL - 1] {
            let mut a = Executor::default();
            let b_answer = Rc::new(RefCell::new(None));
            a.after_call(
                stalls_after,
                other_instance(reading("b", "7"), b_answer.clone()),
            );
            let summary = ingest(&mut a, &reading("a", "50"));
            assert_eq!(
                b_answer.borrow().as_ref().unwrap().accepted,
                1,
                "stall after call {stalls_after}"
            );
            assert_eq!(summary.accepted, 0, "stall after call {stalls_after}");
            assert!(summary.rejections[0].retryable);
            assert_eq!(
                a.calls
                    .iter()
                    .filter(|call| call.contains("serving +1"))
                    .count(),
                0,
                "A released a lock that is not its own"
            );
            assert_eq!(
                archived(&a),
                [(1, "b".to_owned())],
                "stall after call {stalls_after}"
            );
            assert_eq!(a.counter(&device_count_key(&device())), 1);

            // A's sender resends: stored after b, and the lock works on.
            assert_eq!(ingest(&mut a, &reading("a", "50")).accepted, 1);
            assert_eq!(
                archived(&a),
                [(2, "a".to_owned()), (1, "b".to_owned())],
                "stall after call {stalls_after}"
            );
            assert_eq!(stats_of(&a).sum, 57_000_000);
        }
    }

    #[test]
    fn a_serving_moved_by_anything_else_stops_the_commit() {
        // No time passes, so the lease still runs: only the re-read of serving
        // before the commit sees that the lock is no longer A's.
        let mut a = Executor::default();
        a.after_call(ARCHIVE_CALL, |stores, _| {
            stores
                .get_mut(&Target::Hot)
                .unwrap()
                .insert("device/thermo-17/lock/serving".into(), b"1".to_vec());
        });
        let summary = ingest(&mut a, &reading("a", "50"));
        assert_eq!(summary.accepted, 0);
        assert!(
            summary.rejections[0].reason.contains("taken over"),
            "{summary:?}"
        );
        assert_eq!(a.counter(&device_count_key(&device())), 0);
        assert_eq!(
            a.counter("device/thermo-17/lock/serving"),
            1,
            "not released"
        );
        // The next reading enters at once (serving moved on) and takes number 1.
        assert_eq!(ingest(&mut a, &reading("a", "50")).accepted, 1);
        assert_stored_once_as(&a, "a");
    }

    fn assert_stored_once_as(executor: &Executor, id: &str) {
        assert_eq!(archived(executor), [(1, id.to_owned())]);
        assert_eq!(executor.counter(&device_count_key(&device())), 1);
    }

    #[test]
    fn a_holder_past_its_lease_neither_writes_nor_releases() {
        let mut a = Executor::default();
        a.after_call(ARCHIVE_CALL - 1, |_, clock| *clock += STALE_AFTER);
        let summary = ingest(&mut a, &reading("a", "50"));
        assert!(
            summary.rejections[0].reason.contains("lease"),
            "{summary:?}"
        );
        assert!(summary.rejections[0].retryable);
        assert_eq!(a.counter("device/thermo-17/lock/serving"), 0);
        assert!(archived(&a).is_empty());
        // The resend waits for the lock to go stale, then stores.
        assert_eq!(ingest(&mut a, &reading("a", "50")).accepted, 1);
        assert_stored_once_as(&a, "a");
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
        assert_eq!(
            StatsView::new(&stats_of(&executor)),
            Some(StatsView {
                count: 2,
                min: Some(-12.25),
                max: Some(21.5),
                sum: 9.25,
                mean: 4.625
            })
        );
        assert_eq!(executor.counter(&device_count_key(&d)), 2);
        assert_eq!(
            executor.get(&Target::DeviceIndex, "thermo-17"),
            Some(&b"1".to_vec())
        );
        assert_eq!(
            archived(&executor),
            [(2, "b".to_owned()), (1, "a".to_owned())]
        );

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
    fn a_metric_stored_by_an_earlier_version_keeps_its_sum() {
        let mut executor = Executor::default();
        let keys = StatsKeys::new(&device(), &metric());
        for (key, value) in [
            (&device_count_key(&device()), "2"),
            (&keys.count, "2"),
            (&keys.sum_pos, "30000000"),
            (&keys.sum_neg, "5000000"),
            (&keys.min, "-5.0"),
            (&keys.max, "30.0"),
        ] {
            executor.set(&Target::Hot, key.clone(), value.as_bytes().to_vec());
        }
        // Its done mark held a delivery count.
        executor.set(&Target::Hot, "seen/thermo-17/old".into(), b"2".to_vec());
        assert_eq!(ingest(&mut executor, &reading("old", "1")).duplicates, 1);
        assert_eq!(ingest(&mut executor, &reading("new", "1")).accepted, 1);
        assert_eq!(
            stats_of(&executor),
            MetricStats {
                count: 3,
                sum: 26_000_000,
                min: Some(-5.0),
                max: Some(30.0)
            }
        );
        assert_eq!(archived(&executor), [(3, "new".to_owned())]);
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
