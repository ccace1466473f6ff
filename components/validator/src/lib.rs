//! The reading validator as a wasm component.
//!
//! This crate is only glue: it reads the rules from `wasi:config`, hands each
//! reading to `validation-rules`, which holds every rule and is tested
//! natively, and turns the verdict into the `neongrid:telemetry/validation`
//! types. Nothing here traps on a reading or on bad config: a config that
//! can't be read or parsed becomes a `misconfigured` rejection of each reading.

wit_bindgen::generate!({
    path: "../../wit",
    world: "validator",
    // Listed rather than `generate_all`, so that a new import in the world
    // fails here until someone decides where its bindings come from.
    with: {
        "wasi:config/store@0.2.0-draft": generate,
        "wasi:logging/logging@0.1.0-draft": generate,
    },
});

use exports::neongrid::telemetry::validation::{self as wit, Guest};
use validation_rules::{ConfigError, Rejection, Rules, Side, Verdict};
use wasi::config::store;
use wasi::logging::logging::{log, Level};

/// The `context` of this component's log lines, to find them among the host's.
const LOG_CONTEXT: &str = "neongrid-validator";

struct Validator;

export!(Validator);

impl Guest for Validator {
    fn validate(reading: wit::Reading) -> wit::Verdict {
        judge_logged(&load_rules(), &reading)
    }

    fn validate_many(readings: Vec<wit::Reading>) -> Vec<wit::Verdict> {
        if readings.is_empty() {
            return Vec::new();
        }
        let rules = load_rules();
        readings
            .iter()
            .map(|reading| judge_logged(&rules, reading))
            .collect()
    }
}

/// Reads the rules afresh on every call instead of caching them: the host
/// instantiates the component anew for each invocation, so a cache would not
/// outlive the call anyway, and so a config update in the manifest applies
/// from the very next call. The read is one host call with no lattice trip.
fn load_rules() -> Result<Rules, ConfigError> {
    let rules = store::get_all()
        .map_err(|err| ConfigError::Unreadable {
            detail: describe(err),
        })
        .and_then(Rules::from_config);
    if let Err(err) = &rules {
        // Once per call rather than per reading, so a batch doesn't repeat it.
        log(Level::Error, LOG_CONTEXT, &err.to_string());
    }
    rules
}

fn describe(err: store::Error) -> String {
    match err {
        store::Error::Upstream(detail) => format!("upstream: {detail}"),
        store::Error::Io(detail) => format!("I/O: {detail}"),
    }
}

fn judge_logged(rules: &Result<Rules, ConfigError>, reading: &wit::Reading) -> wit::Verdict {
    let verdict = judge(rules, reading);
    // Rejections are routine traffic, and misconfiguration was logged already.
    if let Verdict::Rejected(rejection) = &verdict {
        if !matches!(rejection, Rejection::Misconfigured(_)) {
            let message = format!("device {:?}: {rejection}", reading.device);
            log(Level::Debug, LOG_CONTEXT, &message);
        }
    }
    to_wit(verdict)
}

fn judge(rules: &Result<Rules, ConfigError>, reading: &wit::Reading) -> Verdict {
    match rules {
        Ok(rules) => rules.validate(&reading.metric, reading.value),
        Err(err) => Verdict::Rejected(Rejection::Misconfigured(err.clone())),
    }
}

fn to_wit(verdict: Verdict) -> wit::Verdict {
    match verdict {
        Verdict::Accepted(alert) => wit::Verdict::Accepted(alert.map(|alert| wit::Alert {
            side: match alert.side {
                Side::Low => wit::Side::Low,
                Side::High => wit::Side::High,
            },
            bound: alert.bound,
            message: alert.to_string(),
        })),
        Verdict::Rejected(rejection) => wit::Verdict::Rejected(wit::Rejection {
            kind: match rejection {
                Rejection::NotFinite { .. } => wit::RejectionKind::NotFinite,
                Rejection::OutOfRange { .. } => wit::RejectionKind::OutOfRange,
                Rejection::UnknownMetric { .. } => wit::RejectionKind::UnknownMetric,
                Rejection::Misconfigured(_) => wit::RejectionKind::Misconfigured,
            },
            reason: rejection.to_string(),
        }),
    }
}

/// Only the pure part runs natively: the imports' bindings exist only on wasm.
#[cfg(test)]
mod tests {
    use super::*;

    fn reading(metric: &str, value: f64) -> wit::Reading {
        wit::Reading {
            device: "thermo-17".into(),
            metric: metric.into(),
            value,
        }
    }

    fn rules() -> Result<Rules, ConfigError> {
        Rules::from_config([
            ("metric.temperature_c", "valid=-40..85;alert=-10..45"),
            ("metrics", "temperature_c"),
        ])
    }

    fn verdict(rules: &Result<Rules, ConfigError>, metric: &str, value: f64) -> wit::Verdict {
        to_wit(judge(rules, &reading(metric, value)))
    }

    #[test]
    fn normal_readings_are_accepted_without_alert() {
        assert!(matches!(
            verdict(&rules(), "temperature_c", 21.4),
            wit::Verdict::Accepted(None)
        ));
    }

    #[test]
    fn alerts_carry_side_bound_and_message() {
        let wit::Verdict::Accepted(Some(alert)) = verdict(&rules(), "temperature_c", -20.0) else {
            panic!("expected an alert");
        };
        assert!(matches!(alert.side, wit::Side::Low));
        assert_eq!(alert.bound, -10.0);
        assert!(alert.message.contains("below its alert band -10..45"));
        let wit::Verdict::Accepted(Some(alert)) = verdict(&rules(), "temperature_c", 60.0) else {
            panic!("expected an alert");
        };
        assert!(matches!(alert.side, wit::Side::High));
        assert_eq!(alert.bound, 45.0);
    }

    #[test]
    fn each_rejection_maps_to_its_kind_with_the_reason() {
        let cases = [
            ("temperature_c", f64::NAN, wit::RejectionKind::NotFinite),
            ("temperature_c", 90.0, wit::RejectionKind::OutOfRange),
            ("pressure", 1.0, wit::RejectionKind::UnknownMetric),
        ];
        for (metric, value, kind) in cases {
            let wit::Verdict::Rejected(rejection) = verdict(&rules(), metric, value) else {
                panic!("{metric} {value} was not rejected");
            };
            assert_eq!(rejection.kind, kind, "{metric} {value}");
            assert!(rejection.reason.contains(metric), "{}", rejection.reason);
        }
    }

    #[test]
    fn bad_config_rejects_as_misconfigured_naming_the_key() {
        let bad = Rules::from_config([
            ("metric.temperature_c", "valid=85..-40"),
            ("metrics", "temperature_c"),
        ]);
        let wit::Verdict::Rejected(rejection) = verdict(&bad, "temperature_c", 20.0) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.kind, wit::RejectionKind::Misconfigured);
        assert!(rejection
            .reason
            .starts_with("validator is misconfigured, so it accepts no reading: config key `metric.temperature_c`"));
    }

    /// What the host serves while a rollout has deleted the config and not yet put it
    /// again: misconfigured (retryable), never an unknown-metric rejection for good.
    #[test]
    fn an_absent_config_rejects_as_misconfigured() {
        let absent = Rules::from_config(Vec::<(String, String)>::new());
        let wit::Verdict::Rejected(rejection) = verdict(&absent, "temperature_c", 20.0) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.kind, wit::RejectionKind::Misconfigured);
        assert!(
            rejection.reason.contains("no `metrics` key"),
            "{}",
            rejection.reason
        );
    }

    #[test]
    fn unreadable_config_rejects_as_misconfigured() {
        let unreadable = Err(ConfigError::Unreadable {
            detail: describe(store::Error::Io("timed out".into())),
        });
        let wit::Verdict::Rejected(rejection) = verdict(&unreadable, "temperature_c", 20.0) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.kind, wit::RejectionKind::Misconfigured);
        assert!(rejection
            .reason
            .contains("config could not be read (I/O: timed out)"));
    }
}
