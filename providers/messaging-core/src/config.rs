//! Typed configuration of one durable subscription, read from the string map a link
//! carries. Every key is a named constant and every number has explicit bounds.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::ConfigError;
use crate::subject::SubjectPattern;

/// Comma-separated NATS URLs (the builtin provider's key, so a manifest swaps providers
/// without renaming it).
pub const CONFIG_CLUSTER_URIS: &str = "cluster_uris";
/// Core NATS subscriptions, as the builtin provider reads them: comma-separated
/// `<subject>[|<queue group>]`. Delivered at most once, without a stream.
pub const CONFIG_SUBSCRIPTIONS: &str = "subscriptions";
/// Name of the stream that captures the subjects (the device's durable receipt names it).
pub const CONFIG_STREAM: &str = "stream";
/// Comma-separated subject patterns the stream captures, each `<tokens>.*` or `<tokens>.>`.
pub const CONFIG_SUBJECTS: &str = "subjects";
/// How many partitions share the keys out; part of the stream definition.
pub const CONFIG_PARTITIONS: &str = "partitions";
/// Durable consumer name; partition `p` is consumed by `<consumer>-<p>`.
pub const CONFIG_CONSUMER: &str = "consumer";
/// How long JetStream waits for an acknowledgement before it delivers again.
pub const CONFIG_ACK_WAIT_MS: &str = "ack_wait_ms";
/// Attempts before a message goes to the dead-letter subject.
pub const CONFIG_MAX_DELIVER: &str = "max_deliver";
/// Comma-separated delays before attempt 2, 3, ...; the last one repeats.
pub const CONFIG_BACKOFF_MS: &str = "backoff_ms";
/// Where a message goes after `max_deliver` failed attempts.
pub const CONFIG_DEAD_LETTER_SUBJECT: &str = "dead_letter_subject";
/// Stream replicas: 1, or 3 or 5 on a cluster. Unset, a new stream gets 1 and an existing
/// one keeps its own, so that an operator's (or scripts/lattice.sh's) choice stands.
pub const CONFIG_REPLICAS: &str = "replicas";
/// How long JetStream remembers a `Nats-Msg-Id` to drop a repeated publish.
pub const CONFIG_DEDUP_WINDOW_MS: &str = "dedup_window_ms";
/// How long the stream keeps what it received (the receipts' history).
pub const CONFIG_MAX_AGE_S: &str = "max_age_s";
/// `file` (durable) or `memory`.
pub const CONFIG_STORAGE: &str = "storage";
/// How long one handler call may take before it counts as a failed attempt.
pub const CONFIG_HANDLER_TIMEOUT_MS: &str = "handler_timeout_ms";

pub const DEFAULT_CLUSTER_URI: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_PARTITIONS: u32 = 16;
pub const MAX_PARTITIONS: u32 = 256;
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const ACK_WAIT_RANGE_MS: (u64, u64) = (1_000, 3_600_000);
pub const DEFAULT_MAX_DELIVER: u32 = 5;
pub const MAX_DELIVER_LIMIT: u32 = 100;
pub const DEFAULT_BACKOFF_MS: &[u64] = &[1_000, 5_000, 30_000];
pub const MAX_BACKOFF_STEPS: usize = 32;
pub const MAX_BACKOFF_MS: u64 = 3_600_000;
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);
pub const DEDUP_WINDOW_RANGE_MS: (u64, u64) = (1_000, 86_400_000);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);
pub const MAX_AGE_RANGE_S: (u64, u64) = (60, 31 * 86_400);
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
pub const HANDLER_TIMEOUT_RANGE_MS: (u64, u64) = (100, 3_600_000);
pub const MAX_SUBJECTS: usize = 16;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_CLUSTER_URIS: usize = 16;
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// How many core NATS messages one link hands to its handler at once.
pub const CORE_IN_FLIGHT: usize = 64;

/// One core NATS subscription of [`CONFIG_SUBSCRIPTIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSubscription {
    pub subject: String,
    pub queue_group: Option<String>,
}

/// The core NATS subscriptions a link asks for (none when the key is absent).
pub fn core_subscriptions(
    values: &HashMap<String, String>,
) -> Result<Vec<CoreSubscription>, ConfigError> {
    let Some(raw) = values.get(CONFIG_SUBSCRIPTIONS) else {
        return Ok(Vec::new());
    };
    let expected = || {
        format!(
            "up to {MAX_SUBSCRIPTIONS} comma-separated `<subject>[|<queue group>]`, subjects of \
             dot-separated tokens (`*` and a final `>` allowed), queue groups without spaces"
        )
    };
    let mut subscriptions = Vec::new();
    for entry in split_list(raw) {
        let (subject, queue_group) = match entry.split_once('|') {
            Some((subject, group)) => (subject.trim(), Some(group.trim())),
            None => (entry, None),
        };
        let tokens: Vec<&str> = subject.split('.').collect();
        let subject_ok = tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.bytes().any(|b| b.is_ascii_whitespace())
                && (*t == "*" || (*t == ">" && i == tokens.len() - 1) || !t.contains(['*', '>']))
        });
        let group_ok = queue_group
            .is_none_or(|g| !g.is_empty() && !g.bytes().any(|b| b.is_ascii_whitespace()));
        if !subject_ok || !group_ok {
            return Err(ConfigError::invalid(CONFIG_SUBSCRIPTIONS, raw, expected()));
        }
        subscriptions.push(CoreSubscription {
            subject: subject.to_string(),
            queue_group: queue_group.map(str::to_string),
        });
    }
    if subscriptions.len() > MAX_SUBSCRIPTIONS {
        return Err(ConfigError::invalid(CONFIG_SUBSCRIPTIONS, raw, expected()));
    }
    Ok(subscriptions)
}

/// Where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    File,
    Memory,
}

/// Everything one durable subscription needs: the stream layout, the consumers and the
/// delivery rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub cluster_uris: Vec<String>,
    pub stream: String,
    pub subjects: Vec<SubjectPattern>,
    pub partitions: u32,
    pub consumer: String,
    pub ack_wait: Duration,
    pub max_deliver: u32,
    pub backoff: Vec<Duration>,
    pub dead_letter_subject: String,
    pub replicas: Option<usize>,
    pub dedup_window: Duration,
    pub max_age: Duration,
    pub storage: Storage,
    pub handler_timeout: Duration,
}

/// The NATS servers named by [`CONFIG_CLUSTER_URIS`], or the loopback default.
pub fn cluster_uris(values: &HashMap<String, String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = values.get(CONFIG_CLUSTER_URIS) else {
        return Ok(vec![DEFAULT_CLUSTER_URI.to_string()]);
    };
    let uris: Vec<String> = split_list(raw).map(str::to_string).collect();
    if uris.is_empty() || uris.len() > MAX_CLUSTER_URIS {
        return Err(ConfigError::invalid(
            CONFIG_CLUSTER_URIS,
            raw,
            format!("1 to {MAX_CLUSTER_URIS} comma-separated nats:// URLs"),
        ));
    }
    Ok(uris)
}

impl DeliveryConfig {
    /// Reads the configuration; a missing required key or a value out of bounds is an error
    /// that names the key, the value and what was expected.
    pub fn from_map(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let stream = name(values, CONFIG_STREAM)?;
        let consumer = name(values, CONFIG_CONSUMER)?;
        let subjects_raw = required(values, CONFIG_SUBJECTS)?;
        let subjects = split_list(subjects_raw)
            .map(|s| {
                SubjectPattern::parse(s).map_err(|why| {
                    ConfigError::invalid(CONFIG_SUBJECTS, subjects_raw, why.to_string())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if subjects.is_empty() || subjects.len() > MAX_SUBJECTS {
            return Err(ConfigError::invalid(
                CONFIG_SUBJECTS,
                subjects_raw,
                format!("1 to {MAX_SUBJECTS} comma-separated subject patterns"),
            ));
        }
        let dead_letter_subject = required(values, CONFIG_DEAD_LETTER_SUBJECT)?.trim();
        if !crate::subject::is_literal_subject(dead_letter_subject) {
            return Err(ConfigError::invalid(
                CONFIG_DEAD_LETTER_SUBJECT,
                dead_letter_subject,
                "a literal NATS subject (dot-separated tokens, no wildcards or spaces)",
            ));
        }
        if subjects.iter().any(|s| s.matches(dead_letter_subject)) {
            return Err(ConfigError::invalid(
                CONFIG_DEAD_LETTER_SUBJECT,
                dead_letter_subject,
                "a subject outside the stream's own subjects (a dead letter would be delivered again)",
            ));
        }
        let backoff = match values.get(CONFIG_BACKOFF_MS) {
            None => DEFAULT_BACKOFF_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            Some(raw) => {
                let steps = split_list(raw)
                    .map(|step| step.parse::<u64>().ok().filter(|ms| *ms <= MAX_BACKOFF_MS))
                    .collect::<Option<Vec<u64>>>();
                match steps {
                    Some(steps) if !steps.is_empty() && steps.len() <= MAX_BACKOFF_STEPS => {
                        steps.into_iter().map(Duration::from_millis).collect()
                    }
                    _ => {
                        return Err(ConfigError::invalid(
                            CONFIG_BACKOFF_MS,
                            raw,
                            format!(
                                "1 to {MAX_BACKOFF_STEPS} comma-separated delays in milliseconds, \
                                 each at most {MAX_BACKOFF_MS}"
                            ),
                        ))
                    }
                }
            }
        };
        let storage = match values.get(CONFIG_STORAGE).map(|s| s.trim()) {
            None | Some("file") => Storage::File,
            Some("memory") => Storage::Memory,
            Some(other) => {
                return Err(ConfigError::invalid(
                    CONFIG_STORAGE,
                    other,
                    "\"file\" or \"memory\"",
                ))
            }
        };
        let replicas = match values.get(CONFIG_REPLICAS) {
            None => None,
            Some(_) => Some(number(values, CONFIG_REPLICAS, 1, (1, 5))? as usize),
        };
        Ok(Self {
            cluster_uris: cluster_uris(values)?,
            stream,
            subjects,
            partitions: number(
                values,
                CONFIG_PARTITIONS,
                DEFAULT_PARTITIONS.into(),
                (1, MAX_PARTITIONS.into()),
            )? as u32,
            consumer,
            ack_wait: millis(
                values,
                CONFIG_ACK_WAIT_MS,
                DEFAULT_ACK_WAIT,
                ACK_WAIT_RANGE_MS,
            )?,
            max_deliver: number(
                values,
                CONFIG_MAX_DELIVER,
                DEFAULT_MAX_DELIVER.into(),
                (1, MAX_DELIVER_LIMIT.into()),
            )? as u32,
            backoff,
            dead_letter_subject: dead_letter_subject.to_string(),
            replicas,
            dedup_window: millis(
                values,
                CONFIG_DEDUP_WINDOW_MS,
                DEFAULT_DEDUP_WINDOW,
                DEDUP_WINDOW_RANGE_MS,
            )?,
            max_age: Duration::from_secs(number(
                values,
                CONFIG_MAX_AGE_S,
                DEFAULT_MAX_AGE.as_secs(),
                MAX_AGE_RANGE_S,
            )?),
            storage,
            handler_timeout: millis(
                values,
                CONFIG_HANDLER_TIMEOUT_MS,
                DEFAULT_HANDLER_TIMEOUT,
                HANDLER_TIMEOUT_RANGE_MS,
            )?,
        })
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed.
    pub fn backoff_after(&self, attempt: u64) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff[index.min(self.backoff.len() - 1)]
    }

    /// Whether the stream captures everything a core subscription to `subject` (a subject
    /// or a pattern) would receive, so that the subscription would only deliver it twice.
    pub fn covers(&self, subject: &str) -> bool {
        self.subjects
            .iter()
            .any(|pattern| pattern.to_string() == subject)
            || (crate::subject::is_literal_subject(subject) && self.captures(subject))
    }

    /// Whether a publish on `subject` lands in this configuration's stream.
    pub fn captures(&self, subject: &str) -> bool {
        self.subjects.iter().any(|pattern| pattern.matches(subject))
    }
}

fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn required<'a>(
    values: &'a HashMap<String, String>,
    key: &'static str,
) -> Result<&'a str, ConfigError> {
    match values.get(key) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { key }),
    }
}

/// A stream or consumer name: JetStream allows these characters in both.
fn name(values: &HashMap<String, String>, key: &'static str) -> Result<String, ConfigError> {
    let value = required(values, key)?.trim();
    let valid = value.len() <= MAX_NAME_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ConfigError::invalid(
            key,
            value,
            format!("1 to {MAX_NAME_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"),
        ));
    }
    Ok(value.to_string())
}

fn number(
    values: &HashMap<String, String>,
    key: &'static str,
    default: u64,
    (low, high): (u64, u64),
) -> Result<u64, ConfigError> {
    let Some(raw) = values.get(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(ConfigError::invalid(
            key,
            raw,
            format!("a whole number from {low} to {high}"),
        )),
    }
}

fn millis(
    values: &HashMap<String, String>,
    key: &'static str,
    default: Duration,
    range: (u64, u64),
) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    number(values, key, default_ms, range).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> HashMap<String, String> {
        map(&[
            (CONFIG_STREAM, "READINGS"),
            (CONFIG_SUBJECTS, "neongrid.readings.>"),
            (CONFIG_CONSUMER, "ingest"),
            (CONFIG_DEAD_LETTER_SUBJECT, "neongrid.dead"),
        ])
    }

    #[test]
    fn defaults_fill_everything_but_the_names() {
        let config = DeliveryConfig::from_map(&minimal()).unwrap();
        assert_eq!(config.cluster_uris, vec![DEFAULT_CLUSTER_URI.to_string()]);
        assert_eq!(config.partitions, DEFAULT_PARTITIONS);
        assert_eq!(config.max_deliver, DEFAULT_MAX_DELIVER);
        assert_eq!(config.ack_wait, DEFAULT_ACK_WAIT);
        assert_eq!(config.storage, Storage::File);
        assert_eq!(config.backoff_after(1), Duration::from_secs(1));
        assert_eq!(config.backoff_after(3), Duration::from_secs(30));
        assert_eq!(config.backoff_after(99), Duration::from_secs(30));
        assert!(config.captures("neongrid.readings.lab.3"));
        assert!(!config.captures("neongrid.alerts.lab"));
        assert!(config.covers("neongrid.readings.>"));
        assert!(config.covers("neongrid.readings.x"));
        assert!(!config.covers("neongrid.ingest"));
        assert!(!config.covers("neongrid.>"));
    }

    #[test]
    fn core_subscriptions_read_as_the_builtin_provider_writes_them() {
        let values = map(&[(CONFIG_SUBSCRIPTIONS, "a.>|g, b.*.c ,plain")]);
        let subs = core_subscriptions(&values).unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(subs[0].subject, "a.>");
        assert_eq!(subs[0].queue_group.as_deref(), Some("g"));
        assert_eq!(subs[1].subject, "b.*.c");
        assert_eq!(subs[2].queue_group, None);
        assert!(core_subscriptions(&HashMap::new()).unwrap().is_empty());
        for bad in ["a.>.b", "a..b", "a b", "a|", "a|g h"] {
            let err = core_subscriptions(&map(&[(CONFIG_SUBSCRIPTIONS, bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("\"subscriptions\""), "{bad}: {err}");
        }
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in [
            CONFIG_STREAM,
            CONFIG_SUBJECTS,
            CONFIG_CONSUMER,
            CONFIG_DEAD_LETTER_SUBJECT,
        ] {
            let mut values = minimal();
            values.remove(key);
            let err = DeliveryConfig::from_map(&values).unwrap_err().to_string();
            assert!(err.contains(&format!("{key:?}")), "{key}: {err}");
        }
    }

    #[test]
    fn values_out_of_bounds_name_the_key_the_value_and_the_range() {
        let cases = [
            (CONFIG_PARTITIONS, "0", "from 1 to 256"),
            (CONFIG_PARTITIONS, "257", "from 1 to 256"),
            (CONFIG_MAX_DELIVER, "many", "from 1 to 100"),
            (CONFIG_ACK_WAIT_MS, "10", "from 1000 to 3600000"),
            (CONFIG_REPLICAS, "7", "from 1 to 5"),
            (CONFIG_BACKOFF_MS, "100,x", "delays in milliseconds"),
            (CONFIG_BACKOFF_MS, "", "delays in milliseconds"),
            (CONFIG_STORAGE, "disk", "\"file\" or \"memory\""),
            (CONFIG_STREAM, "has space", "characters from"),
            (CONFIG_SUBJECTS, "neongrid.readings", "end in"),
            (CONFIG_SUBJECTS, "a.*.b", "end in"),
            (
                CONFIG_DEAD_LETTER_SUBJECT,
                "neongrid.readings.dead",
                "outside the stream",
            ),
            (CONFIG_DEAD_LETTER_SUBJECT, "dead.>", "literal NATS subject"),
        ];
        for (key, value, expected) in cases {
            let mut values = minimal();
            values.insert(key.to_string(), value.to_string());
            let err = DeliveryConfig::from_map(&values).unwrap_err().to_string();
            assert!(err.contains(&format!("{key:?}")), "{key}={value}: {err}");
            assert!(err.contains(expected), "{key}={value}: {err}");
        }
    }
}
