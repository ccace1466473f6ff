//! The rules of the neongrid ingest component, and the read side of what it
//! stores, kept free of WIT, wasm and wasmCloud types so that they compile and
//! are tested natively. The `ingest` component is only the glue between these
//! functions and the messaging, key-value and `validation` interfaces; the `api`
//! component reads the same keys through [`api`].
//!
//! Device ids, metric names and timestamps follow the HTTP API's rules
//! (`telemetry-domain`), so both ways in store the same things.
//!
//! # Messages in
//!
//! Devices publish on `neongrid.readings.<device>` ([`READINGS_SUBSCRIPTION`]
//! catches them all), and so does the HTTP API, one message per device of a
//! posted body ([`post::split_post`]); either one reading or a JSON array of up to
//! [`MAX_READINGS_PER_MESSAGE`] readings, at most [`MAX_MESSAGE_BYTES`]:
//!
//! ```json
//! {"id":"r-1","device":"thermo-17","metric":"temperature_c","value":21.4,"ts":"2026-11-20T10:00:00Z"}
//! ```
//!
//! All five fields are required and no others are allowed. `id` follows
//! [`READING_ID_RULE`] and only needs to be unique per device; `device` must be
//! the subject's device (on a subject naming no device, such as
//! `neongrid.ingest`, readings are judged but never stored); `value` must be a number of
//! magnitude at most [`MAX_ABS_VALUE`] (about 1.8e13); `ts` is RFC 3339 and kept
//! as sent. [`parse_message`] turns a message into one [`Outcome`] per reading.
//!
//! # Messages out
//!
//! | subject | body | when |
//! | --- | --- | --- |
//! | `neongrid.rejected` | [`RejectedMessage`] | a reading or whole message is refused, by parsing or by the validator |
//! | `neongrid.alerts.<device>` | [`AlertMessage`] | a stored reading is outside its alert band |
//! | the reply-to | [`Summary`], `{"accepted":2,"rejected":1,"duplicates":0,"alerts":1,"rejections":[…]}` | after the whole message |
//!
//! # Key layout
//!
//! Every bucket identifier is [`BUCKET`] (`neongrid`) except the two indexes.
//!
//! | link | bucket | key | value | written |
//! | --- | --- | --- | --- | --- |
//! | `hot` | `neongrid` | `device/<id>/count` | readings stored for the device, decimal | in the commit |
//! | `hot` | `neongrid` | `device/<id>/latest/<metric>` | latest reading of the metric, [`IngestReading`] JSON | in the commit |
//! | `hot` | `neongrid` | `device/<id>/stats/<metric>/count` | readings of the metric, decimal | in the commit |
//! | `hot` | `neongrid` | `device/<id>/stats/<metric>/sum` | sum of the values in micro-units, signed decimal | in the commit |
//! | `hot` | `neongrid` | `device/<id>/stats/<metric>/min`, `…/max` | a JSON number | in the commit |
//! | `hot` | `neongrid` | `seen/<id>/<reading id>` | the done mark: the reading's sequence number, decimal | in the commit |
//! | `hot` | `neongrid` | `device/<id>/lock/ticket`, `…/lock/serving` | the device [`lock`] | increment |
//! | `hot` | `neongrid-devices` | `<id>` | `1`; the key set is the device list | set, after the commit |
//! | `hot` | `neongrid-metrics/<id>` | `<metric>` | `1`; the key set is the device's metrics | set, after the commit |
//! | `archive` | `neongrid` | `device/<id>/seq` | sequence number of the reading archived last, decimal | with the reading |
//! | `archive` | `neongrid` | `device/<id>/reading/<n, 20 digits>` | reading `n` (from 1), [`IngestReading`] JSON | with `seq` |
//!
//! "In the commit" is one atomic `set-many` per reading ([`plan`]), made under
//! the device lock; "with" is the archive's `set-many` just before it.
//!
//! - The device index is a bucket of its own, [`DEVICES_BUCKET`], and each
//!   device's metric index too ([`metrics_bucket`]), because `list-keys` has no
//!   prefix filter; listing one lists exactly the devices, or a device's metrics.
//! - Hot and archive keys never coincide, so both links may share one store.
//! - Counts, sums, min and max are exact, as [`stats`] says; the keys
//!   `…/stats/<metric>/sum_pos` and `…/sum_neg` of earlier versions are read
//!   only until a metric's `sum` is first written.
//! - [`history_keys`] gives the last readings' keys, newest first, for one
//!   batch-get; a key may have no value (a gap), which readers skip.
//! - The HTTP API reads exactly these keys ([`api`]), never writes them.
//!
//! # Exactly once
//!
//! [`decide`] turns a parsed reading and the validator's verdict into a
//! [`Decision`]; [`plan`] explains how a reading is stored exactly once
//! although senders resend and ingest may die at any point, and
//! [`execute::store`] does it. One `set-many` on one link is taken to be
//! atomic: `wasi:keyvalue` does not promise it, but all our providers apply a
//! batch in one command, transaction or lock (`providers/README.md`), and a
//! provider that didn't would break exactly-once.

pub mod alert;
pub mod api;
pub mod execute;
pub mod keys;
pub mod lock;
pub mod message;
pub mod plan;
pub mod post;
pub mod reading_id;
pub mod reason;
pub mod rejected;
pub mod stats;
pub mod subject;
pub mod summary;

#[cfg(test)]
mod test_support;

pub use alert::{AlertMessage, AlertVerdict, Side};
pub use execute::{Retry, Store, Stored};
pub use keys::{
    device_lock, history_keys, metrics_bucket, StatsKeys, ARCHIVE_LINK, BUCKET, DEVICES_BUCKET,
    HOT_LINK, MAX_HISTORY_LIMIT,
};
pub use lock::{Lease, Step, TicketLock, Waiter};
pub use message::{
    parse_message, IngestReading, Outcome, ParsedReading, Rejected, MAX_MESSAGE_BYTES,
    MAX_READINGS_PER_MESSAGE,
};
pub use plan::{
    decide, reject, Commit, Decision, Effect, Next, Publish, Snapshot, StateError, StorePlan,
    Target, Verdict,
};
pub use reading_id::{ReadingId, ReadingIdError, READING_ID_RULE};
pub use reason::{RejectReason, ValidatorRejection};
pub use rejected::{OriginalError, RejectedMessage};
pub use stats::{CorruptValue, MetricStats, Micros, StatsView, MAX_ABS_VALUE};
pub use subject::{alert_subject, READINGS_SUBSCRIPTION, REJECTED_SUBJECT};
pub use summary::{Applied, RejectionNote, Summary};

/// Serializes one of this crate's message or storage types to JSON.
///
/// These types hold only strings, integers, finite floats and derived
/// `Serialize` impls with string keys, for which serde_json cannot fail.
fn encode(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("crate types always serialize to JSON")
}
