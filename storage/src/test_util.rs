//! Test helpers: well-formed batches and small configs.

use crate::config::LogConfig;

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
