//! One request budget for every API call, shared fairly between kinds of work.
//!
//! - **Pace**: slots come `1 / rate` apart on an ideal schedule (a timer that fires late lets the
//!   slots it owes out together, so a 400/s budget delivers 400/s despite a 1 ms timer), never
//!   more than `rate` within any one second, and no burst after an idle spell.
//! - **Fairness**: callers wait in one queue per [`Class`]; each slot goes to the next class in
//!   turn that has a caller waiting, first come first served within a class. A storm of
//!   describes of new executions cannot starve the history reads of tracked ones, nor the
//!   other way round, nor discovery either.
//! - **Adaptation**: throttling halves the rate; each success adds back a twentieth of the
//!   ceiling (additive increase, multiplicative decrease), never below a floor of a tenth of the
//!   ceiling, so progress continues under any 429 storm. The throttled call itself waits for the
//!   service's Retry-After ([`retry_wait`], at most [`MAX_HOLD`]) before it asks for a slot
//!   again; the others go on at the lowered rate. Holding every caller for every Retry-After
//!   would stop all work for a second at each 429: under a storm of them the rate fell to a
//!   few calls a second, far below the floor.
//!
//! One pacer task hands out every slot; a caller waits on its own oneshot (no herd of tasks
//! woken per slot). Hand-written rather than `governor`: the rate changes at run time, a
//! throttle pauses everyone until a given instant, and the slots are shared by class, none of
//! which governor's fixed quotas offer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// What a request is for: each kind gets its share of the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// History reads of executions already read once.
    Read,
    /// A new execution: its description and its first history read.
    New,
    /// Listing a function's executions.
    Discovery,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Read, Class::New, Class::Discovery];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::New => "new",
            Class::Discovery => "discovery",
        }
    }
}

/// The window no more than `rate` requests may share.
const WINDOW: Duration = Duration::from_secs(1);
/// The longest a throttled call waits for its Retry-After (a service asking for an hour would
/// stop that call for an hour).
pub const MAX_HOLD: Duration = Duration::from_secs(10);
/// How far behind the schedule may fall before it is reset to now (no burst after idling).
const SLACK: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct RateLimiter {
    max_rate: f64,
    min_rate: f64,
    shared: Arc<Shared>,
    pacer: tokio::task::AbortHandle,
}

/// What the callers and the pacer share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// A caller arrived or the schedule moved.
    wake: Notify,
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        self.pacer.abort();
    }
}

#[derive(Debug)]
struct State {
    rate: f64,
    /// The ideal instant of the next slot.
    next: Instant,
    /// When the slots of the last second were handed out.
    recent: VecDeque<Instant>,
    throttles: u64,
    queues: [VecDeque<oneshot::Sender<()>>; Class::ALL.len()],
    /// The class whose turn is next.
    turn: usize,
    /// Slots handed out, by class.
    granted: [u64; Class::ALL.len()],
}

impl RateLimiter {
    /// `max_rate` requests per second at most (must be > 0; the config bounds it). Starts its
    /// pacer on the current Tokio runtime.
    pub fn new(max_rate: f64) -> Arc<Self> {
        let max_rate = if max_rate.is_finite() && max_rate > 0.0 {
            max_rate
        } else {
            1.0
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rate: max_rate,
                next: Instant::now(),
                recent: VecDeque::new(),
                throttles: 0,
                queues: Default::default(),
                turn: 0,
                granted: [0; Class::ALL.len()],
            }),
            wake: Notify::new(),
        });
        let pacer = tokio::spawn(pace(shared.clone())).abort_handle();
        Arc::new(RateLimiter {
            max_rate,
            min_rate: max_rate / 10.0,
            shared,
            pacer,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Waits for a slot of `class`.
    pub async fn acquire(&self, class: Class) {
        let (tx, rx) = oneshot::channel();
        self.lock().queues[class as usize].push_back(tx);
        self.shared.wake.notify_one();
        // The pacer lives as long as the limiter.
        let _ = rx.await;
    }

    /// The service said slow down: halve the rate (the next slot comes one interval of the new
    /// rate from now at the soonest). The throttled call waits [`retry_wait`] on its own.
    pub fn throttled(&self) {
        let mut s = self.lock();
        s.rate = (s.rate / 2.0).max(self.min_rate);
        s.throttles += 1;
        let now = Instant::now();
        s.next = s.next.max(now + Duration::from_secs_f64(1.0 / s.rate));
        drop(s);
        self.shared.wake.notify_one();
    }

    /// A request went through: creep back towards the ceiling.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        s.rate = (s.rate + self.max_rate / 20.0).min(self.max_rate);
    }

    /// Requests per second allowed now.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    pub fn throttles(&self) -> u64 {
        self.lock().throttles
    }

    /// Slots handed out so far, by class (in [`Class::ALL`] order).
    pub fn granted(&self) -> [u64; Class::ALL.len()] {
        self.lock().granted
    }
}

/// How long a throttled call waits before it asks for a slot again: the service's Retry-After,
/// at most [`MAX_HOLD`].
pub fn retry_wait(retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or(Duration::ZERO).min(MAX_HOLD)
}

/// What the pacer does next.
enum Step {
    /// Nobody waits.
    Idle,
    /// The next slot is not due before then.
    Until(Instant),
}

impl State {
    /// Hands out every slot that is due, in class turns; says when to look again.
    fn release(&mut self, now: Instant) -> Step {
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let cap = (self.rate.floor() as usize).max(1);
        loop {
            if self.queues.iter().all(VecDeque::is_empty) {
                return Step::Idle;
            }
            while self
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= cap {
                return Step::Until(self.recent[self.recent.len() - cap] + WINDOW);
            }
            if self.next > now {
                return Step::Until(self.next);
            }
            // Behind by more than the slack (idle, or a long pause): no catching up in a burst.
            if now.duration_since(self.next) > SLACK {
                self.next = now;
            }
            let Some(tx) = self.next_waiter() else {
                continue;
            };
            if tx.send(()).is_err() {
                // The caller gave up (its task ended): the slot goes to the next one.
                continue;
            }
            self.next += interval;
            self.recent.push_back(now);
        }
    }

    /// The first waiter of the next class in turn that has one.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<()>> {
        let n = self.queues.len();
        for i in 0..n {
            let class = (self.turn + i) % n;
            if let Some(tx) = self.queues[class].pop_front() {
                self.turn = (class + 1) % n;
                self.granted[class] += 1;
                return Some(tx);
            }
        }
        None
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The one task that hands out slots (aborted when the limiter is dropped).
async fn pace(shared: Arc<Shared>) {
    loop {
        let step = shared.lock().release(Instant::now());
        // A notification that came meanwhile is kept as a permit: nothing is missed.
        let woken = shared.wake.notified();
        match step {
            Step::Idle => woken.await,
            Step::Until(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    // A throttle moved the schedule, or a caller arrived.
                    _ = woken => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn times(l: &Arc<RateLimiter>, class: Class, n: usize, t0: Instant) -> Vec<Duration> {
        let mut out = Vec::new();
        for _ in 0..n {
            l.acquire(class).await;
            out.push(Instant::now() - t0);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate() {
        let l = RateLimiter::new(10.0);
        let t0 = Instant::now();
        let t = times(&l, Class::Read, 25, t0).await;
        // 10 per second: the 11th slot is a full second after the first.
        assert_eq!(t[0], Duration::ZERO);
        assert_eq!(t[10], Duration::from_secs(1));
        for w in t.windows(11) {
            assert!(w[10] - w[0] >= Duration::from_secs(1), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_high_rate_is_delivered_in_full() {
        // 400/s: 0.0025 s apart, below tokio's 1 ms timer resolution times 3: the slots owed
        // when the timer fires late go out together.
        let l = RateLimiter::new(400.0);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..1200 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire(Class::Read).await;
                Instant::now() - t0
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        done.sort();
        // 1200 at 400/s: 3 s at the least, and not much more.
        assert!(
            done[1199] >= Duration::from_millis(2990),
            "{:?}",
            done[1199]
        );
        assert!(
            done[1199] <= Duration::from_millis(3100),
            "{:?}",
            done[1199]
        );
        for w in done.windows(401) {
            assert!(w[400] - w[0] >= Duration::from_secs(1), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_down_to_a_floor() {
        let l = RateLimiter::new(8.0);
        l.acquire(Class::Read).await;
        l.throttled();
        assert_eq!(l.rate(), 4.0);
        // The next slot comes at the halved rate, not at once and not after a hold.
        let t0 = Instant::now();
        l.acquire(Class::Read).await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(250));
        for _ in 0..7 {
            l.throttled();
        }
        // Never below the floor, a tenth of the ceiling.
        assert_eq!(l.rate(), 0.8);
        assert_eq!(l.throttles(), 8);
        for _ in 0..100 {
            l.succeeded();
        }
        assert_eq!(l.rate(), 8.0);
    }

    #[test]
    fn a_throttled_call_waits_its_retry_after_up_to_max_hold() {
        assert_eq!(retry_wait(None), Duration::ZERO);
        assert_eq!(
            retry_wait(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        // A Retry-After of an hour waits MAX_HOLD only.
        assert_eq!(retry_wait(Some(Duration::from_secs(3600))), MAX_HOLD);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let l = RateLimiter::new(5.0);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire(Class::Read).await;
                Instant::now() - t0
            }));
        }
        let mut t = Vec::new();
        for task in tasks {
            t.push(task.await.unwrap());
        }
        t.sort();
        // 20 requests at 5/s take 3.8 s at the least.
        assert!(t[19] >= Duration::from_millis(3800), "{t:?}");
        for w in t.windows(6) {
            assert!(w[5] - w[0] >= Duration::from_secs(1), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_of_one_class_does_not_starve_the_others() {
        let l = RateLimiter::new(10.0);
        let t0 = Instant::now();
        // 100 describes queue first; then 10 history reads and 1 listing arrive.
        let mut new = Vec::new();
        for _ in 0..100 {
            let l = l.clone();
            new.push(tokio::spawn(async move { l.acquire(Class::New).await }));
        }
        tokio::task::yield_now().await;
        let reads = {
            let l = l.clone();
            tokio::spawn(async move { times(&l, Class::Read, 10, t0).await })
        };
        let list = {
            let l = l.clone();
            tokio::spawn(async move {
                l.acquire(Class::Discovery).await;
                Instant::now() - t0
            })
        };
        let reads = reads.await.unwrap();
        // Every other slot: 10 reads within about 2 s, not after the 10 s the backlog takes.
        assert!(reads[9] <= Duration::from_millis(2100), "{reads:?}");
        assert!(list.await.unwrap() <= Duration::from_millis(500));
        for t in new {
            t.await.unwrap();
        }
        let [read, new, discovery] = l.granted();
        assert_eq!((read, new, discovery), (10, 100, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn no_burst_after_an_idle_spell() {
        let l = RateLimiter::new(10.0);
        l.acquire(Class::Read).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t0 = Instant::now();
        let t = times(&l, Class::Read, 3, t0).await;
        assert_eq!(t[1], Duration::from_millis(100), "{t:?}");
        assert_eq!(t[2], Duration::from_millis(200), "{t:?}");
    }
}
