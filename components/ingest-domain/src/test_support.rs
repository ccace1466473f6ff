//! For this crate's tests: ingest's execution loop over plain maps, so that the plan
//! tests and the API's read tests work on what the component would store.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::lock::{Step, Waiter};
use crate::stats::Extreme;

use crate::message::IngestReading;
use crate::plan::{decide, reject, Decision, Effect, Publish, StorePlan, Target, Verdict};
use crate::summary::{Applied, Summary};
use crate::{parse_message, Outcome};

/// One map per target (sorted, as some stores list keys), counters kept as decimal
/// text as the providers keep them.
#[derive(Default)]
pub struct Executor {
    pub stores: HashMap<Target, BTreeMap<String, Vec<u8>>>,
    pub published: Vec<Publish>,
}

impl Executor {
    pub fn increment(&mut self, target: &Target, key: &str, delta: u64) -> u64 {
        let store = self.stores.entry(target.clone()).or_default();
        let current: u64 = store
            .get(key)
            .map(|bytes| std::str::from_utf8(bytes).unwrap().parse().unwrap())
            .unwrap_or(0);
        let next = current + delta;
        store.insert(key.to_owned(), next.to_string().into_bytes());
        next
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

    /// A counter on [`Target::Hot`], 0 when absent.
    pub fn counter(&self, key: &str) -> u64 {
        self.get(&Target::Hot, key)
            .map(|bytes| std::str::from_utf8(bytes).unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    fn run(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Increment { target, key, delta } => {
                    self.increment(target, key, *delta);
                }
                Effect::Set { target, key, value } => self.set(target, key.clone(), value.clone()),
                Effect::Append(append) => {
                    let seq = self.increment(&append.target, &append.seq_key, 1);
                    self.set(&append.target, append.key(seq), append.value.clone());
                }
                Effect::Extremes {
                    target,
                    lock,
                    min,
                    max,
                    value,
                } => {
                    // One writer at a time: the ticket is always served at once.
                    let ticket = self.increment(target, &lock.ticket, 1);
                    let serving = self.increment(target, &lock.serving, 0);
                    assert_eq!(
                        Waiter::new(ticket).check(serving, Duration::ZERO),
                        Step::Enter
                    );
                    for (key, extreme) in [(min, Extreme::Min), (max, Extreme::Max)] {
                        let current = self.get(target, key).map(Vec::as_slice);
                        if let Some(bytes) = extreme.update(current, *value) {
                            self.set(target, key.clone(), bytes);
                        }
                    }
                    self.increment(target, &lock.serving, 1);
                }
                Effect::Publish(publish) => self.published.push(publish.clone()),
            }
        }
    }

    /// Handles one message with `validate` standing in for the validator.
    pub fn handle(
        &mut self,
        subject: &str,
        payload: &[u8],
        validate: impl Fn(&IngestReading) -> Verdict,
    ) -> Summary {
        let mut summary = Summary::default();
        for outcome in parse_message(subject, payload) {
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
                            let seen = self.increment(&Target::Hot, &plan.seen_key, 1);
                            if StorePlan::is_first_delivery(seen) {
                                self.run(&plan.effects);
                            }
                            summary.record(plan.applied(seen));
                        }
                    }
                }
            }
        }
        summary
    }
}
