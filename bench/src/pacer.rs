//! Open-loop waits finer than tokio's timer (`run.pacing = "fine"`).
//!
//! tokio's timer fires on millisecond ticks, rounding every sleep up to
//! the next one: with `run.pacing = "tick"` (the default) an open-loop
//! record due at `t` leaves at `t` + 0–1 ms and, measured from `t` (no
//! coordinated omission), carries that lag of the bench's own — 0.5–0.7
//! ms of the median in the messaging scenario at half load
//! (docs/benchmarks.md, "The open loop's own lag").
//!
//! [`Pacer::until`] sleeps on tokio's timer until a tick before the
//! instant, then hands the rest to one pacing thread shared by every send
//! loop of the run. The thread waits on a condition variable with the
//! exact timeout (the kernel's high-resolution timer) and wakes each task
//! whose instant has come:
//!
//! ```text
//! send loop ── until(at) ──► tokio sleep to at − 1 ms ──► waits ──► pacing thread
//!     ▲                                                    (passes ≥ PASS_GAP_MIN apart,
//!     └────────────────── waker.wake() ◄──────────────────  each wakes every wait due)
//! ```
//!
//! The precision costs wake-ups: a busy send loop is woken about every
//! [`PASS_GAP_MIN`] instead of once a millisecond, ~0.1 of a core more at
//! 100–400 K records/s here, which a broker on the same two cores then
//! waits for. Hence opt-in: for a bench with cores of its own.
//!
//! # Invariants
//! - `until(at)` returns no earlier than `at`.
//! - Passes of the thread are at least [`PASS_GAP_MIN`] apart: records
//!   due microseconds apart go in bursts of that gap, and the thread wakes
//!   at most ~4 000 times a second whatever the rate. A new wait wakes
//!   the thread only when it needs a pass before the one the thread
//!   sleeps towards; after a pass that woke a task the thread lingers one
//!   gap, so a loop that waits again at once needs no wake-up of its own.
//! - The thread starts with the first wait that needs it and ends when
//!   the last [`Pacer`] is dropped. Should it fail to start, waits fall
//!   back to tokio's timer.
//!
//! # Limits
//! - One registered wait per pending `until` (a dropped one removes its
//!   own); a run has one send loop per producer connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Least time between two passes of the pacing thread: a quarter of
/// tokio's tick. A 100 µs gap bought no lower latency here for twice the
/// wake-ups (docs/benchmarks.md, "The open loop's own lag").
pub const PASS_GAP_MIN: Duration = Duration::from_micros(250);

/// How far ahead of an instant tokio's timer hands over to the thread: its
/// tick, so the coarse sleep never overshoots the instant.
const COARSE_TICK: Duration = Duration::from_millis(1);

/// Waits until instants with sub-millisecond precision; clones share one
/// pacing thread.
#[derive(Clone)]
pub struct Pacer {
    owner: Arc<Owner>,
}

/// Ends the thread when the last [`Pacer`] goes.
struct Owner {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Whether the thread runs (set once, by the first wait that needs it).
    started: OnceLock<bool>,
}

#[derive(Default)]
struct State {
    waits: Vec<Wait>,
    next_id: u64,
    /// When the thread's next pass is due; `None` while it sleeps until
    /// notified (or has not started).
    next_pass: Option<Instant>,
    /// When its last pass ran.
    last_pass: Option<Instant>,
    closed: bool,
}

struct Wait {
    id: u64,
    at: Instant,
    waker: Waker,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("waits", &self.owner.shared.lock().waits.len())
            .finish()
    }
}

impl Pacer {
    pub fn new() -> Self {
        Self {
            owner: Arc::new(Owner {
                shared: Arc::new(Shared {
                    state: Mutex::new(State::default()),
                    changed: Condvar::new(),
                    started: OnceLock::new(),
                }),
            }),
        }
    }

    /// Returns at `at` (at once if it has passed), within about
    /// [`PASS_GAP_MIN`] and a wake-up after it.
    pub async fn until(&self, at: Instant) {
        let shared = &self.owner.shared;
        if let Some(coarse_end) = at.checked_sub(COARSE_TICK)
            && coarse_end > Instant::now()
        {
            tokio::time::sleep_until(coarse_end.into()).await;
        }
        if !shared.start() {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        FineWait {
            shared,
            at,
            id: None,
        }
        .await;
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the pacing thread once; whether it runs.
    fn start(self: &Arc<Self>) -> bool {
        *self.started.get_or_init(|| {
            let shared = Arc::clone(self);
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || shared.run())
                .is_ok()
        })
    }

    /// The pacing thread: each pass wakes every wait now due, then the
    /// thread sleeps until the earliest left (no sooner than a gap after
    /// the pass), one gap after a pass that woke a task, or until notified.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            if state.closed {
                return;
            }
            let now = Instant::now();
            if let Some(pass) = state.next_pass
                && now < pass
            {
                // Notified for a pass still ahead, or woken spuriously.
                state = self.sleep(state, pass - now);
                continue;
            }
            let mut woke = false;
            let mut i = 0;
            while let Some(wait) = state.waits.get(i) {
                if wait.at <= now {
                    state.waits.swap_remove(i).waker.wake();
                    woke = true;
                } else {
                    i += 1;
                }
            }
            state.last_pass = Some(now);
            let gap_end = now + PASS_GAP_MIN;
            state.next_pass = match state.waits.iter().map(|w| w.at).min() {
                Some(at) => Some(at.max(gap_end)),
                None => woke.then_some(gap_end),
            };
            state = match state.next_pass {
                Some(pass) => self.sleep(state, pass - now),
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn sleep<'a>(&self, state: MutexGuard<'a, State>, time: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, time)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

/// The part of a wait the pacing thread serves.
struct FineWait<'a> {
    shared: &'a Shared,
    at: Instant,
    /// Its entry in `State::waits`, once registered.
    id: Option<u64>,
}

impl Future for FineWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let at = self.at;
        let mut state = self.shared.lock();
        if let Some(id) = self.id
            && let Some(wait) = state.waits.iter_mut().find(|w| w.id == id)
        {
            wait.waker.clone_from(cx.waker());
            return Poll::Pending;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.waits.push(Wait {
            id,
            at,
            waker: cx.waker().clone(),
        });
        // The pass this wait needs: at its instant, but not within the gap
        // after the last pass. Wake the thread only if it sleeps past that.
        let pass = state
            .last_pass
            .map_or(at, |last| at.max(last + PASS_GAP_MIN));
        let notify = state.next_pass.is_none_or(|next| pass < next);
        if notify {
            state.next_pass = Some(pass);
        }
        drop(state);
        self.id = Some(id);
        if notify {
            self.shared.changed.notify_one();
        }
        Poll::Pending
    }
}

impl Drop for FineWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().waits.retain(|w| w.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_wait_ends_and_none_before_its_instant() {
        let pacer = Pacer::new();
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    for j in 0..20u64 {
                        // Instants under and over a tick away, as an open
                        // loop's records are.
                        let ahead = Duration::from_micros(20 + (i * 37 + j * 53) % 1500);
                        let at = Instant::now() + ahead;
                        pacer.until(at).await;
                        assert!(Instant::now() >= at, "woke before its instant");
                    }
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a wait was never woken")
                .expect("task");
        }
        assert!(pacer.owner.shared.lock().waits.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_no_entry_and_the_thread_ends_with_the_last_pacer() {
        let pacer = Pacer::new();
        let shared = Arc::clone(&pacer.owner.shared);
        // More than a tick away: tokio's timer holds it, the thread does not.
        let mut coarse = Box::pin(pacer.until(Instant::now() + Duration::from_millis(500)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(coarse.as_mut().poll(&mut cx).is_pending());
        assert!(shared.lock().waits.is_empty());
        assert!(shared.start());
        let mut fine = Box::pin(FineWait {
            shared: &shared,
            at: Instant::now() + Duration::from_secs(60),
            id: None,
        });
        assert!(fine.as_mut().poll(&mut cx).is_pending());
        assert!(fine.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            shared.lock().waits.len(),
            1,
            "a second poll registered again"
        );
        drop(fine);
        drop(coarse);
        assert!(
            shared.lock().waits.is_empty(),
            "the dropped wait's entry stayed"
        );

        let clone = pacer.clone();
        drop(pacer);
        assert!(!shared.lock().closed, "a clone still holds the pacer");
        drop(clone);
        assert!(shared.lock().closed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&shared) > 1 {
            assert!(Instant::now() < deadline, "the pacing thread did not end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn only_a_sooner_wait_moves_the_threads_next_pass() {
        let pacer = Pacer::new();
        let shared = Arc::clone(&pacer.owner.shared);
        let register = |at: Instant| {
            let mut wait = Box::pin(FineWait {
                shared: &shared,
                at,
                id: None,
            });
            let mut cx = Context::from_waker(Waker::noop());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            wait
        };
        assert!(shared.start());
        let now = Instant::now();
        let later = register(now + Duration::from_secs(20));
        let first = shared.lock().next_pass;
        assert!(first.is_some_and(|p| p >= now + Duration::from_secs(20)));
        let sooner = register(now + Duration::from_secs(10));
        let second = shared.lock().next_pass;
        assert!(
            second.is_some_and(|p| p < now + Duration::from_secs(11)),
            "the thread still sleeps towards the later wait"
        );
        let latest = register(now + Duration::from_secs(30));
        assert_eq!(
            shared.lock().next_pass,
            second,
            "a later wait moved the pass"
        );
        drop((later, sooner, latest));
        assert!(shared.lock().waits.is_empty());
    }
}
