//! Injected system-call failures, for tests: the seam through which the
//! storage tests make an `open`, `mmap`, `pwrite` or fsync fail with a
//! chosen errno, to check that a refused resource fails one call
//! retriably while an I/O error on data takes the log directory offline.
//!
//! Outside `cfg(test)` [`check`] is an empty inline function: the append
//! and read paths pay nothing for the seam.
//!
//! # Invariants
//! - An injected failure is per thread and fires once, at the `skip + 1`th
//!   call of its kind on that thread; tests running in parallel threads
//!   never see each other's failures.
//! - Injected errors go through [`crate::Error::io`] like real ones, so
//!   the errno alone decides `Resource` versus `Io`.

/// The system calls a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Opening or creating a segment or index file.
    Open,
    /// Mapping a file (`ENOMEM` at `vm.max_map_count`).
    Mmap,
    /// `pwrite` of batch bytes into a `.log`.
    Write,
}

#[cfg(test)]
thread_local! {
    static PENDING: std::cell::RefCell<Vec<(Call, u32, i32)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Test seam: the `skip + 1`th `call` on this thread fails with `errno`.
#[cfg(test)]
pub(crate) fn inject(call: Call, skip: u32, errno: rustix::io::Errno) {
    PENDING.with(|p| p.borrow_mut().push((call, skip, errno.raw_os_error())));
}

/// Injected failures that have not fired yet on this thread.
#[cfg(test)]
pub(crate) fn pending() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// `Err` when a test injected a failure for this `call` (see [`inject`]).
#[inline]
pub(crate) fn check(call: Call) -> std::io::Result<()> {
    #[cfg(test)]
    {
        let fired = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().position(|(c, _, _)| *c == call)?;
            let (_, skip, errno) = p.get_mut(i)?;
            if *skip > 0 {
                *skip -= 1;
                return None;
            }
            let errno = *errno;
            p.remove(i);
            Some(errno)
        });
        if let Some(errno) = fired {
            return Err(std::io::Error::from_raw_os_error(errno));
        }
    }
    let _ = call;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The storage side of issue 13's failure classes, with injected
    //! errnos: a refused resource (descriptors, memory, maps) fails the one
    //! call, changes nothing and a retry succeeds; an I/O error on data
    //! takes the whole log directory offline, and only then.
    use super::*;
    use crate::test_util::{TS, batch, filled_log, small_config};
    use crate::{Error, LeaderEpoch, LogConfig, LogDir, Offset, PartitionLog, TopicPartition};
    use rustix::io::Errno;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn assert_retriable(e: &Error) {
        assert_eq!(pending(), 0, "the injected failure did not fire");
        assert!(
            matches!(e, Error::Resource { .. })
                && e.is_retriable_resource()
                && !e.takes_log_dir_offline(),
            "{e:?}"
        );
    }

    #[test]
    fn resources_refused_at_roll_fail_the_append_alone_and_a_retry_succeeds() {
        // Each case: (call, calls let through first, errno). The roll opens
        // the new .log, .index and .timeindex (3 opens, 3 maps), then
        // seals the old segment, which opens each index by path to trim it.
        let cases = [
            (Call::Open, 0, Errno::MFILE),
            (Call::Open, 2, Errno::NFILE),
            (Call::Open, 3, Errno::MFILE),
            (Call::Mmap, 0, Errno::NOMEM),
            (Call::Mmap, 2, Errno::NOMEM),
        ];
        for (call, skip, errno) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut log = filled_log(dir.path(), 10); // the active segment is full
            let files = names(dir.path());
            inject(call, skip, errno);
            let err = log
                .append_as_leader(&batch(0, 2, TS, 339), LeaderEpoch(1), 0)
                .unwrap_err();
            assert_retriable(&err);
            assert!(!log.health().is_poisoned(), "{call:?} {skip}");
            assert_eq!(log.log_end_offset(), Offset(20));
            assert_eq!(
                names(dir.path()),
                files,
                "{call:?} {skip}: no half-made segment"
            );
            let info = log
                .append_as_leader(&batch(0, 2, TS, 339), LeaderEpoch(1), 0)
                .unwrap();
            assert_eq!(info.base_offset, Offset(20), "{call:?} {skip}");
            assert_eq!(log.segment_count(), 2);
            log.close().unwrap();
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            assert_eq!(log.log_end_offset(), Offset(22), "{call:?} {skip}");
        }
    }

    #[test]
    fn resources_refused_at_open_fail_that_open_alone() {
        for (call, skip, errno) in [
            (Call::Open, 0, Errno::MFILE),
            (Call::Open, 1, Errno::NFILE),
            (Call::Mmap, 0, Errno::NOMEM),
            (Call::Mmap, 4, Errno::NOMEM),
        ] {
            let dir = tempfile::tempdir().unwrap();
            filled_log(dir.path(), 25).close().unwrap();
            inject(call, skip, errno);
            let err = PartitionLog::open(dir.path(), small_config()).unwrap_err();
            assert_retriable(&err);
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            assert_eq!(log.log_end_offset(), Offset(50), "{call:?} {skip}");
            assert!(!log.health().is_poisoned());
        }
    }

    #[test]
    fn a_growth_refused_for_memory_fails_the_append_alone() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            segment_index_bytes: 1 << 20,
            ..small_config()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        // 64 KiB are reserved at first: the 164th 400-byte batch grows it.
        for _ in 0..163 {
            log.append_as_leader(&batch(0, 1, TS, 339), LeaderEpoch(0), 0)
                .unwrap();
        }
        inject(Call::Mmap, 0, Errno::NOMEM);
        let err = log
            .append_as_leader(&batch(0, 1, TS, 339), LeaderEpoch(0), 0)
            .unwrap_err();
        assert_retriable(&err);
        assert_eq!(log.log_end_offset(), Offset(163));
        let info = log
            .append_as_leader(&batch(0, 1, TS, 339), LeaderEpoch(0), 0)
            .unwrap();
        assert_eq!(info.base_offset, Offset(163));
    }

    #[test]
    fn a_write_error_takes_the_whole_log_directory_offline() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let tp = |p: i32| TopicPartition {
            topic: "t".into(),
            partition: p,
        };
        let mut a = dir.open_partition(&tp(0), small_config()).unwrap();
        let mut b = dir.open_partition(&tp(1), small_config()).unwrap();
        let one = batch(0, 1, TS, 10);
        a.append_as_leader(&one, LeaderEpoch(0), 0).unwrap();
        inject(Call::Write, 0, Errno::IO);
        let err = a.append_as_leader(&one, LeaderEpoch(0), 0).unwrap_err();
        assert!(matches!(err, Error::Io { op: "pwritev", .. }), "{err:?}");
        assert!(err.takes_log_dir_offline());
        assert!(dir.health().is_poisoned());
        assert!(matches!(
            b.append_as_leader(&one, LeaderEpoch(0), 0),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(
            dir.open_partition(&tp(2), small_config()),
            Err(Error::Poisoned { .. })
        ));
    }

    #[test]
    fn an_fsync_error_at_close_takes_the_log_directory_offline() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let mut log = dir.open_partition(&tp, small_config()).unwrap();
        log.append_as_leader(&batch(0, 1, TS, 10), LeaderEpoch(0), 0)
            .unwrap();
        crate::flush::fail_next_sync();
        assert!(matches!(log.close(), Err(Error::Io { .. })));
        assert!(dir.health().is_poisoned());
        // No marker: the next start recovers the partition as unclean.
        assert!(!root.path().join("t-0/clean.shutdown").exists());
    }
}
