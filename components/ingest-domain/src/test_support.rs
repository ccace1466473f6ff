//! For this crate's tests: ingest's handling of messages over plain maps, with
//! a simulated clock, a log of every key-value call, a crash after any call
//! and a hook that plays another instance, so that the plan tests and the API's
//! read tests work on what the component would store.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::execute::{self, Retry, Store, Stored};
use crate::message::IngestReading;
use crate::plan::{decide, reject, Decision, Publish, Target, Verdict};
use crate::summary::{Applied, RejectionNote, Summary};
use crate::{parse_message, Outcome};

/// One map per target (sorted, as some stores list keys).
pub type Stores = HashMap<Target, BTreeMap<String, Vec<u8>>>;

/// What one simulated key-value call takes.
const CALL_TIME: Duration = Duration::from_millis(1);

/// A hook run after a numbered call, with the stores and the clock.
type Hook = Box<dyn FnMut(&mut Stores, &mut Duration)>;

#[derive(Default)]
pub struct Executor {
    pub stores: Stores,
    pub published: Vec<Publish>,
    /// Every key-value call, `"<op> <target> <keys>"`, in order, crashed ones too.
    pub calls: Vec<String>,
    pub warnings: Vec<String>,
    pub clock: Duration,
    /// Dies after this many calls in all: later calls fail and change nothing,
    /// nothing more is published, and [`Executor::handle`] stops.
    pub crash_after: Option<usize>,
    /// Runs once the call with this number (1-based, counted over all calls)
    /// has answered, before anything else reaches the store or the clock:
    /// the instance stalls there while another one runs.
    pub hook: Option<(usize, Hook)>,
}

impl Executor {
    /// Whether the crash point has passed.
    pub fn crashed(&self) -> bool {
        self.crash_after
            .is_some_and(|after| self.calls.len() > after)
    }

    /// Comes back after a crash, on the same stores, a little later.
    pub fn restart(&mut self) {
        self.crash_after = None;
        self.clock += Duration::from_millis(100);
    }

    /// Runs `hook` after call number `call`, see [`Executor::hook`].
    pub fn after_call(
        &mut self,
        call: usize,
        hook: impl FnMut(&mut Stores, &mut Duration) + 'static,
    ) {
        self.hook = Some((call, Box::new(hook)));
    }

    pub fn get(&self, target: &Target, key: &str) -> Option<&Vec<u8>> {
        self.stores.get(target)?.get(key)
    }

    pub fn set(&mut self, target: &Target, key: String, value: Vec<u8>) {
        self.stores
            .entry(target.clone())
            .or_default()
            .insert(key, value);
    }

    /// A decimal value on [`Target::Hot`], 0 when absent.
    pub fn counter(&self, key: &str) -> u64 {
        self.get(&Target::Hot, key)
            .map(|bytes| std::str::from_utf8(bytes).unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    /// Text of a value, for assertions.
    pub fn text(&self, target: &Target, key: &str) -> Option<String> {
        self.get(target, key)
            .map(|bytes| String::from_utf8(bytes.clone()).unwrap())
    }

    /// Runs the hook if its call has answered.
    fn stall(&mut self) {
        if self
            .hook
            .as_ref()
            .is_some_and(|(at, _)| *at == self.calls.len())
        {
            if let Some((_, mut hook)) = self.hook.take() {
                hook(&mut self.stores, &mut self.clock);
            }
        }
    }

    /// Logs a call and says whether it goes through.
    fn call(&mut self, description: String) -> Result<(), String> {
        self.stall();
        self.calls.push(description);
        self.clock += CALL_TIME;
        if self.crashed() {
            Err("crashed".to_owned())
        } else {
            Ok(())
        }
    }

    /// Handles one message with `validate` standing in for the validator.
    /// A reading the store refused is noted as ingest notes it (`store_failed`).
    pub fn handle(
        &mut self,
        subject: &str,
        payload: &[u8],
        validate: impl Fn(&IngestReading) -> Verdict,
    ) -> Summary {
        let mut summary = Summary::default();
        for outcome in parse_message(subject, payload) {
            if self.crashed() {
                break;
            }
            match outcome {
                Outcome::Rejected(rejected) => {
                    let message = reject(subject, &rejected);
                    self.published.push(message.publish());
                    summary.record(Applied::Rejected(message.note()));
                }
                Outcome::Reading(parsed) => {
                    match decide(subject, &parsed, validate(&parsed.reading)) {
                        Decision::Reject(message) => {
                            self.published.push(message.publish());
                            summary.record(Applied::Rejected(message.note()));
                        }
                        Decision::Store(plan) => {
                            let stored = execute::store(self, &plan);
                            summary.record(stored.applied().unwrap_or_else(|| {
                                let Stored::Refused { why, retryable } = stored else {
                                    unreachable!()
                                };
                                Applied::Rejected(RejectionNote {
                                    index: parsed.index,
                                    code: "store_failed".into(),
                                    reason: why,
                                    retryable,
                                })
                            }));
                        }
                    }
                }
            }
        }
        summary
    }
}

fn name(target: &Target) -> String {
    match target {
        Target::Hot => "hot".into(),
        Target::Archive => "archive".into(),
        Target::DeviceIndex => "devices".into(),
        Target::MetricIndex(device) => format!("metrics/{device}"),
    }
}

impl Store for Executor {
    fn now(&mut self) -> Duration {
        self.stall();
        self.clock
    }

    fn sleep(&mut self, pause: Duration) {
        self.stall();
        self.clock += pause;
    }

    fn increment(
        &mut self,
        target: &Target,
        key: &str,
        delta: u64,
        retry: Retry,
    ) -> Result<u64, String> {
        let once = if retry == Retry::Once { " once" } else { "" };
        self.call(format!("increment {} {key} +{delta}{once}", name(target)))?;
        let store = self.stores.entry(target.clone()).or_default();
        let current: u64 = store
            .get(key)
            .map(|bytes| std::str::from_utf8(bytes).unwrap().parse().unwrap())
            .unwrap_or(0);
        let next = current + delta;
        store.insert(key.to_owned(), next.to_string().into_bytes());
        Ok(next)
    }

    fn get_many(
        &mut self,
        target: &Target,
        keys: &[String],
        _retry: Retry,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.call(format!("get-many {} {}", name(target), keys.join(" ")))?;
        Ok(keys
            .iter()
            .map(|key| self.get(target, key).cloned())
            .collect())
    }

    fn set_many(
        &mut self,
        target: &Target,
        entries: &[(String, Vec<u8>)],
        _retry: Retry,
    ) -> Result<(), String> {
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        self.call(format!("set-many {} {}", name(target), keys.join(" ")))?;
        for (key, value) in entries {
            self.set(target, key.clone(), value.clone());
        }
        Ok(())
    }

    fn set(
        &mut self,
        target: &Target,
        key: &str,
        value: &[u8],
        _retry: Retry,
    ) -> Result<(), String> {
        self.call(format!("set {} {key}", name(target)))?;
        Executor::set(self, target, key.to_owned(), value.to_vec());
        Ok(())
    }

    fn publish(&mut self, publish: &Publish) {
        if !self.crashed() {
            self.published.push(publish.clone());
        }
    }

    fn warn(&mut self, message: &str) {
        if !self.crashed() {
            self.warnings.push(message.to_owned());
        }
    }
}
