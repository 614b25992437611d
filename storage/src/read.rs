//! The read path of [`PartitionLog`]: whole batches as file regions
//! (Fetch), and timestamp lookups (ListOffsets).
//!
//! # Invariants
//! - A read returns whole batches only, in offset order, from the batch
//!   holding the requested offset, never one whose last offset reaches the
//!   caller's upper bound (the high watermark is the caller's), and at most
//!   `max_bytes` unless `min_one_batch` lets the first batch exceed it
//!   (KIP-74).
//! - Nothing past a segment's published size is ever read.
//!
//! # Caveats
//! - Reads trust the stored batch headers (checked on append or by
//!   recovery) and do not re-check CRCs; consumers do.
//! - A read may span segments: one [`crate::FileRegion`] per segment.

use bytes::Bytes;

use crate::error::Result;
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::region::ReadInfo;
use crate::segment::Segment;

impl PartitionLog {
    /// Reads whole batches from the one holding `start`, up to `max_bytes`
    /// (KIP-74: with `min_one_batch` the first batch is returned whole even
    /// if larger), never including a batch whose last offset is at or
    /// above `upper_bound` (exclusive: e.g. the high watermark).
    pub fn read(
        &self,
        start: Offset,
        max_bytes: u32,
        upper_bound: Offset,
        min_one_batch: bool,
    ) -> Result<ReadInfo> {
        self.check()?;
        let log_end = self.log_end_offset();
        if start < self.log_start || start > log_end {
            return Err(self.out_of_range(start));
        }
        let mut info = ReadInfo {
            next_offset: start,
            log_start_offset: self.log_start,
            log_end_offset: log_end,
            ..ReadInfo::default()
        };
        let budget = u64::from(max_bytes);
        let first_segment = self.segment_for(start);
        let mut target = start;
        for seg in self.segments.iter().skip(first_segment) {
            if target >= seg.next_offset {
                continue;
            }
            // One open (or budget lookup) per segment read, not per batch.
            let seg_view = seg.view()?;
            let Some((mut pos, _)) = seg_view.find(target)? else {
                continue;
            };
            let region_start = pos;
            let mut region_records = 0;
            let mut stop = false;
            while pos < seg.size() {
                let meta = seg_view.batch_at(pos)?;
                let first = info.bytes == 0;
                if meta.last >= upper_bound
                    || (info.bytes + meta.size > budget && !(first && min_one_batch))
                {
                    stop = true;
                    break;
                }
                info.first_offset.get_or_insert(meta.base);
                info.bytes += meta.size;
                info.next_offset = meta.last.next();
                region_records += meta.records;
                pos += meta.size;
            }
            if pos > region_start {
                info.regions.push(seg_view.region(
                    region_start,
                    pos - region_start,
                    region_records,
                ));
            }
            if stop {
                break;
            }
            target = seg.next_offset;
        }
        Ok(info)
    }

    /// The first batch (at or after the log start) whose max timestamp is
    /// `>= ts`, found through the time index; the broker looks inside it
    /// for the exact record (ListOffsets by timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>> {
        self.check()?;
        for seg in &self.segments {
            if seg.max_timestamp < ts || seg.next_offset <= self.log_start {
                continue;
            }
            let seg_view = seg.view()?;
            if let Some((pos, meta)) = seg_view.find_by_timestamp(ts, self.log_start)? {
                return seg_view.bytes(pos, meta.size).map(Some);
            }
        }
        Ok(None)
    }

    /// The first batch carrying the log's largest timestamp (ListOffsets
    /// MAX_TIMESTAMP), or `None` when the log is empty.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>> {
        self.check()?;
        let mut best: Option<&Segment> = None;
        for seg in self.segments.iter().filter(|s| !s.is_empty()) {
            if best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else {
            return Ok(None);
        };
        let seg_view = seg.view()?;
        match seg_view.find(seg.offset_of_max_timestamp)? {
            Some((pos, meta)) => seg_view.bytes(pos, meta.size).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{TS, batch_ranges, filled_log as filled, open_small as open};
    use crate::{Error, Offset};
    use bytes::Bytes;
    use sluice_protocol::RecordBatchView;

    #[test]
    fn reads_respect_bounds_max_bytes_and_min_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 30); // 400-byte batches of 2 offsets; 10 per segment
        assert_eq!(log.log_end_offset(), Offset(60));
        assert_eq!(log.segment_count(), 3);
        let r = log.read(Offset(5), 1000, Offset(60), false).unwrap();
        assert_eq!(
            r.first_offset,
            Some(Offset(4)),
            "whole batch holding the start"
        );
        assert_eq!((r.bytes, r.next_offset), (800, Offset(8)));
        let r = log.read(Offset(5), 10, Offset(60), true).unwrap();
        assert_eq!((r.bytes, r.next_offset), (400, Offset(6)), "KIP-74");
        let r = log.read(Offset(5), 10, Offset(60), false).unwrap();
        assert!(r.regions.is_empty());
        assert_eq!(r.next_offset, Offset(5));
        let r = log.read(Offset(0), u32::MAX, Offset(60), false).unwrap();
        assert_eq!(r.regions.len(), 3, "one region per segment");
        assert_eq!(r.bytes, 12_000);
        assert_eq!(batch_ranges(&r).len(), 30);
        let r = log.read(Offset(18), u32::MAX, Offset(23), false).unwrap();
        assert_eq!(
            batch_ranges(&r),
            vec![(18, 19, 1), (20, 21, 1)],
            "never past the upper bound"
        );
        assert!(
            log.read(Offset(60), 100, Offset(60), true)
                .unwrap()
                .regions
                .is_empty()
        );
        assert!(matches!(
            log.read(Offset(61), 100, Offset(60), true),
            Err(Error::OffsetOutOfRange {
                requested: Offset(61),
                log_start: Offset(0),
                log_end: Offset(60)
            })
        ));
    }

    #[test]
    fn timestamp_lookups_use_the_time_index() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 25); // batch i has max timestamp TS + i
        let base_of = |b: Option<Bytes>| {
            let b = b.unwrap();
            RecordBatchView::parse(&b, 1 << 20).unwrap().base_offset()
        };
        assert_eq!(base_of(log.offset_for_timestamp(TS + 13).unwrap()), 26);
        assert_eq!(base_of(log.offset_for_timestamp(0).unwrap()), 0);
        assert_eq!(base_of(log.offset_for_timestamp(TS + 24).unwrap()), 48);
        assert!(log.offset_for_timestamp(TS + 25).unwrap().is_none());
        assert_eq!(base_of(log.batch_with_max_timestamp().unwrap()), 48);
        let empty_dir = tempfile::tempdir().unwrap();
        assert!(
            open(empty_dir.path())
                .batch_with_max_timestamp()
                .unwrap()
                .is_none()
        );
    }
}
