//! A ticket lock made of two counters, for the one read-compare-write ingest
//! does: a metric's min and max.
//!
//! `wasi:keyvalue` 0.2.0-draft has atomic increments but no compare-and-swap,
//! so two ingest instances updating one metric's min at the same moment could
//! each read the old value and the later write could undo the earlier. The lock
//! serialises those updates per device and metric with two counters on the hot
//! link: a writer takes a ticket (`ticket` incremented by 1 returns `t`), waits
//! until `serving` (read by adding 0) reaches `t - 1`, updates min and max, and
//! adds 1 to `serving`. Tickets are handed out in order, so nobody starves.
//!
//! **A holder that never releases** (its instance was killed mid-update) would
//! stop that metric's min and max for good. So the next in line breaks the lock
//! once `serving` has not moved for [`STALE_AFTER`], by adding the missing 1
//! itself. Should the presumed-dead holder only have been slow, it releases
//! later too and one writer further back enters early: min and max can then
//! race as they would without the lock, and the lock is back in step after
//! that. Count and sum never depend on the lock.

use std::time::Duration;

/// How long `serving` may stand still before the next in line takes over.
pub const STALE_AFTER: Duration = Duration::from_secs(2);

/// The pause before looking again, per writer still ahead.
pub const WAIT_PER_POSITION: Duration = Duration::from_millis(1);

/// The longest pause between two looks at `serving`.
pub const MAX_WAIT: Duration = Duration::from_millis(20);

/// The two counters of one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketLock {
    /// Incremented by 1 to take a ticket.
    pub ticket: String,
    /// Tickets served so far: incremented by 1 on release, by 0 to read.
    pub serving: String,
}

/// What a waiting writer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its turn: update, then release.
    Enter,
    /// Read `serving` again after this pause.
    Wait(Duration),
    /// The holder ahead looks gone: add 1 to `serving` for it, then look again.
    Break,
}

/// One writer's wait for its turn.
#[derive(Debug, Clone)]
pub struct Waiter {
    ticket: u64,
    /// The last `serving` seen, and when it was first seen at that value.
    last: Option<(u64, Duration)>,
}

impl Waiter {
    /// `ticket` is what incrementing the lock's `ticket` by 1 returned.
    pub fn new(ticket: u64) -> Self {
        Self { ticket, last: None }
    }

    /// Decides the next step from `serving` as just read, at `now` (time since
    /// any fixed start, from a monotonic clock).
    pub fn check(&mut self, serving: u64, now: Duration) -> Step {
        let ahead = self.ticket.saturating_sub(1).saturating_sub(serving);
        if ahead == 0 {
            return Step::Enter;
        }
        let since = match self.last {
            Some((seen, since)) if seen == serving => since,
            _ => {
                self.last = Some((serving, now));
                now
            }
        };
        // Only the next in line breaks the lock, so one waiter takes over, not all.
        if ahead == 1 && now.saturating_sub(since) >= STALE_AFTER {
            self.last = None;
            return Step::Break;
        }
        let positions = u32::try_from(ahead).unwrap_or(u32::MAX);
        Step::Wait(WAIT_PER_POSITION.saturating_mul(positions).min(MAX_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_ticket_enters_at_once() {
        assert_eq!(Waiter::new(1).check(0, T0), Step::Enter);
    }

    #[test]
    fn a_later_ticket_waits_until_everyone_ahead_released() {
        let mut waiter = Waiter::new(4);
        assert_eq!(waiter.check(0, T0), Step::Wait(ms(3)));
        assert_eq!(waiter.check(1, ms(5)), Step::Wait(ms(2)));
        assert_eq!(waiter.check(2, ms(9)), Step::Wait(ms(1)));
        assert_eq!(waiter.check(3, ms(12)), Step::Enter);
        // Released further than our ticket (a broken lock was released late): enter.
        assert_eq!(Waiter::new(2).check(5, T0), Step::Enter);
    }

    #[test]
    fn pauses_are_bounded() {
        assert_eq!(Waiter::new(10_000).check(0, T0), Step::Wait(MAX_WAIT));
        assert_eq!(Waiter::new(u64::MAX).check(0, T0), Step::Wait(MAX_WAIT));
    }

    #[test]
    fn the_next_in_line_breaks_a_lock_that_stands_still() {
        let mut waiter = Waiter::new(3);
        assert_eq!(waiter.check(1, T0), Step::Wait(ms(1)));
        assert_eq!(waiter.check(1, STALE_AFTER - ms(1)), Step::Wait(ms(1)));
        assert_eq!(waiter.check(1, STALE_AFTER), Step::Break);
        // After the break, serving moved on: our turn.
        assert_eq!(waiter.check(2, STALE_AFTER + ms(1)), Step::Enter);
    }

    #[test]
    fn progress_restarts_the_stale_clock() {
        let mut waiter = Waiter::new(4);
        assert_eq!(waiter.check(1, T0), Step::Wait(ms(2)));
        // serving moved at 1.5 s; standing still since then is not yet stale at 3 s.
        assert_eq!(waiter.check(2, ms(1500)), Step::Wait(ms(1)));
        assert_eq!(waiter.check(2, ms(3000)), Step::Wait(ms(1)));
        assert_eq!(waiter.check(2, ms(3500)), Step::Break);
    }

    #[test]
    fn only_the_next_in_line_breaks() {
        let mut waiter = Waiter::new(5);
        assert_eq!(waiter.check(1, T0), Step::Wait(ms(3)));
        assert_eq!(waiter.check(1, STALE_AFTER * 10), Step::Wait(ms(3)));
    }
}
