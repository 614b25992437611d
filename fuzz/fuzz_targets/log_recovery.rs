//! Recovery from arbitrary segment, index and checkpoint bytes: the fuzz
//! input becomes the files of one partition directory, `PartitionLog::open`
//! must recover it without panicking, and what it then serves must keep the
//! log's invariants (`storage/src/recovery.rs`): every batch read parses,
//! offsets are dense from the log start offset to the log end offset, and
//! every batch recovery had to scan is CRC-valid. A batch is then appended,
//! the log closed and reopened, and the same checks run again.
//!
//! Input layout: chunks of `[tag][len: u16 BE][len bytes]` (a short last
//! chunk takes what is left). Tags, modulo 11: 0-2 segment A's `.log`,
//! `.index`, `.timeindex`; 3-5 the same for segment B; 6 raw
//! `partition.checkpoint`; 7 raw `clean.shutdown`; 8 a checkpoint written
//! from two i64 fields (recovery point, log start offset) with a valid CRC,
//! so the fuzzer reaches the trusted path; 9 segment B's base offset (i64,
//! default 1000); 10 segment A's base offset (default 0). A later chunk with
//! the same tag replaces the earlier one.
//!
//! Damage: a batch that fails below a valid checkpoint's recovery point
//! was fsynced, so it is damage, not a torn write: the log must then
//! refuse every call with `Damaged` and keep every `.log` file, the
//! damaged one unchanged (`check_damaged`).
//!
//! Trusted bytes: a segment wholly below a valid checkpoint's recovery
//! point, or any segment after a valid clean-shutdown marker, is not
//! re-checked by design (Kafka's `LogLoader` does the same), so CRC
//! validity is only required of batches recovery scanned.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{plain_batch, recovery_config};
use sluice_protocol::BatchIter;
use sluice_storage::{LeaderEpoch, PartitionLog};

const TAGS: u8 = 11;

fuzz_target!(|data: &[u8]| {
    let files = Files::parse(data);
    let dir = scratch_dir();
    let Ok(dir) = dir else { return };
    files.write(dir.path());
    let trusted_below = files.trusted_below();

    let logs_before = log_files(dir.path());
    let Ok(mut log) = PartitionLog::open(dir.path(), recovery_config()) else {
        return;
    };
    if log.is_damaged() {
        check_damaged(&mut log, dir.path(), &logs_before);
        return;
    }
    check(&log, trusted_below);

    let end = log.log_end_offset();
    let batch = plain_batch(3, 1_700_000_000_000);
    let Ok(info) = log.append_as_leader(&batch, LeaderEpoch(7), 1_700_000_000_001) else {
        return;
    };
    assert_eq!(
        info.base_offset, end,
        "an append continues at the log end offset"
    );
    assert_eq!(log.log_end_offset().0, end.0 + 3);
    check(&log, trusted_below);
    let end = log.log_end_offset();
    if log.close().is_err() {
        return;
    }
    let Ok(log) = PartitionLog::open(dir.path(), recovery_config()) else {
        panic!("a cleanly closed log does not reopen");
    };
    assert_eq!(log.log_end_offset(), end, "a clean close keeps every batch");
    check(&log, trusted_below);
});

/// A directory on tmpfs when there is one: fsyncs there cost nothing, so
/// the fuzzer runs at memory speed.
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("sluice-fuzz-")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}

/// Every `.log` file in `dir` with its bytes, by name.
fn log_files(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .filter_map(|p| Some((p.file_name()?.to_owned(), std::fs::read(&p).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Damage below the recovery point (`recovery.rs`): reported, every call
/// refused with `Damaged`, and no `.log` deleted; the damaged one is left
/// byte for byte as it was.
fn check_damaged(log: &mut PartitionLog, dir: &Path, before: &[(std::ffi::OsString, Vec<u8>)]) {
    let damaged = |r: Result<(), sluice_storage::Error>| match r {
        Err(sluice_storage::Error::Damaged { path, .. }) => path,
        other => panic!("a damaged log answered {other:?}"),
    };
    let end = log.log_end_offset();
    let path = damaged(log.read(log.log_start_offset(), 1 << 20, end, true).map(|_| ()));
    damaged(
        log.append_as_leader(&plain_batch(1, 1_700_000_000_000), LeaderEpoch(7), 0)
            .map(|_| ()),
    );
    let after = log_files(dir);
    let names = |v: &[(std::ffi::OsString, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(before), "a damaged log lost a segment");
    let bytes = |v: &[(std::ffi::OsString, Vec<u8>)]| {
        v.iter()
            .find(|(n, _)| path.file_name() == Some(n.as_os_str()))
            .map(|(_, b)| b.clone())
    };
    assert_eq!(bytes(&after), bytes(before), "the damaged segment was changed");
}

/// Reads the whole log and checks the invariants recovery promises.
fn check(log: &PartitionLog, trusted_below: Option<i64>) {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "log start {start:?} past log end {end:?}");
    let read = log
        .read(start, u32::MAX, end, true)
        .unwrap_or_else(|e| panic!("reading [{start:?}, {end:?}) failed: {e}"));
    let mut next: Option<i64> = None;
    for region in &read.regions {
        let bytes = region.bytes();
        for item in BatchIter::new(&bytes, usize::MAX >> 1) {
            let (_, view) =
                item.unwrap_or_else(|e| panic!("a recovered batch does not parse: {e}"));
            let base = view.base_offset();
            match next {
                None => assert!(
                    base <= start.0 && start.0 <= view.last_offset(),
                    "the first batch read [{base}, {}] does not hold the log start {start:?}",
                    view.last_offset()
                ),
                Some(n) => assert_eq!(base, n, "offsets are not dense"),
            }
            assert!(view.last_offset() >= base, "last offset below base offset");
            if trusted_below.is_none_or(|rp| base >= rp) {
                view.verify_crc()
                    .unwrap_or_else(|e| panic!("batch at {base} served with {e}"));
            }
            next = Some(view.last_offset() + 1);
        }
    }
    assert_eq!(
        next.unwrap_or(start.0),
        end.0,
        "the batches read end at the log end offset"
    );
    for ts in [i64::MIN, 0, 1_700_000_000_000, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }
}

/// The files of one partition directory, as the input describes them.
#[derive(Default)]
struct Files<'a> {
    segments: [[Option<&'a [u8]>; 3]; 2],
    bases: [i64; 2],
    checkpoint: Option<Vec<u8>>,
    marker: Option<&'a [u8]>,
}

impl<'a> Files<'a> {
    fn parse(mut data: &'a [u8]) -> Self {
        let mut files = Files {
            bases: [0, 1000],
            ..Files::default()
        };
        while let [tag, rest @ ..] = data {
            let (len, rest) = match rest {
                [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
                _ => (rest.len(), &[][..]),
            };
            let (bytes, rest) = rest.split_at(len.min(rest.len()));
            data = rest;
            match tag % TAGS {
                t @ 0..=5 => files.segments[usize::from(t / 3)][usize::from(t % 3)] = Some(bytes),
                6 => files.checkpoint = Some(bytes.to_vec()),
                7 => files.marker = Some(bytes),
                8 => {
                    let field = |i: usize| {
                        bytes
                            .get(i * 8..i * 8 + 8)
                            .and_then(|s| s.try_into().ok())
                            .map_or(0, i64::from_be_bytes)
                    };
                    files.checkpoint = Some(encode(b"SLCP", &[field(0), field(1)], 32));
                }
                t => {
                    let mut b = [0u8; 8];
                    let n = bytes.len().min(8);
                    b[..n].copy_from_slice(&bytes[..n]);
                    files.bases[usize::from(t == 10)] = i64::from_be_bytes(b);
                }
            }
        }
        files
    }

    fn write(&self, dir: &Path) {
        for (segment, base) in self.segments.iter().zip(self.bases) {
            for (file, ext) in segment.iter().zip(["log", "index", "timeindex"]) {
                if let Some(bytes) = file {
                    let _ = std::fs::write(dir.join(format!("{base:020}.{ext}")), bytes);
                }
            }
        }
        if let Some(bytes) = &self.checkpoint {
            let _ = std::fs::write(dir.join("partition.checkpoint"), bytes);
        }
        if let Some(bytes) = self.marker {
            let _ = std::fs::write(dir.join("clean.shutdown"), bytes);
        }
    }

    /// Below which offset recovery may trust bytes without a CRC check
    /// (`i64::MAX` after a valid clean-shutdown marker).
    fn trusted_below(&self) -> Option<i64> {
        if self
            .marker
            .is_some_and(|m| decode(m, b"SLCS", 1, 24).is_some())
        {
            return Some(i64::MAX);
        }
        let fields = decode(self.checkpoint.as_deref()?, b"SLCP", 2, 32)?;
        fields.first().copied()
    }
}

/// `storage/src/checkpoint.rs`'s file layout: magic, version 1, two zero
/// bytes, big-endian i64 fields, zero padding, CRC-32 (IEEE) of the rest.
fn encode(magic: &[u8; 4], fields: &[i64], len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(magic);
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    for f in fields {
        b.extend_from_slice(&f.to_be_bytes());
    }
    b.resize(len - 4, 0);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn decode(b: &[u8], magic: &[u8; 4], count: usize, len: usize) -> Option<Vec<i64>> {
    if b.len() != len || encode(magic, &[], len).get(..6) != b.get(..6) {
        return None;
    }
    let (body, crc) = b.split_at(len - 4);
    if crc32fast::hash(body).to_be_bytes() != crc {
        return None;
    }
    (0..count)
        .map(|i| {
            body.get(8 + i * 8..16 + i * 8)?
                .try_into()
                .ok()
                .map(i64::from_be_bytes)
        })
        .collect()
}
