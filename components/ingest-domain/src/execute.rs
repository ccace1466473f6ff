//! Storing one reading: the steps of [`crate::plan`] run against a [`Store`],
//! the few key-value calls ingest makes. The component backs it with
//! `wasi:keyvalue`, the tests with maps that can crash after any call, so the
//! order of the calls, the lock, the fences and the lease are tested here, not
//! only described.
//!
//! Which calls a store may repeat after a failure in transit is part of the
//! protocol ([`Retry`]): a repeated `set-many` writes the same bytes again, but
//! a repeated release would add 2 to `serving` and let two writers in.

use std::time::Duration;

use crate::lock::{Lease, Step, TicketLock, Waiter, STALE_AFTER};
use crate::plan::{Effect, Next, Publish, StorePlan, Target};
use crate::summary::Applied;

/// How a store may repeat a call that failed in a way that may pass (a
/// provider restarting). Any call may have been applied before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// As long as the store's own patience lasts (the component: 10 s): for
    /// reads and for writes that are harmless twice.
    Patiently,
    /// Start no attempt after this moment (on the [`Store::now`] clock): for
    /// calls under the lock, which must not outlive the [`Lease`].
    Until(Duration),
    /// One attempt: applying it twice would be wrong.
    Once,
}

/// The key-value calls and the clock that storing a reading needs. Errors are
/// descriptions, for the log and the refusal.
pub trait Store {
    /// Time since a fixed start, from a monotonic clock.
    fn now(&mut self) -> Duration;
    fn sleep(&mut self, pause: Duration);
    fn increment(
        &mut self,
        target: &Target,
        key: &str,
        delta: u64,
        retry: Retry,
    ) -> Result<u64, String>;
    /// One entry per key, in order, `None` where a key has no value.
    fn get_many(
        &mut self,
        target: &Target,
        keys: &[String],
        retry: Retry,
    ) -> Result<Vec<Option<Vec<u8>>>, String>;
    /// Atomic on one link (see the crate docs for why we may rely on it).
    fn set_many(
        &mut self,
        target: &Target,
        entries: &[(String, Vec<u8>)],
        retry: Retry,
    ) -> Result<(), String>;
    fn set(&mut self, target: &Target, key: &str, value: &[u8], retry: Retry)
        -> Result<(), String>;
    /// Publishes; a failure is the store's to log, as nobody else can be told.
    fn publish(&mut self, publish: &Publish);
    /// Something went wrong that did not stop the reading, or that the
    /// operator should know about (a lock broken as stale).
    fn warn(&mut self, message: &str);
}

/// What became of a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Committed now, under this sequence number.
    Stored { seq: u64, alerted: bool },
    /// Committed before, under this sequence number (0 when an earlier version
    /// stored it).
    Duplicate { seq: u64 },
    /// Not committed. `retryable` when sending it again can succeed.
    Refused { why: String, retryable: bool },
}

impl Stored {
    /// For the summary; `None` for a refusal, which the caller turns into a
    /// published rejection.
    pub fn applied(&self) -> Option<Applied> {
        match self {
            Self::Stored { alerted, .. } => Some(Applied::Stored { alerted: *alerted }),
            Self::Duplicate { .. } => Some(Applied::Duplicate),
            Self::Refused { .. } => None,
        }
    }
}

/// What happened under the lock.
enum Held {
    /// Stored before; `true` when the lock is still ours to release.
    Duplicate(u64, bool),
    Committed(u64),
    /// Nothing committed; the lock is still ours to release.
    Failed {
        why: String,
        retryable: bool,
    },
    /// Nothing committed (by us); the lock is no longer ours, so it is not
    /// released: a release would let a second writer in.
    Lost(String),
}

/// Stores `plan`'s reading exactly once: see [`crate::plan`] for the steps.
pub fn store(store: &mut impl Store, plan: &StorePlan) -> Stored {
    let asked = store.now();
    let ticket = match store.increment(&Target::Hot, &plan.lock.ticket, 1, Retry::Patiently) {
        Ok(ticket) => ticket,
        Err(err) => return refused(format!("taking a ticket of the device lock: {err}")),
    };
    let lease = match wait_for_turn(store, &plan.lock, ticket, asked) {
        Ok(lease) => lease,
        Err(err) => return refused(format!("waiting for the device lock: {err}")),
    };
    let held = under_lock(store, plan, &lease);

    if let Held::Duplicate(_, false) = held {
        // under_lock warned already.
    } else if let Held::Lost(why) = &held {
        store.warn(&format!(
            "{why}; ticket {} of {} is not released",
            lease.ticket(),
            plan.lock.ticket
        ));
    } else if store.now() <= lease.last_write() {
        // Once only: a release applied twice lets two writers in, one never
        // applied costs the next in line STALE_AFTER.
        if let Err(err) = store.increment(&Target::Hot, &plan.lock.serving, 1, Retry::Once) {
            store.warn(&format!(
                "releasing ticket {} of {} failed ({err}); the next in line takes over after {STALE_AFTER:?}",
                lease.ticket(),
                plan.lock.ticket
            ));
        }
    } else {
        store.warn(&format!(
            "ticket {} of {} outlived its lease and is not released; the next in line takes over",
            lease.ticket(),
            plan.lock.ticket
        ));
    }

    match held {
        Held::Duplicate(seq, _) => {
            // Repairs the indexes of a reading whose ingest died right after its commit.
            run(store, &plan.indexes);
            Stored::Duplicate { seq }
        }
        Held::Committed(seq) => {
            run(store, &plan.indexes);
            if let Some(alert) = &plan.alert {
                store.publish(alert);
            }
            Stored::Stored {
                seq,
                alerted: plan.alerts(),
            }
        }
        Held::Failed { why, retryable } => Stored::Refused { why, retryable },
        Held::Lost(why) => refused(why),
    }
}

fn refused(why: String) -> Stored {
    Stored::Refused {
        why,
        retryable: true,
    }
}

/// Takes the lock's turn for `ticket`, breaking a lock that stands still
/// ([`crate::lock`]).
fn wait_for_turn(
    store: &mut impl Store,
    lock: &TicketLock,
    ticket: u64,
    asked: Duration,
) -> Result<Lease, String> {
    let mut waiter = Waiter::new(ticket, asked);
    loop {
        let asked = store.now();
        let serving = store.increment(&Target::Hot, &lock.serving, 0, Retry::Patiently)?;
        let now = store.now();
        match waiter.check(serving, asked, now) {
            Step::Enter(lease) => return Ok(lease),
            Step::Wait(pause) => store.sleep(pause),
            Step::Break => {
                store.warn(&format!(
                    "lock {} stood still at {serving} for {STALE_AFTER:?}; ticket {ticket} \
                     takes over ticket {}",
                    lock.serving,
                    serving + 1
                ));
                // Once only, as a release. If it fails, the next look decides again.
                if let Err(err) = store.increment(&Target::Hot, &lock.serving, 1, Retry::Once) {
                    store.warn(&format!("breaking lock {} failed: {err}", lock.serving));
                }
            }
        }
    }
}

/// Steps 2 to 5 of [`crate::plan`].
fn under_lock(store: &mut impl Store, plan: &StorePlan, lease: &Lease) -> Held {
    let until = Retry::Until(lease.last_write());
    let values = match store.get_many(&Target::Hot, &plan.read_keys(), until) {
        Ok(values) => values,
        Err(err) => return failed(format!("reading the device's state: {err}")),
    };
    let state = match plan.decode(&values) {
        Ok(state) => state,
        Err(err) => {
            return Held::Failed {
                why: format!("the device's stored state is unusable: {err}"),
                retryable: false,
            }
        }
    };
    // A done mark stays done whoever holds the lock.
    let commit = match plan.next(&state) {
        Ok(Next::Duplicate { seq }) if lease.holds(state.serving) => {
            return Held::Duplicate(seq, true)
        }
        Ok(Next::Duplicate { seq }) => {
            store.warn(&format!(
                "the device lock was taken over: {} is {}, not {}; ticket {} is not released",
                plan.lock.serving,
                state.serving,
                lease.ticket() - 1,
                lease.ticket()
            ));
            return Held::Duplicate(seq, false);
        }
        Ok(Next::Commit(commit)) => commit,
        Err(err) => {
            return Held::Failed {
                why: format!("the device's stored state can't take the reading: {err}"),
                retryable: false,
            }
        }
    };
    if let Err(lost) = fence(store, plan, lease, state.serving) {
        return lost;
    }
    if let Err(err) = store.set_many(&Target::Archive, &commit.archive, until) {
        return failed(format!("archiving reading {}: {err}", commit.seq));
    }
    let serving = match store.increment(&Target::Hot, &plan.lock.serving, 0, until) {
        Ok(serving) => serving,
        Err(err) => return failed(format!("checking the device lock: {err}")),
    };
    if let Err(lost) = fence(store, plan, lease, serving) {
        return lost;
    }
    match store.set_many(&Target::Hot, &commit.hot, until) {
        Ok(()) => Held::Committed(commit.seq),
        // It may have been applied before failing: then the resend is a duplicate.
        Err(err) => failed(format!("committing reading {}: {err}", commit.seq)),
    }
}

/// Whether this holder may send a write now, given `serving` as just read.
fn fence(
    store: &mut impl Store,
    plan: &StorePlan,
    lease: &Lease,
    serving: u64,
) -> Result<(), Held> {
    if !lease.holds(serving) {
        return Err(Held::Lost(format!(
            "the device lock was taken over: {} is {serving}, not {}",
            plan.lock.serving,
            lease.ticket() - 1
        )));
    }
    if !lease.may_write(store.now()) {
        return Err(Held::Lost(format!(
            "the lease of the device lock ran out before writing ({STALE_AFTER:?} after the turn began)"
        )));
    }
    Ok(())
}

fn failed(why: String) -> Held {
    Held::Failed {
        why,
        retryable: true,
    }
}

/// Writes after the commit: each on its own, a failure only logged, since
/// the reading is stored and the next reading or resend writes them again.
fn run(store: &mut impl Store, effects: &[Effect]) {
    for effect in effects {
        match effect {
            Effect::Set { target, key, value } => {
                if let Err(err) = store.set(target, key, value, Retry::Patiently) {
                    store.warn(&format!(
                        "writing index marker {key:?} in bucket {:?} failed: {err}",
                        target.bucket()
                    ));
                }
            }
            Effect::Publish(publish) => store.publish(publish),
        }
    }
}
