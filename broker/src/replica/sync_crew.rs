//! A fixed crew of threads that works through one round of blocking jobs
//! together: the group commit's fdatasyncs ([`super::flusher`]).
//!
//! ```text
//! caller ─► run(jobs) ─► jobs into the shared round ─► wake ≤ helpers
//!            │                                          │
//!            └─ works jobs itself ◄─ claim under lock ─┘ helpers work too
//!            ◄─ returns once every job is back
//! ```
//!
//! Why a crew and not a task per job: fdatasync mostly waits on the
//! device, and the device serves a few syncs at once better than one after
//! another, but not many better than a few (four threads syncing 9 or 50
//! files beat both one thread and one thread per file here:
//! docs/benchmarks.md, "Group commit on a sync crew"). A thread per job
//! (the runtime's blocking pool) paid a wake-up and a park per file, every
//! round.
//!
//! # Invariants
//! - `run` returns every job it was given, each worked exactly once; a job
//!   whose work panicked comes back as the panic left it (the caller sees
//!   its result unset).
//! - A round of one job, or a crew without helpers, is worked on the
//!   caller's thread: no wake-up at all.
//! - At most one round at a time (`run` takes `&mut self`); helpers park
//!   between rounds and end when the crew is dropped.
//!
//! # Limits
//! - The crew has `helpers` threads for its whole life; a round holds as
//!   many jobs as its caller gives (the flusher's are bounded by its
//!   queue).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// The work done for each job.
type Work<J> = dyn Fn(&mut J) + Send + Sync;

/// The round the caller and the helpers share.
struct Round<J> {
    /// Jobs not claimed yet.
    waiting: Vec<J>,
    /// Jobs worked, in the order they finished.
    done: Vec<J>,
    /// Jobs in this round: the round is over when `done` holds them all.
    total: usize,
    stopping: bool,
}

struct Shared<J> {
    round: Mutex<Round<J>>,
    /// Helpers wait here for jobs (or for the crew to stop).
    jobs_ready: Condvar,
    /// The caller waits here for the last job of its round.
    round_over: Condvar,
    work: Box<Work<J>>,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, Round<J>> {
        // Work runs outside the lock and panics are caught, so a poisoned
        // lock would only mean a panic in this module's few lines: the
        // round's data is still whole.
        self.round.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Works `job` without the lock held, then hands it back to the round.
    fn work_one(&self, mut job: J) -> MutexGuard<'_, Round<J>> {
        let _ = catch_unwind(AssertUnwindSafe(|| (self.work)(&mut job)));
        let mut round = self.lock();
        round.done.push(job);
        round
    }
}

/// A crew of `helpers` threads plus the caller of [`SyncCrew::run`].
pub struct SyncCrew<J: Send + 'static> {
    shared: Arc<Shared<J>>,
    helpers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static> SyncCrew<J> {
    /// Starts `helpers` threads named `{name}-{i}` that do `work` for the
    /// jobs of each round. A thread the system refuses is left out (the
    /// crew works with fewer).
    pub fn start(
        name: &str,
        helpers: usize,
        work: impl Fn(&mut J) + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            round: Mutex::new(Round {
                waiting: Vec::new(),
                done: Vec::new(),
                total: 0,
                stopping: false,
            }),
            jobs_ready: Condvar::new(),
            round_over: Condvar::new(),
            work: Box::new(work),
        });
        let helpers = (0..helpers)
            .filter_map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || help(&shared))
                    .map_err(|e| tracing::warn!(error = %e, "cannot start a {name} thread"))
                    .ok()
            })
            .collect();
        Self { shared, helpers }
    }

    /// Works every job in `jobs`, on this thread and the helpers; on return
    /// `jobs` holds them all again, in no particular order.
    pub fn run(&mut self, jobs: &mut Vec<J>) {
        if jobs.len() <= 1 || self.helpers.is_empty() {
            for job in jobs.iter_mut() {
                let _ = catch_unwind(AssertUnwindSafe(|| (self.shared.work)(job)));
            }
            return;
        }
        let total = jobs.len();
        let mut round = self.shared.lock();
        std::mem::swap(&mut round.waiting, jobs);
        round.done.clear();
        round.total = total;
        drop(round);
        // The caller takes a job too, so one job fewer needs a helper.
        for _ in 0..self.helpers.len().min(total - 1) {
            self.shared.jobs_ready.notify_one();
        }
        let mut round = self.shared.lock();
        loop {
            if let Some(job) = round.waiting.pop() {
                drop(round);
                round = self.shared.work_one(job);
            } else if round.done.len() == round.total {
                break;
            } else {
                round = self
                    .shared
                    .round_over
                    .wait(round)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        // `jobs` is the emptied vector swapped in above: it keeps its
        // capacity for the next round's `waiting`.
        std::mem::swap(&mut round.done, jobs);
    }
}

impl<J: Send + 'static> Drop for SyncCrew<J> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.jobs_ready.notify_all();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

/// A helper's life: claim jobs while the round has any, park otherwise.
fn help<J>(shared: &Shared<J>) {
    let mut round = shared.lock();
    loop {
        if round.stopping {
            return;
        }
        if let Some(job) = round.waiting.pop() {
            drop(round);
            round = shared.work_one(job);
            if round.done.len() == round.total {
                shared.round_over.notify_one();
            }
        } else {
            round = shared
                .jobs_ready
                .wait(round)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A job: its number, how often it was worked, and by which thread.
    struct Job {
        id: usize,
        worked: usize,
        thread: Option<std::thread::ThreadId>,
    }

    fn jobs(n: usize) -> Vec<Job> {
        (0..n)
            .map(|id| Job {
                id,
                worked: 0,
                thread: None,
            })
            .collect()
    }

    fn note(job: &mut Job) {
        job.worked += 1;
        job.thread = Some(std::thread::current().id());
    }

    #[test]
    fn every_job_comes_back_worked_once_round_after_round() {
        let mut crew = SyncCrew::start("test-crew", 3, note);
        let mut round = Vec::new();
        for n in [0, 1, 2, 7, 100, 3] {
            round.extend(jobs(n));
            crew.run(&mut round);
            let ids: HashSet<usize> = round.iter().map(|j| j.id).collect();
            assert_eq!(ids, (0..n).collect::<HashSet<_>>(), "round of {n}");
            assert!(round.iter().all(|j| j.worked == 1), "round of {n}");
            round.clear();
        }
    }

    #[test]
    fn slow_jobs_are_shared_between_threads() {
        let mut crew = SyncCrew::start("test-crew", 3, |job: &mut Job| {
            std::thread::sleep(Duration::from_millis(20));
            note(job);
        });
        let mut round = jobs(8);
        crew.run(&mut round);
        let threads: HashSet<_> = round.iter().filter_map(|j| j.thread).collect();
        assert!(
            threads.len() >= 2,
            "8 jobs of 20 ms ran on {} thread(s)",
            threads.len()
        );
    }

    #[test]
    fn one_job_runs_on_the_callers_thread() {
        let mut crew = SyncCrew::start("test-crew", 3, note);
        let mut round = jobs(1);
        crew.run(&mut round);
        assert_eq!(round[0].thread, Some(std::thread::current().id()));
    }

    #[test]
    fn a_panicking_job_comes_back_and_the_crew_goes_on() {
        let mut crew = SyncCrew::start("test-crew", 2, |job: &mut Job| {
            if job.id == 3 {
                panic!("job 3 fails");
            }
            note(job);
        });
        let mut round = jobs(6);
        crew.run(&mut round);
        assert_eq!(round.len(), 6);
        for job in &round {
            assert_eq!(job.worked, usize::from(job.id != 3), "job {}", job.id);
        }
        round.clear();
        round.extend(jobs(4));
        crew.run(&mut round);
        assert_eq!(round.iter().filter(|j| j.worked == 1).count(), 3);
    }

    #[test]
    fn dropping_the_crew_ends_its_threads() {
        let started = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&started);
        let mut crew = SyncCrew::start("test-crew", 4, move |job: &mut Job| {
            counter.fetch_add(1, Ordering::Relaxed);
            note(job);
        });
        let mut round = jobs(16);
        crew.run(&mut round);
        assert_eq!(started.load(Ordering::Relaxed), 16);
        // Drop joins every helper: a helper that never saw `stopping`
        // would hang the test here.
        drop(crew);
    }
}
