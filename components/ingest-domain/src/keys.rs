//! Where ingest keeps its data: the key layout of both links, as named
//! constants and the functions that build every key. The crate docs show the
//! layout as a table.
//!
//! Hot and archive keys never coincide (they end in different segments), so
//! both links may point at one store and one bucket without clobbering each
//! other, as they do on a development lattice with a single memory provider.

use telemetry_domain::{DeviceId, MetricName};

use crate::lock::TicketLock;
use crate::reading_id::ReadingId;

/// The bucket both links open for everything but the indexes below.
pub const BUCKET: &str = "neongrid";

/// Start of every per-device key in [`BUCKET`], `device/<id>/…`.
pub const DEVICE_KEY_PREFIX: &str = "device/";

/// The device index: a bucket of its own on the hot link, whose keys are
/// exactly the device ids.
///
/// A bucket of its own because `wasi:keyvalue` `list-keys` has no prefix
/// filter: `devices/<id>` keys in [`BUCKET`] could only be found by paging
/// through every key there, `seen/` keys included, which grow with every
/// reading ever stored. Listing this bucket costs one page per 1000 devices.
pub const DEVICES_BUCKET: &str = "neongrid-devices";

/// The value of a device-index or metric-index entry; only the key's presence matters.
pub const INDEX_MARKER: &[u8] = b"1";

/// Start of a device's metric index, `neongrid-metrics/<id>`: a bucket per
/// device on the hot link, whose keys are exactly the metrics the device has
/// sent. A bucket of its own per device for the reason [`DEVICES_BUCKET`] is
/// one: `list-keys` has no prefix filter, and one shared bucket would make
/// every device query page through every device's metrics.
pub const METRICS_BUCKET_PREFIX: &str = "neongrid-metrics/";

/// The link name of the hot store: latest readings, counters, stats and the
/// idempotency marks, all small and overwritten or incremented in place.
pub const HOT_LINK: &str = "hot";

/// The link name of the durable store: every stored reading, by sequence number.
pub const ARCHIVE_LINK: &str = "archive";

/// Segment before the metric in `device/<id>/latest/<metric>`.
pub const LATEST_SEGMENT: &str = "latest";

/// Segment before the metric in `device/<id>/stats/<metric>/…`.
pub const STATS_SEGMENT: &str = "stats";

/// Last segments of the per-metric stats keys.
pub const STATS_COUNT: &str = "count";
pub const STATS_SUM: &str = "sum";
/// The two sign counters the sum was kept in before it became one signed
/// value; read only, for a sum that was never written as one ([`crate::stats`]).
pub const STATS_SUM_POS: &str = "sum_pos";
pub const STATS_SUM_NEG: &str = "sum_neg";
pub const STATS_MIN: &str = "min";
pub const STATS_MAX: &str = "max";

/// Last segments of the device lock's two counters, `device/<id>/lock/…`.
pub const LOCK_TICKET: &str = "lock/ticket";
pub const LOCK_SERVING: &str = "lock/serving";

/// Start of every idempotency mark, `seen/<device>/<reading id>`.
pub const SEEN_PREFIX: &str = "seen/";

/// Last segment of the archive's sequence counter, `device/<id>/seq`.
pub const SEQ_SEGMENT: &str = "seq";

/// Segment before the sequence number in `device/<id>/reading/<n>`.
pub const READING_SEGMENT: &str = "reading";

/// Digits of a sequence number in a reading key: `u64::MAX` has 20, so
/// zero-padding to 20 makes key order (byte order, as some stores list keys)
/// the same as sequence order.
pub const SEQ_DIGITS: usize = 20;

/// Most readings [`history_keys`] asks for at once, so one history query stays
/// one bounded batch-get: the HTTP API's largest `limit`.
pub const MAX_HISTORY_LIMIT: usize = telemetry_domain::routes::MAX_HISTORY_LIMIT;

/// `device/<id>/count`: readings stored for the device, decimal ASCII; also the
/// last sequence number handed out, as every stored reading takes the next one.
pub fn device_count_key(device: &DeviceId) -> String {
    format!("{DEVICE_KEY_PREFIX}{device}/count")
}

/// `neongrid-metrics/<id>`: the bucket of the device's metric index.
pub fn metrics_bucket(device: &DeviceId) -> String {
    format!("{METRICS_BUCKET_PREFIX}{device}")
}

/// `device/<id>/latest/<metric>`: the device's latest reading of the metric,
/// as the JSON of an [`IngestReading`](crate::IngestReading). Last writer wins,
/// which is not necessarily the newest `ts`.
pub fn latest_key(device: &DeviceId, metric: &MetricName) -> String {
    format!("{DEVICE_KEY_PREFIX}{device}/{LATEST_SEGMENT}/{metric}")
}

/// `device/<id>/lock/ticket` and `…/lock/serving`: the [`crate::lock`] that
/// serialises the device's readings.
pub fn device_lock(device: &DeviceId) -> TicketLock {
    TicketLock {
        ticket: format!("{DEVICE_KEY_PREFIX}{device}/{LOCK_TICKET}"),
        serving: format!("{DEVICE_KEY_PREFIX}{device}/{LOCK_SERVING}"),
    }
}

/// The keys of one device's statistics of one metric, all written together
/// under the device lock ([`crate::stats`] has their encodings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsKeys {
    /// `device/<id>/stats/<metric>/count`: readings, decimal ASCII.
    pub count: String,
    /// `…/sum`: sum of the values in micro-units, signed decimal ASCII.
    pub sum: String,
    /// `…/sum_pos` and `…/sum_neg`: the sum's sign counters of earlier
    /// versions; read only while `sum` is missing.
    pub sum_pos: String,
    pub sum_neg: String,
    /// `…/min`: the smallest value as a JSON number.
    pub min: String,
    /// `…/max`: the largest value as a JSON number.
    pub max: String,
}

impl StatsKeys {
    pub fn new(device: &DeviceId, metric: &MetricName) -> Self {
        let base = format!("{DEVICE_KEY_PREFIX}{device}/{STATS_SEGMENT}/{metric}/");
        Self {
            count: format!("{base}{STATS_COUNT}"),
            sum: format!("{base}{STATS_SUM}"),
            sum_pos: format!("{base}{STATS_SUM_POS}"),
            sum_neg: format!("{base}{STATS_SUM_NEG}"),
            min: format!("{base}{STATS_MIN}"),
            max: format!("{base}{STATS_MAX}"),
        }
    }

    /// The keys to read, in the order [`MetricStats::decode`](crate::stats::MetricStats::decode) takes their values.
    pub fn read_keys(&self) -> [String; 6] {
        [
            self.count.clone(),
            self.sum.clone(),
            self.sum_pos.clone(),
            self.sum_neg.clone(),
            self.min.clone(),
            self.max.clone(),
        ]
    }
}

/// `seen/<device>/<reading id>`: the done mark, the reading's sequence number
/// in decimal ASCII, set in the same atomic write that counts the reading. Scoped by device so that ids need only be unique
/// per device, and one device can't suppress another's readings by reusing
/// their ids.
pub fn seen_key(device: &DeviceId, id: &ReadingId) -> String {
    format!("{SEEN_PREFIX}{device}/{id}")
}

/// The device's key in [`DEVICES_BUCKET`]: the bare id.
pub fn device_index_key(device: &DeviceId) -> String {
    device.as_str().to_owned()
}

/// `device/<id>/seq` on the archive link: the sequence number of the reading
/// archived last, decimal ASCII, set together with that reading.
pub fn seq_key(device: &DeviceId) -> String {
    format!("{DEVICE_KEY_PREFIX}{device}/{SEQ_SEGMENT}")
}

/// `device/<id>/reading/<seq, 20 digits>` on the archive link: the reading
/// with that sequence number, as the JSON of an [`IngestReading`](crate::IngestReading).
pub fn reading_key(device: &DeviceId, seq: u64) -> String {
    format!(
        "{DEVICE_KEY_PREFIX}{device}/{READING_SEGMENT}/{seq:0width$}",
        width = SEQ_DIGITS
    )
}

/// The reading keys of the device's last `limit` readings, newest first, given
/// the last sequence number archived (`last_seq`, the value of [`seq_key`]). `limit` is capped at [`MAX_HISTORY_LIMIT`]; fewer keys
/// come back when the device has fewer readings.
///
/// Every key up to `last_seq` has a value when ingest wrote it; readers still
/// skip missing entries, as the archive may have been pruned or written by an
/// earlier version that could leave gaps.
pub fn history_keys(device: &DeviceId, last_seq: u64, limit: usize) -> Vec<String> {
    let limit = limit.min(MAX_HISTORY_LIMIT);
    (1..=last_seq)
        .rev()
        .take(limit)
        .map(|seq| reading_key(device, seq))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).unwrap()
    }

    fn metric(name: &str) -> MetricName {
        MetricName::parse(name).unwrap()
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let d = device("thermo-17");
        let m = metric("temperature_c");
        assert_eq!(BUCKET, "neongrid");
        assert_eq!(device_count_key(&d), "device/thermo-17/count");
        assert_eq!(latest_key(&d, &m), "device/thermo-17/latest/temperature_c");
        let stats = StatsKeys::new(&d, &m);
        assert_eq!(stats.count, "device/thermo-17/stats/temperature_c/count");
        assert_eq!(stats.sum, "device/thermo-17/stats/temperature_c/sum");
        assert_eq!(
            stats.sum_pos,
            "device/thermo-17/stats/temperature_c/sum_pos"
        );
        assert_eq!(
            stats.sum_neg,
            "device/thermo-17/stats/temperature_c/sum_neg"
        );
        assert_eq!(stats.min, "device/thermo-17/stats/temperature_c/min");
        assert_eq!(stats.max, "device/thermo-17/stats/temperature_c/max");
        let lock = device_lock(&d);
        assert_eq!(lock.ticket, "device/thermo-17/lock/ticket");
        assert_eq!(lock.serving, "device/thermo-17/lock/serving");
        let id = ReadingId::parse("r-1").unwrap();
        assert_eq!(seen_key(&d, &id), "seen/thermo-17/r-1");
        assert_eq!(device_index_key(&d), "thermo-17");
        assert_eq!(metrics_bucket(&d), "neongrid-metrics/thermo-17");
        assert_eq!(seq_key(&d), "device/thermo-17/seq");
        assert_eq!(
            reading_key(&d, 42),
            "device/thermo-17/reading/00000000000000000042"
        );
        assert_eq!(
            reading_key(&d, u64::MAX),
            "device/thermo-17/reading/18446744073709551615"
        );
    }

    #[test]
    fn reading_keys_sort_in_sequence_order() {
        let d = device("d");
        let mut keys: Vec<String> = [1, 9, 10, 99, 100, 12345, u64::MAX]
            .iter()
            .map(|&seq| reading_key(&d, seq))
            .collect();
        let in_sequence_order = keys.clone();
        keys.sort();
        assert_eq!(keys, in_sequence_order);
    }

    #[test]
    fn history_is_newest_first_and_bounded() {
        let d = device("d");
        assert_eq!(
            history_keys(&d, 5, 3),
            vec![reading_key(&d, 5), reading_key(&d, 4), reading_key(&d, 3)]
        );
        assert_eq!(history_keys(&d, 2, 10).len(), 2);
        assert_eq!(history_keys(&d, 2, 10)[1], reading_key(&d, 1));
        assert!(history_keys(&d, 0, 10).is_empty());
        assert!(history_keys(&d, 10, 0).is_empty());
        let capped = history_keys(&d, u64::MAX, usize::MAX);
        assert_eq!(capped.len(), MAX_HISTORY_LIMIT);
        assert_eq!(capped[0], reading_key(&d, u64::MAX));
    }

    #[test]
    fn no_two_keys_coincide_across_devices_metrics_and_links() {
        // Ids chosen to be prefixes of one another or differ only by separators.
        let devices = ["a", "a-b", "a.b", "ab", "seen", "count"].map(device);
        let metrics = ["count", "t", "t_c", "latest", "seq", "lock", "sum"].map(metric);
        let id = ReadingId::parse("count").unwrap();
        let mut all = HashSet::new();
        let mut total = 0;
        for d in &devices {
            let lock = device_lock(d);
            let mut keys = vec![
                device_count_key(d),
                seen_key(d, &id),
                seq_key(d),
                reading_key(d, 1),
                lock.ticket,
                lock.serving,
            ];
            for m in &metrics {
                let stats = StatsKeys::new(d, m);
                keys.extend([
                    latest_key(d, m),
                    stats.count,
                    stats.sum,
                    stats.sum_pos,
                    stats.sum_neg,
                    stats.min,
                    stats.max,
                ]);
            }
            total += keys.len();
            all.extend(keys);
        }
        assert_eq!(all.len(), total, "some keys coincide");
    }
}
