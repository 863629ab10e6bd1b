//! Which tracked execution to read next, and when: the daemon's scheduling policy, pure (no
//! tokio, no wall clock: the caller says what time it is, in milliseconds of a monotonic clock
//! of its own, and converts history times to it).
//!
//! After each read the caller says what the execution waits for ([`Waiting`]):
//! - a new execution is read at once;
//! - a running one (an invocation in flight) every `poll.interval`;
//! - one that waits only for known times (a wait's end, a retry's due time) once, just after
//!   the earliest of them ([`Policy::grace`] later, when the service has resumed it), then, if
//!   it has not resumed yet, again after 1, 2, 4 ... grace up to `poll.interval`; and at least
//!   every `poll.max_interval` before (it can be stopped or time out meanwhile);
//! - one suspended on something with no known time (a callback, a chained invoke) depends on
//!   the mode. [`Mode::Economy`] backs off from `poll.interval`, doubling while nothing happens,
//!   up to `poll.max_interval`. [`Mode::Fresh`] spends the budget on them: they are read
//!   whenever there is room (the caller asks [`Scheduler::next`] whenever it could start a
//!   read, so the request budget and the concurrency decide how often), never more often than
//!   `poll.interval` each, most overdue first against a target interval that grows with the
//!   time since the execution suspended (callbacks are mostly answered soon after they start,
//!   rarely much later: [`Policy::target_interval`]). A known time among what it waits for
//!   (a callback's time-out, a wait in a parallel branch) is read just after, as above.
//!
//! Everything due at a known time comes before the discretionary reads, and a read asked of a
//! due entry starts the moment it is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

// Keys are ARNs, hashed on every heap check: foldhash (seeded per map) instead of SipHash, which
// was 8% of the daemon's CPU in fresh mode.
use foldhash::HashMap;
use foldhash::HashMapExt as _;
use std::hash::Hash;

/// Milliseconds of the caller's monotonic clock.
pub type Ms = u64;

/// How reads of executions suspended on something with no known time are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Spend the budget on freshness: read them whenever there is room, at most every
    /// `poll.interval` each, most overdue first.
    #[default]
    Fresh,
    /// Spend few calls: back off from `poll.interval` towards `poll.max_interval` while nothing
    /// happens.
    Economy,
}

/// The policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `poll.interval`: the shortest time between two reads of one execution.
    pub interval: Ms,
    /// `poll.max_interval`: the longest back-off in economy mode.
    pub max_interval: Ms,
    /// How long after a known time the service has resumed the execution.
    pub grace: Ms,
    /// Fresh mode: the time scale of the target interval's growth ([`Policy::target_interval`]).
    pub hazard: Ms,
}

impl Policy {
    /// The interval fresh mode aims at for an execution suspended `age` ago: `interval` at
    /// first, growing with the square root of the time suspended (`interval` ×
    /// √(1 + age / hazard)), never beyond `max_interval`. Polling at a rate proportional to the
    /// square root of the chance of news minimises the expected staleness for a given number of
    /// reads; callbacks are answered mostly soon after they start and ever more rarely later
    /// (a chance falling about as 1 / age), hence an interval growing as the square root of the
    /// age. Only a target for
    /// the order of reads: with room in the budget, everything is read every `interval`.
    pub fn target_interval(&self, age: Ms) -> Ms {
        let hazard = self.hazard.max(1) as f64;
        let grown = self.interval as f64 * (1.0 + age as f64 / hazard).sqrt();
        // An f64 to integer cast saturates; the bound keeps it within max_interval.
        (grown as Ms).min(self.max_interval.max(self.interval))
    }
}

/// What an execution waits for, as its last read showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Not read yet (nor described): read at once.
    New,
    /// An invocation runs, or something else moves it: read every `poll.interval`.
    Running,
    /// Only known times; the earliest of them.
    At(Ms),
    /// Suspended since `since` on something with no known time; `until`: the earliest known time
    /// among what it also waits for.
    Unknown { since: Ms, until: Option<Ms> },
    /// Ended: never read again (the entry is forgotten).
    Done,
}

/// Why the read that [`Scheduler::next`] returns was scheduled (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    Running,
    /// A known time came.
    Due,
    /// A known time passed and the execution had not resumed yet.
    Overdue,
    /// An error's retry.
    Retry,
    /// Economy mode's back-off came round.
    Backoff,
    /// Fresh mode: there was room in the budget.
    Spare,
    /// Word from outside that it changed (a status event).
    News,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::New,
        Reason::Running,
        Reason::Due,
        Reason::Overdue,
        Reason::Retry,
        Reason::Backoff,
        Reason::Spare,
        Reason::News,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Running => "running",
            Reason::Due => "due",
            Reason::Overdue => "overdue",
            Reason::Retry => "retry",
            Reason::Backoff => "backoff",
            Reason::Spare => "spare",
            Reason::News => "news",
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Bumped whenever the entry is rescheduled: heap items of older generations are stale.
    generation: u64,
    in_flight: bool,
    last_read: Option<Ms>,
    /// Reads in a row that found nothing (back-offs).
    idle_reads: u32,
    /// Why its timed read is due.
    reason: Reason,
    /// Where it is waiting now, for [`Scheduler::next_read_at`].
    planned: Option<Ms>,
}

/// The due reads and the discretionary ones of every tracked execution.
#[derive(Debug)]
pub struct Scheduler<K> {
    policy: Policy,
    entries: HashMap<K, Entry>,
    /// Reads due at a known time: (time, generation, key).
    timed: BinaryHeap<Reverse<(Ms, u64, K)>>,
    /// Fresh mode: suspended executions not yet eligible (read less than `interval` ago), by
    /// when they become eligible: (eligible at, target, generation, key).
    resting: BinaryHeap<Reverse<(Ms, Ms, u64, K)>>,
    /// Fresh mode: eligible ones, most overdue (smallest target) first: (target, generation,
    /// key).
    ready: BinaryHeap<Reverse<(Ms, u64, K)>>,
    generation: u64,
}

impl<K: Clone + Eq + Hash + Ord> Scheduler<K> {
    pub fn new(policy: Policy) -> Self {
        Scheduler {
            policy,
            entries: HashMap::new(),
            timed: BinaryHeap::new(),
            resting: BinaryHeap::new(),
            ready: BinaryHeap::new(),
            generation: 0,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A new policy (a reloaded config): it applies from each execution's next read.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tracks `key`, read at once (a restart that restored the fold reads it once at start too,
    /// whatever it waits for).
    pub fn add(&mut self, key: K, now: Ms) {
        self.entries.insert(
            key.clone(),
            Entry {
                generation: 0,
                in_flight: false,
                last_read: None,
                idle_reads: 0,
                reason: Reason::New,
                planned: None,
            },
        );
        self.plan_at(&key, now, Reason::New);
    }

    /// Forgets `key` (its items left in the heaps are dropped as they come up). The tables
    /// give back their room once a quarter of it is used: a burst of new executions that
    /// ended would otherwise hold it for good (16 MB after 100,000).
    pub fn remove(&mut self, key: &K) {
        if self.entries.remove(key).is_some() {
            self.shrink_if_sparse();
        }
    }

    fn shrink_if_sparse(&mut self) {
        const MIN: usize = 1024;
        let n = self.entries.len();
        if self.entries.capacity() > MIN && n < self.entries.capacity() / 4 {
            self.entries.shrink_to(n * 2);
        }
        fn shrink<T: Ord>(heap: &mut BinaryHeap<T>) {
            if heap.capacity() > MIN && heap.len() < heap.capacity() / 4 {
                heap.shrink_to(heap.len() * 2);
            }
        }
        shrink(&mut self.timed);
        shrink(&mut self.resting);
        shrink(&mut self.ready);
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// When `key`'s next read is planned (None: in flight, done, or whenever there is room).
    pub fn next_read_at(&self, key: &K) -> Option<Ms> {
        self.entries.get(key).and_then(|e| e.planned)
    }

    fn bump(&mut self, key: &K) -> Option<u64> {
        self.generation += 1;
        let g = self.generation;
        let e = self.entries.get_mut(key)?;
        e.generation = g;
        e.planned = None;
        Some(g)
    }

    fn plan_at(&mut self, key: &K, at: Ms, reason: Reason) {
        if let Some(g) = self.bump(key) {
            let e = self.entries.get_mut(key).expect("bumped");
            e.reason = reason;
            e.planned = Some(at);
            self.timed.push(Reverse((at, g, key.clone())));
        }
    }

    /// Fresh mode: eligible at `eligible`, ordered by `target`.
    fn plan_spare(&mut self, key: &K, eligible: Ms, target: Ms, also_at: Option<Ms>) {
        if let Some(g) = self.bump(key) {
            self.resting
                .push(Reverse((eligible, target, g, key.clone())));
            if let Some(at) = also_at {
                let e = self.entries.get_mut(key).expect("bumped");
                e.reason = Reason::Due;
                e.planned = Some(at);
                self.timed.push(Reverse((at, g, key.clone())));
            }
        }
    }

    /// A read of `key` starts now (it was returned by [`Scheduler::next`], or the caller reads it
    /// out of turn: a status event, a page view).
    pub fn started(&mut self, key: &K) {
        if self.bump(key).is_some() {
            self.entries.get_mut(key).expect("bumped").in_flight = true;
        }
    }

    /// The read of `key` ended at `now`: `news` when it brought new events, `waiting` what the
    /// execution waits for now.
    pub fn read(&mut self, key: &K, now: Ms, news: bool, waiting: Waiting) {
        let p = self.policy;
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.in_flight = false;
        e.last_read = Some(now);
        if news {
            e.idle_reads = 0;
        } else {
            e.idle_reads = e.idle_reads.saturating_add(1);
        }
        let idle = e.idle_reads;
        match waiting {
            Waiting::Done => self.remove(key),
            Waiting::New => self.plan_at(key, now, Reason::New),
            Waiting::Running => self.plan_at(key, now + p.interval, Reason::Running),
            Waiting::At(t) => {
                // Never later than `poll.max_interval`: an operator can stop it meanwhile.
                let (at, reason) = known_time(&p, t, now, idle);
                let cap = now + p.max_interval.max(p.interval);
                if at <= cap {
                    self.plan_at(key, at, reason);
                } else {
                    self.plan_at(key, cap, Reason::Backoff);
                }
            }
            Waiting::Unknown { since, until } => {
                let until = until.map(|t| known_time(&p, t, now, idle));
                match p.mode {
                    Mode::Economy => {
                        // Doubling from the interval while nothing happens.
                        let backoff = p
                            .interval
                            .saturating_mul(1 << idle.min(16))
                            .min(p.max_interval.max(p.interval));
                        let (at, reason) = match until {
                            Some((t, r)) if t <= now + backoff => (t, r),
                            _ => (now + backoff, Reason::Backoff),
                        };
                        self.plan_at(key, at, reason);
                    }
                    Mode::Fresh => {
                        let age = now.saturating_sub(since);
                        let target = now + p.target_interval(age);
                        self.plan_spare(key, now + p.interval, target, until.map(|(t, _)| t));
                    }
                }
            }
        }
    }

    /// The read of `key` failed: again in `delay` (at least `poll.interval`).
    pub fn failed(&mut self, key: &K, now: Ms, delay: Ms) {
        let p = self.policy;
        if let Some(e) = self.entries.get_mut(key) {
            e.in_flight = false;
            e.last_read = Some(now);
            self.plan_at(key, now + delay.max(p.interval), Reason::Retry);
        }
    }

    /// Word from outside that `key` changed: read it now (due at `now`, whatever its planned
    /// read), unless a read is in flight (its answer is at most as old as the news) or it is
    /// done.
    /// False when nothing was planned.
    pub fn news(&mut self, key: &K, now: Ms) -> bool {
        match self.entries.get(key) {
            Some(e) if !e.in_flight => {
                self.plan_at(key, now, Reason::News);
                true
            }
            _ => false,
        }
    }

    /// Reads `key` again at `at` whatever was planned (a held-back event, a truncated read).
    pub fn again_at(&mut self, key: &K, at: Ms, reason: Reason) {
        if let Some(e) = self.entries.get_mut(key) {
            e.in_flight = false;
            self.plan_at(key, at, reason);
        }
    }

    /// The next read to start now: what is due first, then (fresh mode) the most overdue of the
    /// executions with no known time that may be read again. None: nothing before
    /// [`Scheduler::next_wake`].
    pub fn next(&mut self, now: Ms) -> Option<(K, Reason)> {
        while let Some(Reverse((at, g, key))) = self.timed.peek().cloned() {
            if at > now {
                break;
            }
            self.timed.pop();
            if let Some(e) = self.entries.get(&key)
                && e.generation == g
                && !e.in_flight
            {
                let reason = e.reason;
                self.started(&key);
                return Some((key, reason));
            }
        }
        // Those whose interval has passed become candidates.
        while let Some(Reverse((eligible, target, g, key))) = self.resting.peek().cloned() {
            if eligible > now {
                break;
            }
            self.resting.pop();
            if self.entries.get(&key).is_some_and(|e| e.generation == g) {
                self.ready.push(Reverse((target, g, key)));
            }
        }
        while let Some(Reverse((_, g, key))) = self.ready.pop() {
            if let Some(e) = self.entries.get(&key)
                && e.generation == g
                && !e.in_flight
            {
                self.started(&key);
                return Some((key, Reason::Spare));
            }
        }
        None
    }

    /// When [`Scheduler::next`] may next return something (None: nothing is planned). `now` or
    /// earlier when something can be read at once.
    pub fn next_wake(&mut self, now: Ms) -> Option<Ms> {
        self.drop_stale();
        if !self.ready.is_empty() {
            return Some(now);
        }
        let timed = self.timed.peek().map(|Reverse((at, _, _))| *at);
        let resting = self.resting.peek().map(|Reverse((at, _, _, _))| *at);
        match (timed, resting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pops stale items off the tops of the heaps (rescheduled or removed entries).
    fn drop_stale(&mut self) {
        let live = |entries: &HashMap<K, Entry>, key: &K, g: u64| {
            entries
                .get(key)
                .is_some_and(|e| e.generation == g && !e.in_flight)
        };
        while let Some(Reverse((_, g, key))) = self.timed.peek() {
            if live(&self.entries, key, *g) {
                break;
            }
            self.timed.pop();
        }
        while let Some(Reverse((_, _, g, key))) = self.resting.peek() {
            if live(&self.entries, key, *g) {
                break;
            }
            self.resting.pop();
        }
        while let Some(Reverse((_, g, key))) = self.ready.peek() {
            if live(&self.entries, key, *g) {
                break;
            }
            self.ready.pop();
        }
    }

    /// How many executions wait for a discretionary read now (fresh mode's backlog).
    pub fn spare_backlog(&self) -> usize {
        self.ready.len()
    }
}

/// When to read an execution that waits for the known time `t`: just after it (plus the grace),
/// or, when that has passed and it has not resumed, after 1, 2, 4 ... grace up to the interval.
fn known_time(p: &Policy, t: Ms, now: Ms, idle: u32) -> (Ms, Reason) {
    let due = t.saturating_add(p.grace);
    if due > now {
        (due, Reason::Due)
    } else {
        // `idle` counts this read too: the first overdue read comes one grace later.
        let wait = p
            .grace
            .saturating_mul(1 << idle.saturating_sub(1).min(8))
            .min(p.interval);
        (now + wait, Reason::Overdue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Ms = 1000;

    fn policy(mode: Mode) -> Policy {
        Policy {
            mode,
            interval: 5 * S,
            max_interval: 300 * S,
            grace: S,
            hazard: 60 * S,
        }
    }

    /// Plays the scheduler on a simulated clock: `rate` reads per second at most (the budget),
    /// each read taking no time and ending as `respond` says. Returns every read: (time, key,
    /// reason).
    fn simulate(
        s: &mut Scheduler<u32>,
        until: Ms,
        rate: u64,
        mut respond: impl FnMut(u32, Ms) -> (bool, Waiting),
    ) -> Vec<(Ms, u32, Reason)> {
        let slot = 1000 / rate.max(1);
        let mut reads = Vec::new();
        let mut now = 0;
        while now <= until {
            match s.next(now) {
                Some((k, reason)) => {
                    reads.push((now, k, reason));
                    let (news, waiting) = respond(k, now);
                    s.read(&k, now, news, waiting);
                    now += slot;
                }
                None => match s.next_wake(now) {
                    Some(t) if t > now => now = t,
                    Some(_) => now += slot,
                    None => break,
                },
            }
        }
        reads
    }

    #[test]
    fn news_is_read_at_once_unless_a_read_is_in_flight() {
        for mode in [Mode::Fresh, Mode::Economy] {
            let mut s = Scheduler::new(policy(mode));
            s.add(1, 0);
            assert_eq!(s.next(0), Some((1, Reason::New)));
            // Suspended on a callback: economy would wait, fresh only when there is room.
            s.read(
                &1,
                0,
                false,
                Waiting::Unknown {
                    since: 0,
                    until: None,
                },
            );
            s.add(2, 0);
            assert!(s.news(&1, 5 * S));
            assert_eq!(s.next(5 * S), Some((2, Reason::New)));
            assert_eq!(s.next(5 * S), Some((1, Reason::News)));
            // In flight: the read under way answers the news.
            assert!(!s.news(&1, 6 * S));
            s.read(&1, 6 * S, true, Waiting::Done);
            // Done: nothing more to read.
            assert!(!s.news(&1, 7 * S));
            assert!(!s.news(&3, 7 * S), "not tracked");
        }
    }

    #[test]
    fn executions_that_ended_are_forgotten_and_their_room_given_back() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        const N: u64 = 20_000;
        for k in 0..N {
            s.add(k, 0);
        }
        let full = (s.entries.capacity(), s.timed.capacity());
        let mut started = Vec::new();
        while let Some((k, reason)) = s.next(0) {
            assert_eq!(reason, Reason::New);
            started.push(k);
        }
        assert_eq!(started.len(), N as usize);
        // All but ten end; those ten wait for a callback.
        for k in started {
            let waiting = if k < 10 {
                Waiting::Unknown {
                    since: 0,
                    until: None,
                }
            } else {
                Waiting::Done
            };
            s.read(&k, S, true, waiting);
        }
        assert_eq!(s.len(), 10);
        assert!(
            s.entries.capacity() * 8 < full.0 && s.timed.capacity() * 8 < full.1,
            "tables kept their room: {:?} -> {:?}",
            full,
            (s.entries.capacity(), s.timed.capacity())
        );
        // The ten are still read, and only they.
        let later: Vec<u64> = std::iter::from_fn(|| s.next(10 * S).map(|(k, _)| k)).collect();
        assert_eq!(later, (0..10).collect::<Vec<_>>());
        assert!(!s.news(&11, 10 * S), "an ended one is not read again");
    }

    #[test]
    fn new_executions_are_read_at_once_before_anything_due() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        s.add(1, 0);
        assert_eq!(s.next(0), Some((1, Reason::New)));
        s.read(&1, 0, true, Waiting::At(10 * S));
        s.add(2, 11 * S);
        // At 11 s both are due: the first read of the new one is no later than the due one.
        let first = s.next(11 * S).unwrap();
        let second = s.next(11 * S).unwrap();
        assert_eq!((first.0, second.0), (1, 2));
        assert_eq!((first.1, second.1), (Reason::Due, Reason::New));
    }

    #[test]
    fn known_times_are_read_just_after_and_then_backed_off_until_resumed() {
        for mode in [Mode::Fresh, Mode::Economy] {
            let mut s = Scheduler::new(policy(mode));
            s.add(7, 0);
            // A wait ends at 30 s; the service resumes it at 33.5 s.
            let reads = simulate(&mut s, 60 * S, 100, |_, now| {
                if now < 33_500 {
                    (now == 0, Waiting::At(30 * S))
                } else {
                    (true, Waiting::Done)
                }
            });
            let times: Vec<Ms> = reads.iter().map(|r| r.0).collect();
            // Once at start, then 1 s after the end, then 1, 2 s later (31, 32, 34).
            assert_eq!(times, [0, 31 * S, 32 * S, 34 * S], "{mode:?}");
            assert_eq!(reads[1].2, Reason::Due);
            assert_eq!(reads[2].2, Reason::Overdue);
        }
    }

    #[test]
    fn a_long_wait_is_still_read_every_max_interval() {
        for mode in [Mode::Fresh, Mode::Economy] {
            let mut s = Scheduler::new(policy(mode));
            s.add(1, 0);
            s.next(0);
            // A wait of an hour: read after max_interval (300 s), in case it was stopped.
            s.read(&1, 0, true, Waiting::At(3600 * S));
            assert_eq!(s.next_wake(0), Some(300 * S), "{mode:?}");
            assert_eq!(s.next(300 * S), Some((1, Reason::Backoff)));
        }
    }

    #[test]
    fn overdue_back_off_stops_at_the_interval() {
        let p = policy(Mode::Fresh);
        let waits: Vec<Ms> = (1..=8)
            .map(|idle| known_time(&p, 0, 100 * S, idle).0 - 100 * S)
            .collect();
        assert_eq!(waits, [S, 2 * S, 4 * S, 5 * S, 5 * S, 5 * S, 5 * S, 5 * S]);
    }

    #[test]
    fn running_executions_are_read_every_interval() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        s.add(1, 0);
        let reads = simulate(&mut s, 21 * S, 100, |_, _| (true, Waiting::Running));
        let times: Vec<Ms> = reads.iter().map(|r| r.0).collect();
        assert_eq!(times, [0, 5 * S, 10 * S, 15 * S, 20 * S]);
    }

    #[test]
    fn economy_mode_backs_off_to_the_max_interval() {
        let mut s = Scheduler::new(policy(Mode::Economy));
        s.add(1, 0);
        let reads = simulate(&mut s, 1200 * S, 100, |_, now| {
            (
                now == 0,
                Waiting::Unknown {
                    since: 0,
                    until: None,
                },
            )
        });
        let gaps: Vec<Ms> = reads.windows(2).map(|w| (w[1].0 - w[0].0) / S).collect();
        // News at the first read, nothing after: 5, then 10, 20, 40, ... capped at 300 s.
        assert_eq!(gaps[..7], [5, 10, 20, 40, 80, 160, 300], "{gaps:?}");
        assert!(reads[1..].iter().all(|r| r.2 == Reason::Backoff));
    }

    #[test]
    fn fresh_mode_reads_every_interval_when_the_budget_allows() {
        // 100 executions suspended on callbacks, a budget of 100 reads/s: each is read every
        // interval, never more often.
        let mut s = Scheduler::new(policy(Mode::Fresh));
        for k in 0..100 {
            s.add(k, 0);
        }
        let reads = simulate(&mut s, 60 * S, 100, |_, _| {
            (
                false,
                Waiting::Unknown {
                    since: 0,
                    until: None,
                },
            )
        });
        let mut last: HashMap<u32, Ms> = HashMap::new();
        let mut max_gap = 0;
        for (t, k, _) in &reads {
            if let Some(prev) = last.insert(*k, *t) {
                let gap = t - prev;
                assert!(gap >= 5 * S, "read {k} after {gap} ms");
                max_gap = max_gap.max(gap);
            }
        }
        // Every 5 s, give or take the 1 s it takes to go round 100 at 100/s.
        assert!(max_gap <= 6 * S, "{max_gap}");
        assert_eq!(last.len(), 100);
    }

    #[test]
    fn fresh_mode_uses_the_whole_budget_and_never_more() {
        // 1,000 suspended executions, a budget of 50 reads/s: the budget is the limit, every
        // slot is used, nobody starves, and the recently suspended are read more often.
        let mut s = Scheduler::new(policy(Mode::Fresh));
        for k in 0..1000 {
            s.add(k, 0);
        }
        let since = |k: u32| -> Ms { if k < 100 { 595 * S } else { 0 } };
        let reads = simulate(&mut s, 600 * S, 50, |k, now| {
            (
                false,
                Waiting::Unknown {
                    since: since(k).min(now),
                    until: None,
                },
            )
        });
        let per_second = reads.len() as f64 / 600.0;
        assert!((49.0..=50.5).contains(&per_second), "{per_second}");
        let mut count: HashMap<u32, usize> = HashMap::new();
        let mut last: HashMap<u32, Ms> = HashMap::new();
        let mut longest = 0;
        for (t, k, _) in &reads {
            *count.entry(*k).or_default() += 1;
            if let Some(prev) = last.insert(*k, *t) {
                longest = longest.max(t - prev);
            }
        }
        assert_eq!(count.len(), 1000, "every execution read");
        // Nobody waits more than a few rounds of the budget (1000 / 50 = 20 s a round).
        assert!(longest <= 120 * S, "{longest}");
    }

    #[test]
    fn fresh_mode_reads_the_most_overdue_first() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        // Suspended at 0: read at 0 (target 5 s). Suspended 600 s before: read at 0 (target
        // 5 s * sqrt(11) = 16.6 s). Both eligible at 5 s: the fresh one goes first.
        s.add(1, 0);
        s.add(2, 0);
        s.next(0);
        s.next(0);
        s.read(
            &1,
            600 * S,
            false,
            Waiting::Unknown {
                since: 600 * S,
                until: None,
            },
        );
        s.read(
            &2,
            600 * S,
            false,
            Waiting::Unknown {
                since: 0,
                until: None,
            },
        );
        assert_eq!(s.next(604 * S), None);
        assert_eq!(s.next(605 * S), Some((1, Reason::Spare)));
        assert_eq!(s.next(605 * S), Some((2, Reason::Spare)));
        assert_eq!(s.next(605 * S), None);
    }

    #[test]
    fn a_known_time_beside_an_unknown_one_is_read_on_time() {
        for mode in [Mode::Fresh, Mode::Economy] {
            let mut s = Scheduler::new(policy(mode));
            s.add(1, 0);
            s.next(0);
            // A callback (no known time) and its time-out at 100 s.
            s.read(
                &1,
                0,
                true,
                Waiting::Unknown {
                    since: 0,
                    until: Some(100 * S),
                },
            );
            // Economy backs off, fresh reads when there is room: both read at 101 s as well.
            let mut reads = Vec::new();
            let mut now = 0;
            while now <= 102 * S {
                if let Some((_, r)) = s.next(now) {
                    reads.push((now, r));
                    s.read(
                        &1,
                        now,
                        false,
                        Waiting::Unknown {
                            since: 0,
                            until: Some(100 * S),
                        },
                    );
                }
                now += 250;
            }
            let at = reads.iter().find(|(t, _)| *t >= 101 * S).copied();
            assert_eq!(at, Some((101 * S, Reason::Due)), "{mode:?}");
        }
    }

    #[test]
    fn failures_retry_no_sooner_than_the_interval() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        s.add(1, 0);
        s.next(0);
        s.failed(&1, 0, 2 * S);
        assert_eq!(s.next_wake(0), Some(5 * S));
        assert_eq!(s.next(5 * S), Some((1, Reason::Retry)));
        s.failed(&1, 5 * S, 30 * S);
        assert_eq!(s.next_wake(5 * S), Some(35 * S));
    }

    #[test]
    fn in_flight_and_removed_executions_are_not_returned() {
        let mut s = Scheduler::new(policy(Mode::Fresh));
        s.add(1, 0);
        s.add(2, 0);
        s.started(&1);
        assert_eq!(s.next(0), Some((2, Reason::New)));
        assert_eq!(s.next(0), None);
        s.remove(&2);
        s.read(&1, 0, true, Waiting::Running);
        assert_eq!(s.next_wake(0), Some(5 * S));
        s.read(&2, 0, true, Waiting::Running);
        assert_eq!(s.next(5 * S), Some((1, Reason::Running)));
        assert_eq!(s.next(5 * S), None);
        s.read(&1, 5 * S, true, Waiting::Done);
        assert_eq!(s.next_wake(5 * S), None);
    }

    #[test]
    fn the_target_interval_grows_with_the_time_suspended() {
        let p = policy(Mode::Fresh);
        assert_eq!(p.target_interval(0), 5 * S);
        assert_eq!(p.target_interval(60 * S), 7_071);
        assert_eq!(p.target_interval(600 * S), 16_583);
        assert_eq!(p.target_interval(3_600 * S), 39_051);
        // Never beyond poll.max_interval, whatever the age.
        assert_eq!(p.target_interval(Ms::MAX), p.max_interval);
    }
}
