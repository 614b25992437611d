//! A fetched batch, read record by record as views into the fetched
//! bytes: [`crate::Consumer::poll_batches`] hands these out, and
//! [`crate::Consumer::poll`] turns them into owned [`ConsumerRecord`]s.
//!
//! ```text
//! Fetch response frame (Bytes) ─► FetchedBatch { records: slice of the frame,
//!                                               or the decompressed buffer }
//!                                  └─► records() ─► RecordView { key: &[u8], value: &[u8], … }
//! ```
//!
//! # Invariants
//! - The batch's CRC-32C was checked when it was fetched; a record that
//!   does not parse is an error from the iterator, never a panic.
//! - Records below the fetch position (a fetch returns whole batches) are
//!   skipped by the iterator.
//! - Iterating allocates nothing: views borrow the batch's bytes.

use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::records::RecordHeaders;
use sluice_protocol::{RecordBatchView, RecordIter, TimestampType};

use crate::consumer::ConsumerRecord;
use crate::error::{Result, protocol};

/// The records of one batch of one partition.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub topic: Arc<str>,
    pub partition: i32,
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
    /// The first offset returned; earlier ones were consumed before.
    from: i64,
    /// The record bytes (decompressed when the batch was compressed).
    records: Bytes,
}

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub offset: i64,
    /// Milliseconds since the epoch (create time or log-append time).
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: RecordHeaders<'a>,
}

impl FetchedBatch {
    /// `records` are `view`'s record bytes (decompressed if needed).
    pub(crate) fn new(
        topic: &Arc<str>,
        partition: i32,
        view: &RecordBatchView<'_>,
        records: Bytes,
        from: i64,
    ) -> Self {
        Self {
            topic: Arc::clone(topic),
            partition,
            base_offset: view.base_offset(),
            base_timestamp: view.base_timestamp(),
            max_timestamp: view.max_timestamp(),
            log_append_time: view.timestamp_type() == TimestampType::LogAppendTime,
            from,
            records,
        }
    }

    /// The records at or after the fetch position, in offset order.
    pub fn records(&self) -> impl Iterator<Item = Result<RecordView<'_>>> + '_ {
        RecordIter::new(&self.records).filter_map(move |r| {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    return Some(Err(protocol(format!(
                        "{}/{} batch at offset {}: {e}",
                        self.topic, self.partition, self.base_offset
                    ))));
                }
            };
            let offset = self.base_offset + i64::from(r.offset_delta);
            if offset < self.from {
                return None;
            }
            let timestamp = if self.log_append_time {
                self.max_timestamp
            } else {
                self.base_timestamp + r.timestamp_delta
            };
            Some(Ok(RecordView {
                offset,
                timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            }))
        })
    }

    /// Appends the records as owned [`ConsumerRecord`]s (key and value
    /// still share the fetched bytes).
    pub fn to_consumer_records(&self, out: &mut Vec<ConsumerRecord>) -> Result<()> {
        for r in self.records() {
            let r = r?;
            out.push(ConsumerRecord {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(|k| self.records.slice_ref(k)),
                value: r.value.map(|v| self.records.slice_ref(v)),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(h.key).into_owned(),
                            h.value.map(|v| self.records.slice_ref(v)),
                        )
                    })
                    .collect(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::batch_builder::ProducerIdentity;
    use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
    use sluice_protocol::record_batch::CompressionType;

    #[test]
    fn records_are_views_from_the_fetch_position_and_convert_to_owned() {
        let mut w = BatchWriter::new(4096);
        let headers = [("h".to_owned(), Some(Bytes::from_static(b"x")))];
        for i in 0..5u8 {
            let value = [b'v', b'0' + i];
            assert!(w.try_append(&RecordParts {
                timestamp: 1000 + i64::from(i),
                key: (i % 2 == 0).then_some(&b"k"[..]),
                value: Some(&value),
                headers: &headers,
            }));
        }
        let mut bytes = w
            .finish(CompressionType::None, ProducerIdentity::NONE, -1)
            .expect("encodes")
            .to_vec();
        sluice_protocol::record_batch::set_base_offset(&mut bytes, 100);
        let bytes = Bytes::from(bytes);
        let view = RecordBatchView::parse(&bytes, bytes.len()).expect("parses");
        let batch = FetchedBatch::new(
            &Arc::from("t"),
            3,
            &view,
            bytes.slice_ref(view.records()),
            102,
        );
        let views: Vec<_> = batch.records().collect::<Result<_>>().expect("records");
        assert_eq!(views.len(), 3, "offsets 100 and 101 were consumed before");
        assert_eq!(views[0].offset, 102);
        assert_eq!(views[0].timestamp, 1002);
        assert_eq!(views[0].key, Some(&b"k"[..]));
        assert_eq!(views[1].key, None);
        assert_eq!(views[2].value, Some(&b"v4"[..]));
        let mut owned = Vec::new();
        batch.to_consumer_records(&mut owned).expect("converts");
        assert_eq!(owned.len(), 3);
        assert_eq!(owned[2].offset, 104);
        assert_eq!(
            owned[2].headers,
            vec![("h".to_owned(), Some(Bytes::from_static(b"x")))]
        );
        assert!(
            bytes
                .as_ptr_range()
                .contains(&owned[2].value.as_ref().expect("value").as_ptr()),
            "values share the fetched bytes"
        );
    }
}
