//! The rules of the reading validator, kept free of WIT and wasm so that they
//! compile and are tested natively. The `validator` component is only the glue
//! between these functions and the `wasi:config` and
//! `neongrid:telemetry/validation` interfaces.
//!
//! # Config
//!
//! The rules are the validator's runtime config, a flat map of strings that a
//! wadm manifest sets, so new rules roll out without a new build:
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `metric.<name>` | `valid=LOW..HIGH` or `valid=LOW..HIGH;alert=LOW..HIGH` | the rule of metric `<name>` |
//! | `metrics` | metric names separated by `,` (empty for none) | **required**: every metric that has a `metric.<name>` rule, and no other |
//! | `unknown_metrics` | `reject` (default) or `accept` | what happens to a metric without a rule |
//!
//! - `valid` is required: a reading outside it is rejected.
//! - `alert` is optional and is the band of normal values: a valid reading
//!   outside it is accepted with an alert. Its bounds must lie inside `valid`.
//! - Both bounds of a range are **inclusive**: with `valid=-40..85`, -40 and 85
//!   are accepted; with `alert=-10..45`, 45 raises no alert and 45.1 does.
//!   Leave a bound out for no limit on that side (`valid=0..`, `alert=..45`).
//! - Names are case-sensitive and follow the API's metric-name rule (a-z, 0-9,
//!   `_`); spaces around fields and bounds are ignored.
//! - Any other key, a repeated key or a malformed value makes the whole config
//!   invalid ([`ConfigError`]), and the validator then rejects every reading as
//!   misconfigured, naming the key.
//! - `metrics` is the config's completeness mark. The host serves a config that
//!   is deleted or not yet written as an empty one, and wadm replaces a
//!   component's config during an upgrade by deleting the old version's and
//!   putting the new one's, in no fixed order. Without the list, an empty or
//!   partial config would be rules that refuse valid readings for good
//!   (`unknown_metric`); with it, such a config is `misconfigured`, which ingest
//!   reports as retryable, and the reading is taken once the config is whole.
//!
//! In a wadm manifest:
//!
//! ```yaml
//! - name: validator
//!   type: component
//!   properties:
//!     image: file://./build/validator.wasm
//!     config:
//!       - name: validation-rules
//!         properties:
//!           metric.temperature_c: "valid=-40..85;alert=-10..45"
//!           metric.humidity: "valid=0..100;alert=20..80"
//!           metric.battery_v: "valid=0..;alert=3.3.."
//!           metrics: temperature_c,humidity,battery_v
//!           unknown_metrics: reject
//! ```
//!
//! # Judging
//!
//! [`Rules::validate`] checks, in this order: the value is finite; the metric
//! has a rule (or unknown metrics are accepted); the value is in `valid`; then
//! whether it is outside `alert`.

pub mod config;
pub mod range;
pub mod verdict;

pub use config::{ConfigError, MetricRule, RuleProblem, Rules, UnknownMetrics, METRICS_KEY};
pub use range::{Range, RangeError, Side};
pub use verdict::{Alert, Rejection, Verdict};

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest example in the crate docs must stay a valid config.
    #[test]
    fn documented_example_config_is_valid() {
        let rules = Rules::from_config([
            ("metric.temperature_c", "valid=-40..85;alert=-10..45"),
            ("metric.humidity", "valid=0..100;alert=20..80"),
            ("metric.battery_v", "valid=0..;alert=3.3.."),
            ("metrics", "temperature_c,humidity,battery_v"),
            ("unknown_metrics", "reject"),
        ])
        .unwrap();
        assert_eq!(rules.metrics().count(), 3);
        assert_eq!(rules.validate("battery_v", 12.0), Verdict::Accepted(None));
        assert!(matches!(
            rules.validate("battery_v", 3.2),
            Verdict::Accepted(Some(Alert {
                side: Side::Low,
                ..
            }))
        ));
    }
}
