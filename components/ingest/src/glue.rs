//! The execution loop of `ingest_domain::plan`, against the real interfaces.

use std::time::{Duration, Instant};

use ingest_domain::{
    decide, parse_message, reject, AlertVerdict, Applied, Decision, Outcome, ParsedReading,
    Publish, RejectReason, RejectedMessage, Retry, Side, Store, StorePlan, Stored, Summary, Target,
    ValidatorRejection, Verdict,
};

use crate::neongrid::telemetry::validation as wit;
use crate::wasi::keyvalue::{atomics, batch, store};
use crate::wasi::logging::logging::{log, Level};
use crate::wasmcloud::bus::lattice;
use crate::wasmcloud::messaging::consumer;
use crate::wasmcloud::messaging::types::BrokerMessage;

/// The `context` of this component's log lines, to find them among the host's.
const LOG_CONTEXT: &str = "neongrid-ingest";

/// The `code` of a rejection published when the store failed; not one of the
/// domain's reasons (see `store_failure`).
const STORE_FAILED_CODE: &str = "store_failed";

/// How long a failing key-value call is tried again before the reading gives up, unless
/// the domain says otherwise (`Retry`): a provider that crashes is restarted by its host
/// within a second or two, and riding that out is worth a slow answer. Under the device
/// lock the domain cuts this short at the lock's lease (`ingest_domain::lock`).
const STORE_RETRY_FOR: Duration = Duration::from_secs(10);
/// The first pause before trying a failed call again; it doubles up to the last.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(50);
const STORE_RETRY_MAX: Duration = Duration::from_secs(1);

/// Handles one message and says what became of its readings.
pub fn ingest(subject: &str, payload: &[u8]) -> Summary {
    let outcomes = parse_message(subject, payload);
    let mut verdicts = judge(&outcomes).into_iter();
    let mut kv = Kv::default();
    let mut summary = Summary::default();
    // One after another, in message order: the domain relies on it for two
    // readings with the same id in one message.
    for outcome in &outcomes {
        let applied = match outcome {
            Outcome::Rejected(rejected) => published_rejection(reject(subject, rejected)),
            Outcome::Reading(parsed) => {
                let verdict = verdicts.next().unwrap_or_else(|| {
                    unavailable("the validator answered fewer verdicts than readings")
                });
                match decide(subject, parsed, verdict) {
                    Decision::Reject(message) => published_rejection(message),
                    Decision::Store(plan) => store(&mut kv, subject, parsed, &plan),
                }
            }
        };
        summary.record(applied);
    }
    summary
}

/// Publishes `body` on `subject`; a failure is logged, as there is nobody else
/// to tell.
pub fn publish(subject: &str, body: Vec<u8>) {
    let message = BrokerMessage {
        subject: subject.to_owned(),
        body,
        reply_to: None,
    };
    if let Err(err) = consumer::publish(&message) {
        log(
            Level::Error,
            LOG_CONTEXT,
            &format!("publishing on {subject} failed: {err}"),
        );
    }
}

fn send(publish_: Publish) {
    publish(&publish_.subject, publish_.body);
}

/// Publishes a rejection and notes it for the reply-to summary.
fn published_rejection(message: RejectedMessage) -> Applied {
    send(message.publish());
    Applied::Rejected(message.note())
}

/// Asks the validator about every parsed reading of the message in one call.
/// The verdicts come back in the order of the message's parsed readings.
fn judge(outcomes: &[Outcome]) -> Vec<Verdict> {
    let readings: Vec<wit::Reading> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Reading(parsed) => Some(wit::Reading {
                device: parsed.reading.device().to_string(),
                metric: parsed.reading.metric().to_string(),
                value: parsed.reading.value(),
            }),
            Outcome::Rejected(_) => None,
        })
        .collect();
    if readings.is_empty() {
        return Vec::new();
    }
    // A call over a missing link traps, which would lose the whole message
    // without a word. Selecting the default link first fails cleanly instead
    // when there is none. (A validator that is linked but does not answer
    // still traps: the interface has no error case.)
    let validation_link = vec![lattice::CallTargetInterface::new(
        "neongrid",
        "telemetry",
        "validation",
    )];
    if let Err(err) = lattice::set_link_name("default", validation_link) {
        let reason = format!("no validator is linked ({err})");
        log(Level::Error, LOG_CONTEXT, &reason);
        return readings.iter().map(|_| unavailable(&reason)).collect();
    }
    wit::validate_many(&readings)
        .into_iter()
        .map(from_wit)
        .collect()
}

fn unavailable(reason: &str) -> Verdict {
    Verdict::Rejected {
        kind: ValidatorRejection::Unavailable,
        reason: reason.to_owned(),
    }
}

fn from_wit(verdict: wit::Verdict) -> Verdict {
    match verdict {
        wit::Verdict::Accepted(alert) => Verdict::Accepted(alert.map(|alert| AlertVerdict {
            side: match alert.side {
                wit::Side::Low => Side::Low,
                wit::Side::High => Side::High,
            },
            bound: alert.bound,
            message: alert.message,
        })),
        wit::Verdict::Rejected(rejection) => Verdict::Rejected {
            kind: match rejection.kind {
                wit::RejectionKind::NotFinite => ValidatorRejection::NotFinite,
                wit::RejectionKind::OutOfRange => ValidatorRejection::OutOfRange,
                wit::RejectionKind::UnknownMetric => ValidatorRejection::UnknownMetric,
                wit::RejectionKind::Misconfigured => ValidatorRejection::Misconfigured,
            },
            reason: rejection.reason,
        },
    }
}

/// Stores a reading (`ingest_domain::execute::store`). A refusal is logged,
/// published on `neongrid.rejected` and counted as a rejection; it is retryable
/// unless the stored state itself is unusable, as nothing was committed.
fn store(kv: &mut Kv, subject: &str, parsed: &ParsedReading, plan: &StorePlan) -> Applied {
    match ingest_domain::execute::store(kv, plan) {
        Stored::Refused { why, retryable } => {
            let what = format!("storing the reading failed, nothing was stored: {why}");
            store_failure(subject, parsed, &what, retryable)
        }
        stored => stored.applied().unwrap_or(Applied::Duplicate),
    }
}

/// Reports a reading the store refused. The domain has no rejection reason for
/// this (it only says whether a resend can succeed), so the rejection is built
/// here with a code of its own.
fn store_failure(subject: &str, parsed: &ParsedReading, what: &str, retryable: bool) -> Applied {
    log(
        Level::Error,
        LOG_CONTEXT,
        &format!(
            "reading {} of device {}: {what}",
            parsed.reading.id(),
            parsed.reading.device()
        ),
    );
    let placeholder = RejectReason::Validator {
        kind: ValidatorRejection::Unavailable,
        reason: String::new(),
    };
    let mut message = RejectedMessage::new(subject, parsed.index, &placeholder, &parsed.original);
    message.code = STORE_FAILED_CODE.to_owned();
    message.reason = what.to_owned();
    message.retryable = retryable;
    published_rejection(message)
}

/// The key-value links as the plan's targets: selects the target's link
/// before calling, and keeps the bucket open while the link stays selected.
struct Kv {
    /// The link selected last, and the bucket opened on it.
    current: Option<(Target, store::Bucket)>,
    link: Option<&'static str>,
    /// The start of the domain's clock (`Store::now`).
    epoch: Instant,
}

impl Default for Kv {
    fn default() -> Self {
        Self {
            current: None,
            link: None,
            epoch: Instant::now(),
        }
    }
}

impl Kv {
    /// Runs one key-value call, trying again while it fails with an error that may
    /// pass (a provider restarting, a store briefly unreachable), as `retry` allows:
    /// for up to [`STORE_RETRY_FOR`], until a moment of the domain's clock, or not at
    /// all. A call that failed after the store applied it is applied twice; the
    /// domain asks for [`Retry::Once`] where that would be wrong.
    fn retrying<T>(
        &mut self,
        operation: &str,
        key: &str,
        target: &Target,
        retry: Retry,
        mut call: impl FnMut(&store::Bucket) -> Result<T, store::Error>,
    ) -> Result<T, String> {
        let start = Instant::now();
        let deadline = match retry {
            Retry::Patiently => Some(start + STORE_RETRY_FOR),
            Retry::Until(until) => Some(self.epoch + until),
            Retry::Once => None,
        };
        let mut pause = STORE_RETRY_FIRST;
        loop {
            if deadline.is_some_and(|deadline| Instant::now() > deadline) {
                return Err(format!(
                    "{operation} {key:?} on link `{}`: not tried, the lock's lease ran out",
                    target.link()
                ));
            }
            let err = match self.bucket(target) {
                Ok(bucket) => match call(bucket) {
                    Ok(value) => return Ok(value),
                    Err(err) => {
                        let lasting = !matches!(err, store::Error::Other(_));
                        let err = describe(operation, key, target, err);
                        if lasting {
                            return Err(err);
                        }
                        err
                    }
                },
                Err(err) => err,
            };
            let again = deadline.is_some_and(|deadline| Instant::now() + pause <= deadline);
            if !again {
                return Err(format!("{err} (tried for {:?})", start.elapsed()));
            }
            log(
                Level::Warn,
                LOG_CONTEXT,
                &format!("{err}; trying again in {pause:?}"),
            );
            // Opened again on the next try: the provider behind it may be a new one.
            self.current = None;
            self.link = None;
            std::thread::sleep(pause);
            pause = (pause * 2).min(STORE_RETRY_MAX);
        }
    }

    fn bucket(&mut self, target: &Target) -> Result<&store::Bucket, String> {
        let reusable = matches!(&self.current, Some((open, _)) if open == target);
        if !reusable {
            self.current = None;
            if self.link != Some(target.link()) {
                self.link = None;
                select_link(target.link())?;
                self.link = Some(target.link());
            }
            let bucket = store::open(&target.bucket())
                .map_err(|err| describe("open", &target.bucket(), target, err))?;
            self.current = Some((target.clone(), bucket));
        }
        match &self.current {
            Some((_, bucket)) => Ok(bucket),
            None => Err("no bucket open".to_owned()),
        }
    }
}

impl Store for Kv {
    fn now(&mut self) -> Duration {
        self.epoch.elapsed()
    }

    fn sleep(&mut self, pause: Duration) {
        std::thread::sleep(pause);
    }

    fn increment(
        &mut self,
        target: &Target,
        key: &str,
        delta: u64,
        retry: Retry,
    ) -> Result<u64, String> {
        self.retrying("increment", key, target, retry, |bucket| {
            atomics::increment(bucket, key, delta)
        })
    }

    fn get_many(
        &mut self,
        target: &Target,
        keys: &[String],
        retry: Retry,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let first = keys.first().map_or("", String::as_str);
        let entries = self.retrying("get-many from", first, target, retry, |bucket| {
            batch::get_many(bucket, keys)
        })?;
        if entries.len() != keys.len() {
            return Err(format!(
                "get-many from {first:?}: {} entries for {} keys",
                entries.len(),
                keys.len()
            ));
        }
        Ok(entries
            .into_iter()
            .map(|entry| entry.map(|(_, value)| value))
            .collect())
    }

    fn set_many(
        &mut self,
        target: &Target,
        entries: &[(String, Vec<u8>)],
        retry: Retry,
    ) -> Result<(), String> {
        let first = entries.first().map_or("", |(key, _)| key.as_str());
        let entries = entries.to_vec();
        self.retrying("set-many from", first, target, retry, |bucket| {
            batch::set_many(bucket, &entries)
        })
    }

    fn set(
        &mut self,
        target: &Target,
        key: &str,
        value: &[u8],
        retry: Retry,
    ) -> Result<(), String> {
        self.retrying("set", key, target, retry, |bucket| bucket.set(key, value))
    }

    fn publish(&mut self, publish_: &Publish) {
        send(publish_.clone());
    }

    fn warn(&mut self, message: &str) {
        log(Level::Warn, LOG_CONTEXT, message);
    }
}

/// Points `wasi:keyvalue` (all three interfaces, so that buckets and counters
/// go to the same store) at the link named `link`.
fn select_link(link: &str) -> Result<(), String> {
    let interfaces = ["store", "atomics", "batch"]
        .into_iter()
        .map(|interface| lattice::CallTargetInterface::new("wasi", "keyvalue", interface))
        .collect();
    lattice::set_link_name(link, interfaces)
        .map_err(|err| format!("selecting key-value link `{link}` failed: {err}"))
}

fn describe(operation: &str, key: &str, target: &Target, err: store::Error) -> String {
    let detail = match err {
        store::Error::NoSuchStore => "no such store".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(detail) => detail,
    };
    format!(
        "{operation} {key:?} in bucket {:?} on link `{}`: {detail}",
        target.bucket(),
        target.link()
    )
}

/// Only the pure part runs natively: the imports' bindings exist only on wasm.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_verdicts_keep_the_alert() {
        assert_eq!(
            from_wit(wit::Verdict::Accepted(None)),
            Verdict::Accepted(None)
        );
        let alert = wit::Alert {
            side: wit::Side::Low,
            bound: -10.0,
            message: "below".into(),
        };
        assert_eq!(
            from_wit(wit::Verdict::Accepted(Some(alert))),
            Verdict::Accepted(Some(AlertVerdict {
                side: Side::Low,
                bound: -10.0,
                message: "below".into(),
            }))
        );
    }

    #[test]
    fn each_rejection_kind_maps_to_the_domains() {
        let cases = [
            (wit::RejectionKind::NotFinite, ValidatorRejection::NotFinite),
            (
                wit::RejectionKind::OutOfRange,
                ValidatorRejection::OutOfRange,
            ),
            (
                wit::RejectionKind::UnknownMetric,
                ValidatorRejection::UnknownMetric,
            ),
            (
                wit::RejectionKind::Misconfigured,
                ValidatorRejection::Misconfigured,
            ),
        ];
        for (kind, expected) in cases {
            let verdict = from_wit(wit::Verdict::Rejected(wit::Rejection {
                kind,
                reason: "why".into(),
            }));
            assert_eq!(
                verdict,
                Verdict::Rejected {
                    kind: expected,
                    reason: "why".into()
                }
            );
        }
    }

    #[test]
    fn an_unanswered_reading_is_a_retryable_rejection() {
        let Verdict::Rejected { kind, reason } = unavailable("no validator") else {
            panic!("not a rejection");
        };
        assert_eq!(kind, ValidatorRejection::Unavailable);
        assert_eq!(reason, "no validator");
        assert!(RejectReason::Validator { kind, reason }.is_retryable());
    }
}
