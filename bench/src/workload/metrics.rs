//! Metrics ingestion: ~500 B JSON metric points keyed by host, so a host's
//! points stay in order on one partition.
//!
//! ```json
//! {"ts":1712345678901234567,"host":"host-00042","metric":"cpu.user","value":12.345,"tags":{…},"pad":"…"}
//! ```

use std::io::Write as _;

use super::{Draw, Generated, RecordSource};
use crate::scenario::Records;
use crate::stamp;

const METRICS: &[&str] = &[
    "cpu.user",
    "cpu.system",
    "mem.used",
    "disk.read_bytes",
    "disk.write_bytes",
    "net.rx_bytes",
    "net.tx_bytes",
    "http.requests",
];

/// Keys are hosts: the key chooser picks which host reports.
pub struct Metrics {
    draw: Draw,
}

impl Metrics {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            draw: Draw::new(spec, seed, true)?,
        })
    }
}

impl RecordSource for Metrics {
    fn next(&mut self, stamp_ns: u64, out: &mut Generated) {
        let key_id = self.draw.key_id();
        let host = key_id.unwrap_or(0);
        let metric = METRICS
            .get(self.draw.rng.below(METRICS.len() as u64) as usize)
            .copied()
            .unwrap_or("cpu.user");
        let reading = self.draw.rng.next_f64() * 1000.0;
        let out = out.start(key_id);
        let _ = write!(out.key_buf(), "host-{host:05}");
        let value = out.value_buf();
        stamp::put_json(value, stamp_ns);
        value.extend_from_slice(
            format!(
                ",\"host\":\"host-{host:05}\",\"metric\":\"{metric}\",\"value\":{reading:.3},\
                 \"tags\":{{\"dc\":\"eu-west-1\",\"rack\":\"r{rack:02}\",\"service\":\"api\"}},\"pad\":\"",
                rack = host % 40
            )
            .as_bytes(),
        );
        // Pad to the configured size with printable filler, then close.
        let closing = b"\"}";
        let pad = self
            .draw
            .value_bytes
            .saturating_sub(value.len() + closing.len());
        self.draw.filler.extend(value, pad);
        value.extend_from_slice(closing);
    }
}
