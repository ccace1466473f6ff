//! The validator's config: its keys, their syntax, and parsing them into [`Rules`].
//!
//! Parsing is all or nothing: one bad key makes the whole config an error, and
//! the validator then refuses every reading as misconfigured. Judging with the
//! keys that did parse would silently let through readings of a metric whose
//! rule was mistyped; a loud failure is fixed in one manifest update.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use telemetry_domain::reading::METRIC_RULE;
use telemetry_domain::MetricName;
use thiserror::Error;

use crate::range::{Range, RangeError, Side};

/// Prefix of the keys that hold one metric's rule: `metric.<name>`. Dotted
/// keys need no quoting in YAML, so a rule is one plain line of a manifest.
pub const METRIC_KEY_PREFIX: &str = "metric.";

/// The key of the [`UnknownMetrics`] policy.
pub const UNKNOWN_METRICS_KEY: &str = "unknown_metrics";

/// The key that lists every metric the config has a rule for, e.g.
/// `metrics: temperature_c,humidity_pct`. Required: the host serves a config that is
/// absent (deleted, or not written yet) as an empty one, and one that another writer
/// changes as whatever it holds at that moment, so only a config that carries its own
/// list, and matches it, is known to be whole.
pub const METRICS_KEY: &str = "metrics";

/// Separates the names in the [`METRICS_KEY`] list.
pub const METRICS_SEPARATOR: char = ',';

/// The field of a rule holding the range outside which a reading is refused.
pub const VALID_FIELD: &str = "valid";

/// The field of a rule holding the band of normal values; a valid value
/// outside it is accepted with an alert.
pub const ALERT_FIELD: &str = "alert";

/// Separates the fields of a rule. Not `,`, which some locales write as the
/// decimal mark and which would make a mistyped `12,5` split silently.
pub const FIELD_SEPARATOR: char = ';';

/// Separates a field's name from its range.
pub const FIELD_ASSIGN: char = '=';

/// A complete rule, quoted in errors and documentation.
pub const EXAMPLE_RULE: &str = "valid=-40..85;alert=-10..45";

/// A rule's syntax in words, for error messages.
pub const RULE_SYNTAX: &str = "`valid=LOW..HIGH`, optionally followed by `;alert=LOW..HIGH`, \
     such as \"valid=-40..85;alert=-10..45\" (bounds inclusive, either left out for no limit)";

/// What happens to a reading whose metric has no `metric.<name>` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownMetrics {
    /// The default, so that a metric missing from the config is noticed at
    /// the first reading instead of being stored unchecked.
    #[default]
    Reject,
    /// Accepted without any check but finiteness, e.g. while rules are still
    /// being written for a new device type.
    Accept,
}

impl UnknownMetrics {
    pub const REJECT: &'static str = "reject";
    pub const ACCEPT: &'static str = "accept";

    /// Parses the policy's config value; spaces around it are allowed.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            Self::REJECT => Some(Self::Reject),
            Self::ACCEPT => Some(Self::Accept),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Reject => Self::REJECT,
            Self::Accept => Self::ACCEPT,
        }
    }
}

/// Why the config was refused. Every message names the key, the value where
/// there is one, and what was expected instead.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The host could not hand the config over; there is no key to blame.
    #[error("config could not be read ({detail}); expected the host to serve the validator's runtime config")]
    Unreadable { detail: String },
    #[error(
        "config key `{key}` is not a validator setting; expected `{}`, `{}` or keys of the form `{}<metric>`",
        METRICS_KEY,
        UNKNOWN_METRICS_KEY,
        METRIC_KEY_PREFIX
    )]
    UnknownKey { key: String },
    /// No list of metrics: the config is absent, or not the validator's whole config.
    #[error(
        "config has no `{}` key, so it may be absent, partial or in the middle of an update; \
         expected `{}` to list every metric that has a `{}<metric>` rule, such as \
         `{}: temperature_c,humidity_pct` (empty for none)",
        METRICS_KEY,
        METRICS_KEY,
        METRIC_KEY_PREFIX,
        METRICS_KEY
    )]
    MissingMetricsList,
    #[error(
        "config key `{}` has value {value:?}, whose entry {entry:?} is not a metric name; expected \
         metric names ({}) separated by `{}`, each once",
        METRICS_KEY,
        METRIC_RULE,
        METRICS_SEPARATOR
    )]
    BadMetricsList { value: String, entry: String },
    /// The list and the rules disagree: part of the config is missing, or it mixes two
    /// versions of it.
    #[error(
        "config is incomplete: {}; expected one `{}<metric>` rule for each metric in `{}`, and no other",
        describe_mismatch(.listed_without_rule, .ruled_but_unlisted),
        METRIC_KEY_PREFIX,
        METRICS_KEY
    )]
    Incomplete {
        listed_without_rule: Vec<String>,
        ruled_but_unlisted: Vec<String>,
    },
    #[error("config key `{key}` is given more than once; expected each key once")]
    DuplicateKey { key: String },
    #[error(
        "config key `{key}` names metric {name:?}, which no reading can have; expected `{}` followed by {}",
        METRIC_KEY_PREFIX,
        METRIC_RULE
    )]
    BadMetricName { key: String, name: String },
    #[error(
        "config key `{key}` has value {value:?}; expected `{}` or `{}`",
        UnknownMetrics::REJECT,
        UnknownMetrics::ACCEPT
    )]
    BadPolicy { key: String, value: String },
    #[error("config key `{key}` has value {value:?}, which is not a metric rule: {problem}")]
    BadRule {
        key: String,
        value: String,
        problem: RuleProblem,
    },
}

impl ConfigError {
    /// The key at fault, if the fault is a key's.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Unreadable { .. } | Self::Incomplete { .. } => None,
            Self::MissingMetricsList | Self::BadMetricsList { .. } => Some(METRICS_KEY),
            Self::UnknownKey { key }
            | Self::DuplicateKey { key }
            | Self::BadMetricName { key, .. }
            | Self::BadPolicy { key, .. }
            | Self::BadRule { key, .. } => Some(key),
        }
    }
}

fn describe_mismatch(listed_without_rule: &[String], ruled_but_unlisted: &[String]) -> String {
    let names = |names: &[String]| {
        names
            .iter()
            .map(|name| format!("{name:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !listed_without_rule.is_empty() {
        parts.push(format!(
            "`{METRICS_KEY}` lists {} with no `{METRIC_KEY_PREFIX}<metric>` rule",
            names(listed_without_rule)
        ));
    }
    if !ruled_but_unlisted.is_empty() {
        parts.push(format!(
            "{} {} a rule but {} not in `{METRICS_KEY}`",
            names(ruled_but_unlisted),
            if ruled_but_unlisted.len() == 1 {
                "has"
            } else {
                "have"
            },
            if ruled_but_unlisted.len() == 1 {
                "is"
            } else {
                "are"
            },
        ));
    }
    parts.join("; ")
}

/// Parses the value of [`METRICS_KEY`]: metric names separated by
/// [`METRICS_SEPARATOR`], spaces around them allowed, each once; empty for none.
fn parse_metrics_list(value: &str) -> Result<BTreeSet<String>, ConfigError> {
    let mut listed = BTreeSet::new();
    for entry in value.split(METRICS_SEPARATOR).map(str::trim) {
        if entry.is_empty() && value.trim().is_empty() {
            continue;
        }
        if MetricName::parse(entry).is_err() || !listed.insert(entry.to_owned()) {
            return Err(ConfigError::BadMetricsList {
                value: value.to_owned(),
                entry: entry.to_owned(),
            });
        }
    }
    Ok(listed)
}

/// What is wrong inside one rule's value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleProblem {
    #[error("it has no `{VALID_FIELD}` range; expected {RULE_SYNTAX}")]
    MissingValid,
    #[error("{part:?} is not FIELD=RANGE; expected {RULE_SYNTAX}")]
    NotAField { part: String },
    #[error("`{field}` is not a rule field; expected {RULE_SYNTAX}")]
    UnknownField { field: String },
    #[error("`{field}` is given more than once; expected each field once")]
    DuplicateField { field: &'static str },
    #[error("the `{field}` range is wrong: {source}")]
    BadRange {
        field: &'static str,
        source: RangeError,
    },
    #[error(
        "the alert band's {side} bound {bound} lies outside the valid range {valid}, so it could never fire; \
         expected alert bounds inside the valid range, or no bound on a side that needs no alert"
    )]
    AlertOutsideValid {
        side: Side,
        bound: f64,
        valid: Range,
    },
}

/// One metric's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRule {
    /// Readings outside it are refused.
    pub valid: Range,
    /// Valid readings outside it are accepted with an alert; `None` for no alerts.
    pub alert: Option<Range>,
}

impl MetricRule {
    /// Parses a rule value such as [`EXAMPLE_RULE`]. Fields may come in any
    /// order; spaces around names and ranges and empty fields (a trailing `;`)
    /// are allowed, because people write manifests by hand.
    pub fn parse(text: &str) -> Result<Self, RuleProblem> {
        let mut valid = None;
        let mut alert = None;
        for part in text.split(FIELD_SEPARATOR).map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (name, range) =
                part.split_once(FIELD_ASSIGN)
                    .ok_or_else(|| RuleProblem::NotAField {
                        part: part.to_owned(),
                    })?;
            let (field, slot) = match name.trim() {
                VALID_FIELD => (VALID_FIELD, &mut valid),
                ALERT_FIELD => (ALERT_FIELD, &mut alert),
                other => {
                    return Err(RuleProblem::UnknownField {
                        field: other.to_owned(),
                    })
                }
            };
            if slot.is_some() {
                return Err(RuleProblem::DuplicateField { field });
            }
            let range =
                Range::parse(range).map_err(|source| RuleProblem::BadRange { field, source })?;
            *slot = Some(range);
        }
        let valid = valid.ok_or(RuleProblem::MissingValid)?;
        if let Some(band) = alert {
            check_alert_inside_valid(&band, &valid)?;
        }
        Ok(Self { valid, alert })
    }
}

/// An open side of the band means no alert on that side, which is always
/// fine; a bound beyond the valid range is a bound no accepted value crosses,
/// so it is most likely a typo.
fn check_alert_inside_valid(band: &Range, valid: &Range) -> Result<(), RuleProblem> {
    for (side, bound) in [(Side::Low, band.low()), (Side::High, band.high())] {
        if let Some(bound) = bound.filter(|bound| !valid.contains(*bound)) {
            return Err(RuleProblem::AlertOutsideValid {
                side,
                bound,
                valid: *valid,
            });
        }
    }
    Ok(())
}

/// Every rule of a validator, parsed from its config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    metrics: BTreeMap<String, MetricRule>,
    unknown_metrics: UnknownMetrics,
}

impl Rules {
    /// Parses config key/value pairs, as `wasi:config` `get-all` returns them.
    ///
    /// Keys are taken exactly as given (no trimming, case-sensitive), since a
    /// key that differs from the documented form is a mistake to report, not
    /// to guess at. The [`METRICS_KEY`] list is required and must name exactly
    /// the metrics that have a rule, so an absent, partial or half-updated
    /// config is an error (the validator answers `misconfigured`, which a
    /// sender may retry) rather than rules that would refuse valid readings
    /// for good.
    pub fn from_config<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut rules = Self::default();
        let mut seen = BTreeSet::new();
        let mut listed = None;
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            if !seen.insert(key.to_owned()) {
                return Err(ConfigError::DuplicateKey {
                    key: key.to_owned(),
                });
            }
            if key == METRICS_KEY {
                listed = Some(parse_metrics_list(value)?);
            } else if key == UNKNOWN_METRICS_KEY {
                rules.unknown_metrics =
                    UnknownMetrics::parse(value).ok_or_else(|| ConfigError::BadPolicy {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    })?;
            } else if let Some(name) = key.strip_prefix(METRIC_KEY_PREFIX) {
                if MetricName::parse(name).is_err() {
                    return Err(ConfigError::BadMetricName {
                        key: key.to_owned(),
                        name: name.to_owned(),
                    });
                }
                let rule = MetricRule::parse(value).map_err(|problem| ConfigError::BadRule {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    problem,
                })?;
                rules.metrics.insert(name.to_owned(), rule);
            } else {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                });
            }
        }
        let listed = listed.ok_or(ConfigError::MissingMetricsList)?;
        let ruled: BTreeSet<String> = rules.metrics.keys().cloned().collect();
        if listed != ruled {
            return Err(ConfigError::Incomplete {
                listed_without_rule: listed.difference(&ruled).cloned().collect(),
                ruled_but_unlisted: ruled.difference(&listed).cloned().collect(),
            });
        }
        Ok(rules)
    }

    /// The rule of `metric`, if the config has one.
    pub fn rule(&self, metric: &str) -> Option<&MetricRule> {
        self.metrics.get(metric)
    }

    pub fn unknown_metrics(&self) -> UnknownMetrics {
        self.unknown_metrics
    }

    /// The metrics that have a rule, in name order.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.metrics.keys().map(String::as_str)
    }
}

/// `pairs` with a [`METRICS_KEY`] entry listing their metric rules, unless they have one:
/// what a whole config looks like, for tests about everything else.
#[cfg(test)]
pub(crate) fn with_metrics_list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !pairs.iter().any(|(k, _)| *k == METRICS_KEY) {
        let listed: Vec<&str> = pairs
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(METRIC_KEY_PREFIX))
            .collect();
        config.push((METRICS_KEY.into(), listed.join(",")));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &str)]) -> Rules {
        Rules::from_config(with_metrics_list(pairs))
            .unwrap_or_else(|err| panic!("{pairs:?}: {err}"))
    }

    fn config_error(pairs: &[(&str, &str)]) -> ConfigError {
        Rules::from_config(with_metrics_list(pairs)).unwrap_err()
    }

    fn rule(text: &str) -> MetricRule {
        MetricRule::parse(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    }

    fn range(text: &str) -> Range {
        Range::parse(text).unwrap()
    }

    #[test]
    fn the_example_rule_parses() {
        assert_eq!(
            rule(EXAMPLE_RULE),
            MetricRule {
                valid: range("-40..85"),
                alert: Some(range("-10..45")),
            }
        );
    }

    #[test]
    fn alert_is_optional_and_fields_come_in_any_order() {
        assert_eq!(rule("valid=0..100").alert, None);
        assert_eq!(rule("alert=-10..45;valid=-40..85"), rule(EXAMPLE_RULE));
    }

    #[test]
    fn spaces_and_empty_fields_are_tolerated() {
        assert_eq!(
            rule("  valid = -40 .. 85 ; alert = -10..45 ; "),
            rule(EXAMPLE_RULE)
        );
        assert_eq!(rule(";valid=0..1;;"), rule("valid=0..1"));
    }

    #[test]
    fn open_alert_sides_mean_no_alert_on_that_side() {
        let only_high = rule("valid=-40..85;alert=..45");
        assert_eq!(only_high.alert, Some(range("..45")));
        assert!(MetricRule::parse("valid=0..;alert=..").is_ok());
    }

    #[test]
    fn alert_bounds_may_touch_the_valid_bounds() {
        assert!(MetricRule::parse("valid=0..100;alert=0..100").is_ok());
    }

    #[test]
    fn a_rule_without_valid_is_refused() {
        assert_eq!(
            MetricRule::parse("alert=-10..45").unwrap_err(),
            RuleProblem::MissingValid
        );
        assert_eq!(
            MetricRule::parse("").unwrap_err(),
            RuleProblem::MissingValid
        );
        assert_eq!(
            MetricRule::parse(" ; ").unwrap_err(),
            RuleProblem::MissingValid
        );
    }

    #[test]
    fn malformed_fields_are_refused() {
        assert_eq!(
            MetricRule::parse("-40..85").unwrap_err(),
            RuleProblem::NotAField {
                part: "-40..85".into()
            }
        );
        assert_eq!(
            MetricRule::parse("valid=0..1;warn=0..1").unwrap_err(),
            RuleProblem::UnknownField {
                field: "warn".into()
            }
        );
        // Field names are case-sensitive like the keys.
        assert!(matches!(
            MetricRule::parse("Valid=0..1").unwrap_err(),
            RuleProblem::UnknownField { .. }
        ));
        assert_eq!(
            MetricRule::parse("valid=0..1;valid=0..2").unwrap_err(),
            RuleProblem::DuplicateField { field: "valid" }
        );
        // A `,` is not a separator, so the range swallows the next field.
        assert!(matches!(
            MetricRule::parse("valid=0..1,alert=0..1").unwrap_err(),
            RuleProblem::BadRange { field: "valid", .. }
        ));
    }

    #[test]
    fn bad_ranges_are_refused_naming_the_field() {
        assert_eq!(
            MetricRule::parse("valid=0..100;alert=50..10").unwrap_err(),
            RuleProblem::BadRange {
                field: "alert",
                source: RangeError::Inverted {
                    low: 50.0,
                    high: 10.0
                },
            }
        );
        assert!(matches!(
            MetricRule::parse("valid=").unwrap_err(),
            RuleProblem::BadRange { field: "valid", .. }
        ));
    }

    #[test]
    fn alert_bounds_outside_the_valid_range_are_refused() {
        assert_eq!(
            MetricRule::parse("valid=-40..85;alert=-50..45").unwrap_err(),
            RuleProblem::AlertOutsideValid {
                side: Side::Low,
                bound: -50.0,
                valid: range("-40..85"),
            }
        );
        assert!(matches!(
            MetricRule::parse("valid=-40..85;alert=..90").unwrap_err(),
            RuleProblem::AlertOutsideValid {
                side: Side::High,
                ..
            }
        ));
        assert!(matches!(
            MetricRule::parse("valid=0..;alert=-1..").unwrap_err(),
            RuleProblem::AlertOutsideValid {
                side: Side::Low,
                ..
            }
        ));
    }

    #[test]
    fn config_with_rules_and_policy_parses() {
        let parsed = rules(&[
            ("metric.temperature_c", EXAMPLE_RULE),
            ("metric.humidity", "valid=0..100"),
            ("unknown_metrics", "accept"),
        ]);
        assert_eq!(parsed.rule("temperature_c"), Some(&rule(EXAMPLE_RULE)));
        assert_eq!(parsed.rule("humidity"), Some(&rule("valid=0..100")));
        assert_eq!(parsed.rule("pressure"), None);
        assert_eq!(parsed.unknown_metrics(), UnknownMetrics::Accept);
        assert_eq!(
            parsed.metrics().collect::<Vec<_>>(),
            ["humidity", "temperature_c"]
        );
    }

    #[test]
    fn a_config_without_metric_rules_rejects_unknown_metrics_by_default() {
        let parsed = rules(&[]);
        assert_eq!(parsed.metrics().count(), 0);
        assert_eq!(parsed.unknown_metrics(), UnknownMetrics::Reject);
    }

    #[test]
    fn policy_values_are_exact_words_with_spaces_allowed() {
        assert_eq!(
            rules(&[("unknown_metrics", " reject ")]).unknown_metrics(),
            UnknownMetrics::Reject
        );
        let err = config_error(&[("unknown_metrics", "Accept")]);
        assert_eq!(
            err,
            ConfigError::BadPolicy {
                key: "unknown_metrics".into(),
                value: "Accept".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "config key `unknown_metrics` has value \"Accept\"; expected `reject` or `accept`"
        );
        assert_eq!(UnknownMetrics::Accept.as_str(), "accept");
    }

    #[test]
    fn unknown_keys_are_refused() {
        for key in [
            "metrics.temperature",
            "Metric.temperature",
            "temperature",
            "unknown_metrics ",
        ] {
            let err = config_error(&[(key, "valid=0..1")]);
            assert_eq!(err, ConfigError::UnknownKey { key: key.into() });
            assert_eq!(err.key(), Some(key));
        }
        assert_eq!(
            config_error(&[("unknown-metrics", "accept")]).to_string(),
            "config key `unknown-metrics` is not a validator setting; \
             expected `metrics`, `unknown_metrics` or keys of the form `metric.<metric>`"
        );
    }

    #[test]
    fn metric_names_follow_the_api_rule() {
        for name in ["", "Temperature", "temp c", "temp-c", "é"] {
            let key = format!("metric.{name}");
            let err = config_error(&[(key.as_str(), "valid=0..1")]);
            assert_eq!(
                err,
                ConfigError::BadMetricName {
                    key: key.clone(),
                    name: name.into()
                }
            );
        }
        let long = format!("metric.{}", "a".repeat(65));
        assert!(matches!(
            config_error(&[(long.as_str(), "valid=0..1")]),
            ConfigError::BadMetricName { .. }
        ));
        assert!(config_error(&[("metric.Temp", "valid=0..1")])
            .to_string()
            .ends_with("expected `metric.` followed by 1 to 64 characters of a-z, 0-9 and '_'"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = config_error(&[("metric.temp", "valid=0..1"), ("metric.temp", "valid=0..2")]);
        assert_eq!(
            err,
            ConfigError::DuplicateKey {
                key: "metric.temp".into()
            }
        );
    }

    #[test]
    fn bad_rule_error_names_key_value_and_expectation() {
        let err = config_error(&[
            ("metric.humidity", "valid=0..100"),
            ("metric.temperature_c", "valid=85..-40"),
        ]);
        assert_eq!(err.key(), Some("metric.temperature_c"));
        assert_eq!(
            err.to_string(),
            "config key `metric.temperature_c` has value \"valid=85..-40\", which is not a metric rule: \
             the `valid` range is wrong: low bound 85 is above high bound -40; expected low <= high"
        );
        let missing = config_error(&[("metric.t", "alert=0..1")]).to_string();
        assert!(missing.contains("it has no `valid` range; expected `valid=LOW..HIGH`"));
        assert!(missing.contains("\"valid=-40..85;alert=-10..45\""));
    }

    #[test]
    fn one_bad_key_fails_the_whole_config() {
        assert!(
            Rules::from_config([("metric.ok", "valid=0..1"), ("unknown_metrics", "maybe"),])
                .is_err()
        );
    }

    #[test]
    fn unreadable_config_blames_no_key() {
        let err = ConfigError::Unreadable {
            detail: "upstream: timeout".into(),
        };
        assert_eq!(err.key(), None);
        assert!(err
            .to_string()
            .starts_with("config could not be read (upstream: timeout)"));
    }

    #[test]
    fn owned_pairs_from_get_all_are_accepted() {
        let pairs: Vec<(String, String)> = vec![
            ("metric.t".into(), "valid=0..1".into()),
            (METRICS_KEY.into(), "t".into()),
        ];
        assert!(Rules::from_config(pairs).is_ok());
    }

    /// What the host serves for a deleted config, or before the config exists.
    #[test]
    fn an_absent_config_is_an_error_not_an_empty_rule_set() {
        let err = Rules::from_config(Vec::<(String, String)>::new()).unwrap_err();
        assert_eq!(err, ConfigError::MissingMetricsList);
        assert_eq!(err.key(), Some(METRICS_KEY));
        let message = err.to_string();
        assert!(
            message.contains("no `metrics` key")
                && message.contains("absent, partial or in the middle of an update")
                && message.contains("`metrics: temperature_c,humidity_pct`"),
            "{message}"
        );
        // Rules without their list are no better: nothing says they are all there.
        let err = Rules::from_config([("metric.t", "valid=0..1")]).unwrap_err();
        assert_eq!(err, ConfigError::MissingMetricsList);
    }

    #[test]
    fn a_config_missing_a_listed_rule_is_incomplete() {
        let err = Rules::from_config([
            (METRICS_KEY, "temperature_c, humidity_pct"),
            ("metric.temperature_c", EXAMPLE_RULE),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Incomplete {
                listed_without_rule: vec!["humidity_pct".into()],
                ruled_but_unlisted: vec![],
            }
        );
        assert_eq!(
            err.to_string(),
            "config is incomplete: `metrics` lists \"humidity_pct\" with no `metric.<metric>` rule; \
             expected one `metric.<metric>` rule for each metric in `metrics`, and no other"
        );
    }

    /// Two versions mixed: the old list with a rule only the new version has.
    #[test]
    fn a_rule_missing_from_the_list_is_incomplete() {
        let err = Rules::from_config([
            (METRICS_KEY, "t"),
            ("metric.t", "valid=0..1"),
            ("metric.p", "valid=0..1"),
            ("metric.q", "valid=0..1"),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Incomplete {
                listed_without_rule: vec![],
                ruled_but_unlisted: vec!["p".into(), "q".into()],
            }
        );
        assert!(err
            .to_string()
            .contains("\"p\", \"q\" have a rule but are not in `metrics`"));
    }

    #[test]
    fn the_metrics_list_takes_names_once_with_spaces_allowed() {
        let parsed = rules(&[
            (METRICS_KEY, " b ,a"),
            ("metric.a", "valid=.."),
            ("metric.b", "valid=.."),
        ]);
        assert_eq!(parsed.metrics().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rules(&[(METRICS_KEY, " ")]).metrics().count(), 0);
        for (value, entry) in [("a,,b", ""), ("a,a", "a"), ("Temp", "Temp"), ("a;b", "a;b")] {
            assert_eq!(
                config_error(&[(METRICS_KEY, value)]),
                ConfigError::BadMetricsList {
                    value: value.into(),
                    entry: entry.into(),
                },
                "{value:?}"
            );
        }
    }
}
