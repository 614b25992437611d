//! Test helpers: well-formed batches and small configs.

use std::path::Path;

use sluice_protocol::BatchIter;

use crate::config::LogConfig;
use crate::log::PartitionLog;
use crate::offset::LeaderEpoch;
use crate::region::ReadInfo;

/// A timestamp for test batches.
pub(crate) const TS: i64 = 1_700_000_000_000;

/// An uncompressed RecordBatch v2 of `count` records (the record bytes are
/// `payload` filler: storage never looks inside them), with a valid CRC.
pub(crate) fn batch(base: i64, count: i32, max_ts: i64, payload: usize) -> Vec<u8> {
    let mut b = vec![0u8; 61 + payload];
    let len = i32::try_from(b.len() - 12).unwrap();
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = (i % 251) as u8 + 1;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Small segments and indexes so tests roll often.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 256,
        index_interval_bytes: 300,
        max_message_bytes: 2048,
        retention_ms: None,
        ..LogConfig::default()
    }
}

pub(crate) fn open_small(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, small_config()).unwrap()
}

pub(crate) fn batch_ranges(info: &ReadInfo) -> Vec<(i64, i64, i32)> {
    let mut out = Vec::new();
    for r in &info.regions {
        let b = r.bytes();
        for item in BatchIter::new(&b, 1 << 20) {
            let (_, v) = item.unwrap();
            v.verify_crc().unwrap();
            out.push((v.base_offset(), v.last_offset(), v.partition_leader_epoch()));
        }
    }
    out
}

pub(crate) fn filled_log(dir: &Path, batches: i64) -> PartitionLog {
    let mut log = open_small(dir);
    for i in 0..batches {
        log.append_as_leader(&batch(0, 2, TS + i, 339), LeaderEpoch(1), 0)
            .unwrap();
    }
    log
}
