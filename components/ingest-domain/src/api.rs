//! The read side of the key layout: what the HTTP API answers, built from the
//! keys ingest writes. It lives beside [`crate::keys`] and [`crate::plan`] so
//! that the writer and the reader of each key can't drift apart.
//!
//! Every function takes a [`Reader`], the few `wasi:keyvalue` calls the API
//! makes, so the same code runs over the component's links and over the maps
//! of the tests.
//!
//! Nothing here writes. Everything is read with `get` or, wherever several keys
//! are known at once, one `get-many`: a query costs a fixed number of calls,
//! whatever the number of devices or metrics. Counts, latest readings and stats
//! are written by one atomic write per reading ([`crate::plan`]), so what one
//! `get-many` returns agrees with itself: a count comes with its reading, a sum
//! with its count. A query for an unknown device is answered from the device
//! index alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use telemetry_domain::error::{StoreOperation, STATUS_UNPROCESSABLE};
use telemetry_domain::{ApiError, DeviceId, StoreError};

use crate::keys::{device_count_key, device_index_key, history_keys, latest_key, seq_key};
use crate::message::IngestReading;
use crate::plan::Target;
use crate::stats::{decode_count, CorruptValue, MetricStats, StatsView, Unreadable};
use crate::summary::Summary;
use crate::StatsKeys;

/// Most devices `GET /api/devices` lists: one `list-keys` page. The answer
/// says `"more":true` when the index holds more.
pub const MAX_LISTED_DEVICES: usize = 1000;

/// Most metrics a device query reports, one `list-keys` page of the device's
/// metric index.
pub const MAX_REPORTED_METRICS: usize = 1000;

/// One page of `list-keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// `None` after the last page (`wasi:keyvalue` 0.2.0-draft cursors are numbers).
    pub cursor: Option<u64>,
}

/// The key-value calls the API makes, on the link and bucket of a [`Target`].
pub trait Reader {
    fn get(&mut self, target: &Target, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// One entry per key, in order, `None` where a key has no value.
    fn get_many(
        &mut self,
        target: &Target,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    fn list_keys(&mut self, target: &Target, cursor: Option<u64>) -> Result<KeyPage, StoreError>;
}

/// `GET /api/devices`: `{"devices":[{"device":"thermo-17","count":3}],"more":false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Sorted by device id.
    pub devices: Vec<DeviceEntry>,
    /// Whether the index holds devices beyond [`MAX_LISTED_DEVICES`].
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub device: DeviceId,
    /// Readings stored for the device.
    pub count: u64,
}

/// `GET /api/devices/{id}`:
/// `{"device":"thermo-17","count":3,"metrics":{"temperature_c":{"latest":{…},"stats":{…}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDetail {
    pub device: DeviceId,
    pub count: u64,
    /// By metric name, in name order.
    pub metrics: BTreeMap<String, MetricDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDetail {
    /// The latest reading stored; `None` only while the first is being written.
    pub latest: Option<IngestReading>,
    /// `None` (JSON `null`) until the first reading of the metric is counted.
    pub stats: Option<StatsView>,
}

/// `GET /api/devices/{id}/history?limit=N`: the last readings, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub device: DeviceId,
    pub readings: Vec<HistoryEntry>,
}

/// A reading of the history with its sequence number, `{"seq":3,"id":…,…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub reading: IngestReading,
}

/// `GET /api/devices`.
///
/// Keys in the index that are not valid device ids are skipped: only ingest
/// writes there, and one stray key must not take the whole list down.
pub fn list_devices(reader: &mut impl Reader) -> Result<DeviceList, ApiError> {
    let index = Target::DeviceIndex;
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = reader
            .list_keys(&index, cursor)
            .map_err(|source| list_error(&index, source))?;
        ids.extend(page.keys.iter().filter_map(|key| DeviceId::parse(key).ok()));
        cursor = page.cursor;
        // Pages may be empty while a cursor follows (Redis), so stop on the
        // count of ids, not on a page's size.
        if cursor.is_none() || ids.len() > MAX_LISTED_DEVICES {
            break;
        }
    }
    // Backends list in their own order; the answer is sorted so that the
    // first MAX_LISTED_DEVICES are the same whatever the backend.
    ids.sort();
    ids.dedup();
    let more = ids.len() > MAX_LISTED_DEVICES || cursor.is_some();
    ids.truncate(MAX_LISTED_DEVICES);
    // Every listed device's count in one batch-get.
    let keys: Vec<String> = ids.iter().map(device_count_key).collect();
    let counts = get_many(reader, &Target::Hot, &keys)?;
    if counts.len() != keys.len() {
        return Err(short_answer(&keys, counts.len()));
    }
    let devices = ids
        .into_iter()
        .zip(keys.iter().zip(&counts))
        .map(|(device, (key, count))| {
            let count = decode_count(key, count.as_deref()).map_err(corrupt)?;
            Ok(DeviceEntry { device, count })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(DeviceList { devices, more })
}

/// `GET /api/devices/{id}`: the device's count, and per metric its latest
/// reading and statistics, or [`ApiError::DeviceNotFound`].
pub fn device_detail(reader: &mut impl Reader, device: DeviceId) -> Result<DeviceDetail, ApiError> {
    require_known(reader, &device)?;

    let index = Target::MetricIndex(device.clone());
    let page = reader
        .list_keys(&index, None)
        .map_err(|source| list_error(&index, source))?;
    let mut names: Vec<_> = page
        .keys
        .iter()
        .filter_map(|key| telemetry_domain::MetricName::parse(key).ok())
        .collect();
    names.sort();
    names.truncate(MAX_REPORTED_METRICS);

    // The device's count and every metric's latest reading and stats in one
    // batch-get: the count, then seven keys per metric.
    let count_key = device_count_key(&device);
    let stats_keys: Vec<StatsKeys> = names.iter().map(|m| StatsKeys::new(&device, m)).collect();
    let mut keys = vec![count_key.clone()];
    for (metric, stats) in names.iter().zip(&stats_keys) {
        keys.push(latest_key(&device, metric));
        keys.extend(stats.read_keys());
    }
    let values = get_many(reader, &Target::Hot, &keys)?;
    let Some((count, per_metric)) = values
        .split_first()
        .filter(|(_, rest)| rest.len() == names.len() * KEYS_PER_METRIC)
    else {
        return Err(short_answer(&keys, values.len()));
    };
    let count = decode_count(&count_key, count.as_deref()).map_err(corrupt)?;

    let mut metrics = BTreeMap::new();
    for ((metric, stats_keys), chunk) in names
        .iter()
        .zip(&stats_keys)
        .zip(per_metric.chunks(KEYS_PER_METRIC))
    {
        let latest = chunk[0]
            .as_deref()
            .map(|bytes| decode_reading(&latest_key(&device, metric), bytes))
            .transpose()?;
        let stats =
            MetricStats::decode(stats_keys, &chunk[1..], Unreadable::Fail).map_err(corrupt)?;
        metrics.insert(
            metric.to_string(),
            MetricDetail {
                latest,
                stats: StatsView::new(&stats),
            },
        );
    }
    Ok(DeviceDetail {
        device,
        count,
        metrics,
    })
}

/// Keys read per metric by [`device_detail`]: the latest reading and
/// [`StatsKeys::read_keys`].
const KEYS_PER_METRIC: usize = 7;

/// `GET /api/devices/{id}/history?limit=N`: one batch-get of the archive.
/// Gaps (a sequence number whose reading was never written) are skipped, so
/// fewer than `limit` readings can come back.
pub fn history(
    reader: &mut impl Reader,
    device: DeviceId,
    limit: usize,
) -> Result<History, ApiError> {
    require_known(reader, &device)?;
    let key = seq_key(&device);
    let last_seq = reader
        .get(&Target::Archive, &key)
        .map_err(|source| ApiError::Store {
            operation: StoreOperation::Get { key: key.clone() },
            source,
        })?;
    let last_seq = decode_count(&key, last_seq.as_deref()).map_err(corrupt)?;
    let keys = history_keys(&device, last_seq, limit);
    let values = get_many(reader, &Target::Archive, &keys)?;
    if values.len() != keys.len() {
        return Err(short_answer(&keys, values.len()));
    }
    // history_keys counts down from last_seq, one key per number.
    let readings = keys
        .iter()
        .zip(&values)
        .zip((0..=last_seq).rev())
        .filter_map(|((key, value), seq)| {
            let bytes = value.as_deref()?;
            Some(decode_reading(key, bytes).map(|reading| HistoryEntry { seq, reading }))
        })
        .collect::<Result<_, _>>()?;
    Ok(History { device, readings })
}

/// How `POST /api/readings` answers ingest's reply: the summary itself (200)
/// when at least one reading was stored or was a duplicate, and an error that
/// carries the summary when every reading was refused.
///
/// A refusal that retrying can fix (validator or store unavailable) is 503;
/// a message refused as a whole for its size is 413, for its form 400; readings
/// refused for their content are 422.
pub fn post_outcome(summary: Summary) -> Result<Summary, ApiError> {
    if summary.rejected == 0 || summary.accepted + summary.duplicates > 0 {
        return Ok(summary);
    }
    let status = if summary.rejections.iter().any(|note| note.retryable) {
        telemetry_domain::error::STATUS_UNAVAILABLE
    } else if let [whole] = summary.rejections.as_slice() {
        match (whole.index, whole.code.as_str()) {
            (None, "too_large") => telemetry_domain::error::STATUS_PAYLOAD_TOO_LARGE,
            (None, code) if WHOLE_MESSAGE_FORM_CODES.contains(&code) => {
                telemetry_domain::error::STATUS_BAD_REQUEST
            }
            _ => STATUS_UNPROCESSABLE,
        }
    } else {
        STATUS_UNPROCESSABLE
    };
    let reasons: Vec<String> = summary
        .rejections
        .iter()
        .map(|note| match note.index {
            Some(index) => format!("reading {index}: {}", note.reason),
            None => note.reason.clone(),
        })
        .collect();
    let message = format!(
        "{} of {} readings rejected: {}",
        summary.rejected,
        summary.total(),
        reasons.join("; ")
    );
    let summary = serde_json::to_value(&summary).map_err(|err| ApiError::Encode {
        what: "summary",
        detail: err.to_string(),
    })?;
    Err(ApiError::ReadingsRejected {
        status,
        message,
        summary,
    })
}

/// Rejection codes of a message that could not be read as readings at all.
const WHOLE_MESSAGE_FORM_CODES: &[&str] = &[
    "not_utf8",
    "empty",
    "not_json",
    "not_object_or_array",
    "empty_array",
    "too_many_readings",
];

/// Decodes ingest's reply to a request.
pub fn parse_reply(body: &[u8]) -> Result<Summary, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::BadIngestReply {
        detail: format!(
            "{err}; got {}",
            telemetry_domain::excerpt::excerpt(&String::from_utf8_lossy(body))
        ),
    })
}

fn require_known(reader: &mut impl Reader, device: &DeviceId) -> Result<(), ApiError> {
    let key = device_index_key(device);
    match reader.get(&Target::DeviceIndex, &key) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::DeviceNotFound {
            device: device.clone(),
        }),
        Err(source) => Err(ApiError::Store {
            operation: StoreOperation::Get { key },
            source,
        }),
    }
}

fn corrupt(err: CorruptValue) -> ApiError {
    ApiError::CorruptData {
        key: err.key.clone(),
        detail: err.to_string(),
    }
}

fn get_many(
    reader: &mut impl Reader,
    target: &Target,
    keys: &[String],
) -> Result<Vec<Option<Vec<u8>>>, ApiError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    reader
        .get_many(target, keys)
        .map_err(|source| ApiError::Store {
            operation: StoreOperation::GetMany {
                first_key: keys[0].clone(),
                count: keys.len(),
            },
            source,
        })
}

fn list_error(target: &Target, source: StoreError) -> ApiError {
    ApiError::Store {
        operation: StoreOperation::ListKeys {
            bucket: target.bucket().into_owned(),
        },
        source,
    }
}

fn short_answer(keys: &[String], got: usize) -> ApiError {
    ApiError::Store {
        operation: StoreOperation::GetMany {
            first_key: keys.first().cloned().unwrap_or_default(),
            count: keys.len(),
        },
        source: StoreError::new(format!(
            "the store answered {got} entries for {} keys; expected one per key",
            keys.len()
        )),
    }
}

fn decode_reading(key: &str, bytes: &[u8]) -> Result<IngestReading, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| ApiError::CorruptData {
        key: key.to_owned(),
        detail: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Verdict;
    use crate::summary::{Applied, RejectionNote};
    use crate::test_support::Executor;

    /// Ingest's loop over maps ([`Executor`]), read through [`Reader`]; `fail` makes
    /// one kind of call fail.
    #[derive(Default)]
    struct Maps {
        executor: Executor,
        fail: Option<&'static str>,
    }

    impl Maps {
        fn check(&self, op: &str) -> Result<(), StoreError> {
            match self.fail {
                Some(failing) if failing == op => Err(StoreError::new("connection refused")),
                _ => Ok(()),
            }
        }

        /// Ingest's handling of `payload` posted over HTTP, every reading accepted.
        fn ingest(&mut self, payload: &str) {
            for part in crate::post::split_post(payload.as_bytes()) {
                let summary = self
                    .executor
                    .handle(&part.subject, &part.body, |_| Verdict::Accepted(None));
                assert_eq!(summary.rejected, 0, "{summary:?}");
            }
        }
    }

    impl Reader for Maps {
        fn get(&mut self, target: &Target, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.check("get")?;
            Ok(self.executor.get(target, key).cloned())
        }

        fn get_many(
            &mut self,
            target: &Target,
            keys: &[String],
        ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            self.check("get_many")?;
            keys.iter()
                .map(|key| Reader::get(self, target, key))
                .collect()
        }

        fn list_keys(
            &mut self,
            target: &Target,
            cursor: Option<u64>,
        ) -> Result<KeyPage, StoreError> {
            self.check("list_keys")?;
            // Two keys a page, to exercise paging.
            let keys: Vec<String> = self
                .executor
                .stores
                .get(target)
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default();
            let start = cursor.map_or(0, |c| c as usize);
            let end = (start + 2).min(keys.len());
            Ok(KeyPage {
                keys: keys[start..end].to_vec(),
                cursor: (end < keys.len()).then_some(end as u64),
            })
        }
    }

    fn reading(id: &str, device: &str, metric: &str, value: f64) -> String {
        format!(
            r#"{{"id":"{id}","device":"{device}","metric":"{metric}","value":{value},"ts":"2026-11-20T10:00:00Z"}}"#
        )
    }

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).unwrap()
    }

    fn sample() -> Maps {
        let mut maps = Maps::default();
        maps.ingest(&format!(
            "[{},{},{},{},{}]",
            reading("a", "thermo-17", "temperature_c", 21.5),
            reading("b", "thermo-17", "temperature_c", -2.25),
            reading("c", "thermo-17", "humidity_pct", 40.0),
            reading("d", "lab.3", "temperature_c", 19.0),
            reading("e", "z-9", "battery_v", 3.7),
        ));
        maps
    }

    #[test]
    fn lists_every_device_sorted_with_its_count() {
        let mut maps = sample();
        let list = list_devices(&mut maps).unwrap();
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"devices":[{"device":"lab.3","count":1},{"device":"thermo-17","count":3},{"device":"z-9","count":1}],"more":false}"#
        );
        assert_eq!(
            list_devices(&mut Maps::default()).unwrap().devices,
            Vec::new()
        );
    }

    #[test]
    fn detail_has_latest_and_exact_stats_per_metric() {
        let mut maps = sample();
        let detail = device_detail(&mut maps, device("thermo-17")).unwrap();
        assert_eq!(detail.count, 3);
        assert_eq!(
            detail.metrics.keys().collect::<Vec<_>>(),
            ["humidity_pct", "temperature_c"]
        );
        let temperature = &detail.metrics["temperature_c"];
        assert_eq!(temperature.latest.as_ref().unwrap().id().as_str(), "b");
        assert_eq!(
            temperature.stats,
            Some(StatsView {
                count: 2,
                min: Some(-2.25),
                max: Some(21.5),
                sum: 19.25,
                mean: 9.625
            })
        );
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json["metrics"]["humidity_pct"]["latest"]["value"], 40.0);
        assert_eq!(json["metrics"]["humidity_pct"]["stats"]["count"], 1);
    }

    #[test]
    fn history_is_newest_first_with_sequence_numbers_and_limited() {
        let mut maps = sample();
        let all = history(&mut maps, device("thermo-17"), 10).unwrap();
        let seen: Vec<(u64, &str)> = all
            .readings
            .iter()
            .map(|entry| (entry.seq, entry.reading.id().as_str()))
            .collect();
        assert_eq!(seen, [(3, "c"), (2, "b"), (1, "a")]);
        let json = serde_json::to_value(&all.readings[0]).unwrap();
        assert_eq!(json["seq"], 3);
        assert_eq!(json["id"], "c");
        assert_eq!(json["metric"], "humidity_pct");

        let last = history(&mut maps, device("thermo-17"), 2).unwrap();
        assert_eq!(last.readings.len(), 2);
        assert_eq!(last.readings[1].seq, 2);
    }

    #[test]
    fn history_skips_gaps() {
        let mut maps = sample();
        let gap = crate::keys::reading_key(&device("thermo-17"), 2);
        maps.executor
            .stores
            .get_mut(&Target::Archive)
            .unwrap()
            .remove(&gap);
        let seqs: Vec<u64> = history(&mut maps, device("thermo-17"), 10)
            .unwrap()
            .readings
            .iter()
            .map(|entry| entry.seq)
            .collect();
        assert_eq!(seqs, [3, 1]);
    }

    #[test]
    fn unknown_devices_are_404_and_nothing_is_created() {
        let mut maps = sample();
        let before = maps.executor.stores.clone();
        for err in [
            device_detail(&mut maps, device("ghost")).unwrap_err(),
            history(&mut maps, device("ghost"), 5).unwrap_err(),
        ] {
            assert_eq!(err.status(), 404);
            assert!(err.to_string().contains("\"ghost\""), "{err}");
        }
        assert_eq!(maps.executor.stores, before);
    }

    #[test]
    fn store_failures_are_503_naming_the_operation() {
        for (op, expected) in [
            ("list_keys", "list the keys of bucket \"neongrid-devices\""),
            ("get_many", "get 3 keys starting with `device/lab.3/count`"),
        ] {
            let mut maps = sample();
            maps.fail = Some(op);
            let err = list_devices(&mut maps).unwrap_err();
            assert_eq!(err.status(), 503);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let mut maps = sample();
        maps.fail = Some("get_many");
        let err = history(&mut maps, device("thermo-17"), 5).unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(
            err.to_string().contains(
                "get 3 keys starting with `device/thermo-17/reading/00000000000000000003`"
            ),
            "{err}"
        );
    }

    #[test]
    fn corrupt_stored_readings_are_500_naming_the_key() {
        let mut maps = sample();
        let key = latest_key(
            &device("z-9"),
            &telemetry_domain::MetricName::parse("battery_v").unwrap(),
        );
        maps.executor.set(&Target::Hot, key.clone(), b"{".to_vec());
        let err = device_detail(&mut maps, device("z-9")).unwrap_err();
        assert_eq!(err.status(), 500);
        assert!(err.to_string().contains(&key), "{err}");
    }

    fn rejected(index: Option<usize>, code: &str, retryable: bool) -> Applied {
        Applied::Rejected(RejectionNote {
            index,
            code: code.into(),
            reason: format!("because {code}"),
            retryable,
        })
    }

    #[test]
    fn a_post_is_ok_unless_every_reading_was_refused() {
        let mut partly = Summary::default();
        partly.record(Applied::Stored { alerted: false });
        partly.record(rejected(Some(1), "out_of_range", false));
        assert_eq!(post_outcome(partly.clone()), Ok(partly));

        let mut duplicate = Summary::default();
        duplicate.record(Applied::Duplicate);
        assert!(post_outcome(duplicate).is_ok());

        let status = |applied: Vec<Applied>| {
            let mut summary = Summary::default();
            applied.into_iter().for_each(|a| summary.record(a));
            post_outcome(summary).unwrap_err().status()
        };
        assert_eq!(status(vec![rejected(None, "out_of_range", false)]), 422);
        assert_eq!(status(vec![rejected(None, "not_json", false)]), 400);
        assert_eq!(status(vec![rejected(None, "too_large", false)]), 413);
        assert_eq!(
            status(vec![rejected(None, "validator_unavailable", true)]),
            503
        );
        assert_eq!(
            status(vec![
                rejected(Some(0), "missing_field", false),
                rejected(Some(1), "out_of_range", false)
            ]),
            422
        );
    }

    #[test]
    fn a_refused_post_carries_every_reason_and_the_summary() {
        let mut summary = Summary::default();
        summary.record(rejected(Some(0), "missing_field", false));
        summary.record(rejected(Some(1), "out_of_range", false));
        let err = post_outcome(summary.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 of 2 readings rejected: reading 0: because missing_field; reading 1: because out_of_range"
        );
        let body = err.body();
        assert_eq!(
            serde_json::from_value::<Summary>(body.summary.unwrap()).unwrap(),
            summary
        );
    }

    #[test]
    fn replies_that_are_not_summaries_are_bad_gateway() {
        let summary = Summary::default();
        assert_eq!(parse_reply(&summary.to_bytes()), Ok(summary));
        let err = parse_reply(b"oops").unwrap_err();
        assert_eq!(err.status(), 502);
        assert!(err.to_string().contains("oops"), "{err}");
    }

    #[test]
    fn the_api_takes_exactly_the_messages_ingest_takes() {
        assert_eq!(
            telemetry_domain::MAX_BODY_BYTES,
            crate::MAX_MESSAGE_BYTES,
            "a POST is passed on to ingest whole"
        );
        assert_eq!(
            telemetry_domain::routes::MAX_HISTORY_LIMIT,
            crate::MAX_HISTORY_LIMIT
        );
    }
}
