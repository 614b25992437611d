//! Pieces the storage benchmarks share.

/// A RecordBatch v2 of `records` records of `record` bytes (at least its
/// header), valid for the log: framing, magic 2 and CRC-32C; the record
/// bytes are filler (storage never looks inside a batch).
pub fn batch(records: i32, record: usize) -> Vec<u8> {
    let payload = (record * records as usize).saturating_sub(61);
    let mut b = vec![0u8; 61 + payload];
    let len = i32::try_from(b.len() - 12).unwrap();
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[35..43].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = (i * 31 % 251) as u8;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The environment variable `name` as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
