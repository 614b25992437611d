//! Running the same blocking file work on many partitions at once, on a
//! bounded number of threads.
//!
//! Opening, creating and closing a partition is mostly waiting for fsyncs.
//! One fsync on this kind of disk takes milliseconds, but the file system
//! commits concurrent fsyncs together (ext4's journal: one commit serves
//! every fsync waiting on it), so sixteen partitions opened side by side
//! cost about what one costs alone. Serially, 10 000 partitions at a few
//! fsyncs each took minutes (`docs/benchmarks.md`).
//!
//! # Invariants
//! - At most [`crate::limits::PARALLEL_FILE_THREADS`] threads run, however
//!   many items there are; they are scoped: every one has ended when
//!   [`map`] returns.
//! - Results come back in the order of the items, one per item.
//! - A panic in `f` is not caught here: it propagates to the caller when
//!   the scope ends, as a panic of the caller's own loop would.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::limits::PARALLEL_FILE_THREADS;

/// `f` applied to every item, on at most [`PARALLEL_FILE_THREADS`] threads
/// (fewer for few items; none for one), results in item order.
pub fn map<T, R, F>(items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = PARALLEL_FILE_THREADS.min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    // Each slot is taken exactly once, by the thread that claims its index.
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(slot), Some(out)) = (slots.get(i), results.get(i)) else {
                        break;
                    };
                    let item = slot.lock().ok().and_then(|mut s| s.take());
                    if let Some(item) = item {
                        let r = f(item);
                        if let Ok(mut out) = out.lock() {
                            *out = Some(r);
                        }
                    }
                }
            });
        }
    });
    // Every index below `count` was claimed and filled above; a slot could
    // only stay empty if `f` panicked, and then the scope re-raised it.
    results
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_runs_every_item_once_and_bounds_threads() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let out = map((0..200u64).collect(), |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(200));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..200u64).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(
            (2..=PARALLEL_FILE_THREADS).contains(&most),
            "{most} threads ran at once"
        );
        assert_eq!(map(Vec::<u8>::new(), |x| x), Vec::<u8>::new());
        assert_eq!(map(vec![7], |x| x + 1), vec![8]);
    }
}
