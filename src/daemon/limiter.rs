//! One request budget for every API call: requests leave one at a time, at least `1 / rate`
//! apart measured from when the previous one really left (a timer that fires late never lets
//! a backlog out in a burst), and never more than `rate` within any one second. The rate
//! adapts: throttling halves it (and honours Retry-After), each success adds back a twentieth
//! of the ceiling (additive increase, multiplicative decrease).
//!
//! Hand-written rather than `governor`: the rate must change at run time and a throttle must
//! pause every caller until a given instant, neither of which governor's fixed quotas offer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    max_rate: f64,
    min_rate: f64,
    state: Mutex<State>,
    /// Callers wait their turn here, first come first served; one sleeps at a time.
    gate: tokio::sync::Mutex<()>,
}

/// The window no more than `rate` requests may share.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    rate: f64,
    /// The earliest instant the next request may go.
    next: Instant,
    /// When the requests of the last second left.
    recent: VecDeque<Instant>,
    throttles: u64,
}

impl RateLimiter {
    /// `max_rate` requests per second at most (must be > 0).
    pub fn new(max_rate: f64) -> Self {
        let max_rate = if max_rate.is_finite() && max_rate > 0.0 {
            max_rate
        } else {
            1.0
        };
        RateLimiter {
            max_rate,
            min_rate: (max_rate / 64.0).min(0.5),
            state: Mutex::new(State {
                rate: max_rate,
                next: Instant::now(),
                recent: VecDeque::new(),
                throttles: 0,
            }),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for this caller's turn. Callers go in call order.
    pub async fn acquire(&self) {
        let _turn = self.gate.lock().await;
        loop {
            let at = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let cap = (s.rate.floor() as usize).max(1);
                while s
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    s.recent.pop_front();
                }
                let window_free = if s.recent.len() >= cap {
                    s.recent[s.recent.len() - cap] + WINDOW
                } else {
                    now
                };
                let at = s.next.max(window_free);
                if at <= now {
                    s.next = now + Duration::from_secs_f64(1.0 / s.rate);
                    s.recent.push_back(now);
                    return;
                }
                at
            };
            // A throttle may move `next` meanwhile: look again after the sleep.
            tokio::time::sleep_until(at).await;
        }
    }

    /// The service said slow down: halve the rate and hold every caller for `retry_after`.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rate = (s.rate / 2.0).max(self.min_rate);
        s.throttles += 1;
        let now = Instant::now();
        let hold = retry_after.unwrap_or(Duration::ZERO);
        s.next = s
            .next
            .max(now + hold)
            .max(now + Duration::from_secs_f64(1.0 / s.rate));
    }

    /// A request went through: creep back towards the ceiling.
    pub fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rate = (s.rate + self.max_rate / 20.0).min(self.max_rate);
    }

    /// Requests per second allowed now.
    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    pub fn throttles(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .throttles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate() {
        let l = RateLimiter::new(10.0);
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..25 {
            l.acquire().await;
            times.push(Instant::now() - t0);
        }
        // 10 per second: the 11th slot is a full second after the first.
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[10], Duration::from_secs(1));
        for w in times.windows(11) {
            assert!(w[10] - w[0] >= Duration::from_secs(1), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_holds_for_retry_after() {
        let l = RateLimiter::new(8.0);
        l.acquire().await;
        l.throttled(Some(Duration::from_secs(3)));
        assert_eq!(l.rate(), 4.0);
        let t0 = Instant::now();
        l.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_secs(3));
        l.throttled(None);
        l.throttled(None);
        l.throttled(None);
        l.throttled(None);
        l.throttled(None);
        l.throttled(None);
        l.throttled(None);
        // Never below the floor.
        assert_eq!(l.rate(), 8.0 / 64.0);
        assert_eq!(l.throttles(), 8);
        for _ in 0..100 {
            l.succeeded();
        }
        assert_eq!(l.rate(), 8.0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let l = std::sync::Arc::new(RateLimiter::new(5.0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now() - t0
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        // 20 requests at 5/s take 3.8 s at the least.
        assert!(times[19] >= Duration::from_millis(3800), "{times:?}");
        for w in times.windows(6) {
            assert!(w[5] - w[0] >= Duration::from_secs(1), "{w:?}");
        }
    }
}
