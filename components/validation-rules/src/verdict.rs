//! Judging a reading: accepted (perhaps with an alert) or rejected, and why.

use std::fmt;

use thiserror::Error;

use crate::config::{ConfigError, Rules, UnknownMetrics, METRIC_KEY_PREFIX, UNKNOWN_METRICS_KEY};
use crate::range::{Range, Side};

/// Longest piece of a reading's metric echoed in a message. Metrics come from
/// devices, so an unbounded one would bloat every log line that quotes it.
const MAX_QUOTED_CHARS: usize = 80;

/// How many configured metrics an unknown-metric message lists before it
/// only counts the rest.
const MAX_LISTED_METRICS: usize = 10;

/// What the rules say about one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The reading may be stored; `Some` if it also calls for an alert.
    Accepted(Option<Alert>),
    Rejected(Rejection),
}

/// A valid value outside its metric's alert band.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub metric: String,
    pub value: f64,
    pub band: Range,
    /// `Low` if the value is below the band, `High` if above.
    pub side: Side,
    /// The band bound the value crossed.
    pub bound: f64,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.side {
            Side::Low => "below",
            Side::High => "above",
        };
        write!(
            f,
            "metric {:?} value {} is {direction} its alert band {} (rule `{METRIC_KEY_PREFIX}{}`)",
            self.metric, self.value, self.band, self.metric
        )
    }
}

/// Why a reading was refused; the message names the rule and what was expected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejection {
    #[error("metric {} value {value} is not a finite number; expected a finite number", quoted(.metric))]
    NotFinite { metric: String, value: f64 },
    #[error(
        "metric {metric:?} value {value} is outside its valid range {valid} (rule `{}{metric}`); expected {}",
        METRIC_KEY_PREFIX,
        .valid.expectation()
    )]
    OutOfRange {
        metric: String,
        value: f64,
        valid: Range,
    },
    #[error(
        "metric {} has no rule and `{}` is `{}`; expected a metric with a `{}<metric>` config key ({})",
        quoted(.metric),
        UNKNOWN_METRICS_KEY,
        UnknownMetrics::REJECT,
        METRIC_KEY_PREFIX,
        listed(.configured)
    )]
    UnknownMetric {
        metric: String,
        /// The metrics that do have a rule, in name order.
        configured: Vec<String>,
    },
    /// The reading was not judged at all.
    #[error("validator is misconfigured, so it accepts no reading: {0}")]
    Misconfigured(#[from] ConfigError),
}

impl Rules {
    /// Judges one reading.
    ///
    /// Finiteness comes first, so a NaN is refused as such even for a metric
    /// without a rule. Values on a bound are inside: on a valid bound the
    /// reading is accepted, on an alert bound it raises no alert.
    pub fn validate(&self, metric: &str, value: f64) -> Verdict {
        if !value.is_finite() {
            return Verdict::Rejected(Rejection::NotFinite {
                metric: metric.to_owned(),
                value,
            });
        }
        let Some(rule) = self.rule(metric) else {
            return match self.unknown_metrics() {
                UnknownMetrics::Accept => Verdict::Accepted(None),
                UnknownMetrics::Reject => Verdict::Rejected(Rejection::UnknownMetric {
                    metric: metric.to_owned(),
                    configured: self.metrics().map(str::to_owned).collect(),
                }),
            };
        };
        if !rule.valid.contains(value) {
            return Verdict::Rejected(Rejection::OutOfRange {
                metric: metric.to_owned(),
                value,
                valid: rule.valid,
            });
        }
        let alert = rule.alert.and_then(|band| {
            band.side_of(value).map(|(side, bound)| Alert {
                metric: metric.to_owned(),
                value,
                band,
                side,
                bound,
            })
        });
        Verdict::Accepted(alert)
    }
}

fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

fn listed(metrics: &[String]) -> String {
    if metrics.is_empty() {
        return "the config has none".to_owned();
    }
    let shown = metrics[..metrics.len().min(MAX_LISTED_METRICS)].join(", ");
    match metrics.len().saturating_sub(MAX_LISTED_METRICS) {
        0 => format!("configured: {shown}"),
        more => format!("configured: {shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &str)]) -> Rules {
        Rules::from_config(crate::config::with_metrics_list(pairs)).unwrap()
    }

    fn temperature() -> Rules {
        rules(&[("metric.temperature_c", "valid=-40..85;alert=-10..45")])
    }

    fn alert(verdict: Verdict) -> Alert {
        match verdict {
            Verdict::Accepted(Some(alert)) => alert,
            other => panic!("expected an alert, got {other:?}"),
        }
    }

    fn rejection(verdict: Verdict) -> Rejection {
        match verdict {
            Verdict::Rejected(rejection) => rejection,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn normal_values_are_accepted_without_alert() {
        let rules = temperature();
        for value in [-10.0, 0.0, 21.4, 45.0] {
            assert_eq!(
                rules.validate("temperature_c", value),
                Verdict::Accepted(None),
                "{value}"
            );
        }
    }

    #[test]
    fn valid_bounds_are_inclusive() {
        let rules = temperature();
        assert!(matches!(
            rules.validate("temperature_c", -40.0),
            Verdict::Accepted(Some(_))
        ));
        assert!(matches!(
            rules.validate("temperature_c", 85.0),
            Verdict::Accepted(Some(_))
        ));
        assert!(matches!(
            rules.validate("temperature_c", 85.0001),
            Verdict::Rejected(Rejection::OutOfRange { .. })
        ));
        assert!(matches!(
            rules.validate("temperature_c", -40.0001),
            Verdict::Rejected(Rejection::OutOfRange { .. })
        ));
    }

    #[test]
    fn values_outside_the_alert_band_raise_an_alert_naming_side_and_bound() {
        let rules = temperature();
        let high = alert(rules.validate("temperature_c", 50.0));
        assert_eq!(high.side, Side::High);
        assert_eq!(high.bound, 45.0);
        assert_eq!(high.band, Range::parse("-10..45").unwrap());
        assert_eq!(
            high.to_string(),
            "metric \"temperature_c\" value 50 is above its alert band -10..45 (rule `metric.temperature_c`)"
        );
        let low = alert(rules.validate("temperature_c", -10.5));
        assert_eq!(low.side, Side::Low);
        assert_eq!(low.bound, -10.0);
        assert!(low
            .to_string()
            .contains("value -10.5 is below its alert band"));
    }

    #[test]
    fn alert_bounds_are_inclusive_so_values_on_them_are_normal() {
        let rules = temperature();
        assert_eq!(
            rules.validate("temperature_c", 45.0),
            Verdict::Accepted(None)
        );
        assert_eq!(
            rules.validate("temperature_c", -10.0),
            Verdict::Accepted(None)
        );
        assert!(matches!(
            rules.validate("temperature_c", 45.000001),
            Verdict::Accepted(Some(_))
        ));
    }

    #[test]
    fn a_rule_without_alert_band_never_alerts() {
        let rules = rules(&[("metric.humidity", "valid=0..100")]);
        assert_eq!(rules.validate("humidity", 0.0), Verdict::Accepted(None));
        assert_eq!(rules.validate("humidity", 100.0), Verdict::Accepted(None));
    }

    #[test]
    fn an_open_alert_side_never_alerts_on_that_side() {
        let rules = rules(&[("metric.t", "valid=-40..85;alert=..45")]);
        assert_eq!(rules.validate("t", -40.0), Verdict::Accepted(None));
        assert_eq!(alert(rules.validate("t", 46.0)).side, Side::High);
    }

    #[test]
    fn out_of_range_names_metric_value_rule_and_range() {
        let rejection = rejection(temperature().validate("temperature_c", 90.0));
        assert_eq!(
            rejection,
            Rejection::OutOfRange {
                metric: "temperature_c".into(),
                value: 90.0,
                valid: Range::parse("-40..85").unwrap(),
            }
        );
        assert_eq!(
            rejection.to_string(),
            "metric \"temperature_c\" value 90 is outside its valid range -40..85 \
             (rule `metric.temperature_c`); expected a value from -40 to 85, both included"
        );
    }

    #[test]
    fn open_valid_ranges_bound_one_side_only() {
        let rules = rules(&[("metric.count", "valid=0..")]);
        assert_eq!(rules.validate("count", f64::MAX), Verdict::Accepted(None));
        let rejection = rejection(rules.validate("count", -1.0));
        assert!(rejection
            .to_string()
            .ends_with("expected a value of at least 0"));
    }

    #[test]
    fn non_finite_values_are_rejected_whatever_the_rules() {
        let accept_all = rules(&[("unknown_metrics", "accept"), ("metric.t", "valid=..")]);
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for metric in ["t", "unknown"] {
                assert!(
                    matches!(
                        accept_all.validate(metric, value),
                        Verdict::Rejected(Rejection::NotFinite { .. })
                    ),
                    "{metric} {value}"
                );
            }
        }
        assert_eq!(
            rejection(temperature().validate("temperature_c", f64::NAN)).to_string(),
            "metric \"temperature_c\" value NaN is not a finite number; expected a finite number"
        );
        assert!(rejection(temperature().validate("x", f64::NEG_INFINITY))
            .to_string()
            .contains("value -inf is not"));
    }

    #[test]
    fn unknown_metrics_are_rejected_by_default_listing_the_configured_ones() {
        let rules = rules(&[
            ("metric.temperature_c", "valid=..;"),
            ("metric.humidity", "valid=0..100"),
        ]);
        let rejection = rejection(rules.validate("pressure", 1.0));
        assert_eq!(
            rejection,
            Rejection::UnknownMetric {
                metric: "pressure".into(),
                configured: vec!["humidity".into(), "temperature_c".into()],
            }
        );
        assert_eq!(
            rejection.to_string(),
            "metric \"pressure\" has no rule and `unknown_metrics` is `reject`; expected a metric \
             with a `metric.<metric>` config key (configured: humidity, temperature_c)"
        );
    }

    #[test]
    fn metric_names_match_exactly() {
        let rejection = rejection(temperature().validate("Temperature_C", 20.0));
        assert!(matches!(rejection, Rejection::UnknownMetric { .. }));
    }

    #[test]
    fn unknown_metric_message_stays_short() {
        let mut many: Vec<(String, String)> = (0..15)
            .map(|i| (format!("metric.m{i:02}"), "valid=..".to_owned()))
            .collect();
        let listed: Vec<String> = (0..15).map(|i| format!("m{i:02}")).collect();
        many.push((crate::config::METRICS_KEY.into(), listed.join(",")));
        let rules = Rules::from_config(many).unwrap();
        let long_metric = "x".repeat(500);
        let message = rejection(rules.validate(&long_metric, 1.0)).to_string();
        assert!(message.contains("m09 and 5 more)"), "{message}");
        assert!(!message.contains("m10"));
        assert!(message.contains(&format!("{:?}…", "x".repeat(80))));
        assert!(message.len() < 400, "{message}");
        assert!(rejection(Rules::default().validate("t", 1.0))
            .to_string()
            .ends_with("(the config has none)"));
    }

    #[test]
    fn unknown_metrics_may_be_accepted_without_alert() {
        let rules = rules(&[("unknown_metrics", "accept")]);
        assert_eq!(rules.validate("anything", -1e300), Verdict::Accepted(None));
    }

    #[test]
    fn misconfiguration_names_the_key() {
        let err = Rules::from_config([("metric.t", "valid=0..1;alert=5..6"), ("metrics", "t")])
            .unwrap_err();
        let rejection = Rejection::from(err);
        let message = rejection.to_string();
        assert!(
            message.starts_with(
                "validator is misconfigured, so it accepts no reading: config key `metric.t`"
            ),
            "{message}"
        );
        assert!(message.contains("lies outside the valid range 0..1"));
    }
}
