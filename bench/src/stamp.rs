//! The send timestamp a producer writes at the start of every record value,
//! read back by consumers for end-to-end latency. Nanoseconds since the
//! Unix epoch (the record's own Kafka timestamp has only milliseconds).
//!
//! Two spellings, told apart by the first bytes:
//! - binary: 8 bytes little-endian (every workload but metrics);
//! - JSON: the value starts `{"ts":` followed by exactly 19 digits (the
//!   metrics workload, whose values must stay JSON). Nineteen digits hold
//!   nanoseconds since the epoch until the year 2286.
//!
//! A binary stamp cannot begin with `{"ts":` before 2262 (its top byte is
//! below 0x1a until then, `{` is 0x7b), so the two never collide.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of a binary stamp.
pub const BINARY_BYTES: usize = 8;
/// `{"ts":` + 19 digits.
pub const JSON_BYTES: usize = JSON_PREFIX.len() + JSON_DIGITS;

const JSON_PREFIX: &[u8] = b"{\"ts\":";
const JSON_DIGITS: usize = 19;

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Appends the binary stamp.
pub fn put_binary(buf: &mut impl bytes::BufMut, ns: u64) {
    buf.put_slice(&ns.to_le_bytes());
}

/// Appends `{"ts":<19 digits>`.
pub fn put_json(buf: &mut Vec<u8>, ns: u64) {
    buf.extend_from_slice(JSON_PREFIX);
    buf.extend_from_slice(format!("{ns:019}").as_bytes());
}

/// The stamp at the start of `value`, in either spelling.
pub fn decode(value: &[u8]) -> Option<u64> {
    if let Some(rest) = value.strip_prefix(JSON_PREFIX) {
        let digits = rest.get(..JSON_DIGITS)?;
        return std::str::from_utf8(digits).ok()?.parse().ok();
    }
    let bytes: [u8; BINARY_BYTES] = value.get(..BINARY_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_round_trip() {
        let ns = now_ns();
        let mut b = Vec::new();
        put_binary(&mut b, ns);
        b.extend_from_slice(b"filler");
        assert_eq!(decode(&b), Some(ns));
        let mut j = Vec::new();
        put_json(&mut j, ns);
        assert_eq!(j.len(), JSON_BYTES);
        j.extend_from_slice(b",\"v\":1}");
        assert_eq!(decode(&j), Some(ns));
        assert_eq!(decode(b"short"), None);
    }
}
