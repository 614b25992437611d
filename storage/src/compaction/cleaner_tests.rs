//! The cleaner's two passes against a model: the latest record of each
//! key survives (unless it is an expired tombstone), nothing else does,
//! offsets and batch boundaries never move, and each producer's last
//! batch stays in the log.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::RecordBatchView;
use sluice_protocol::batch_builder::ProducerIdentity;
use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
use sluice_protocol::record_batch::{CompressionType, set_base_offset};
use sluice_protocol::records::BatchRecords;

use super::*;

const CODECS: [CompressionType; 5] = [
    CompressionType::None,
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

/// One input batch: records of (key, value), its codec and producer.
#[derive(Debug, Clone)]
struct InBatch {
    records: Vec<(Option<u8>, Option<u8>)>,
    codec: usize,
    producer: Option<i64>,
}

fn batch_strategy() -> impl Strategy<Value = InBatch> {
    (
        prop::collection::vec(
            (
                prop::option::weighted(0.95, 0u8..8),
                prop::option::weighted(0.8, any::<u8>()),
            ),
            1..6,
        ),
        0usize..5,
        prop::option::of(1i64..4),
    )
        .prop_map(|(records, codec, producer)| InBatch {
            records,
            codec,
            producer,
        })
}

/// The batches as stored: base offsets dense from 0, batch i at time 1000·i.
fn encode(batches: &[InBatch]) -> Vec<Bytes> {
    let mut next = 0i64;
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut w = BatchWriter::new(4096);
            for (key, value) in &b.records {
                let key = key.map(|k| [b'k', k]);
                let value = value.map(|v| [v; 3]);
                assert!(w.try_append(&RecordParts {
                    timestamp: 1000 * i as i64,
                    key: key.as_ref().map(|k| k.as_slice()),
                    value: value.as_ref().map(|v| v.as_slice()),
                    headers: &[],
                }));
            }
            let producer = b
                .producer
                .map_or(ProducerIdentity::NONE, |id| ProducerIdentity {
                    id,
                    epoch: 0,
                });
            let sequence = if b.producer.is_some() { i as i32 } else { -1 };
            let batch = w.finish(CODECS[b.codec], producer, sequence).unwrap();
            let mut bytes = batch.to_vec();
            set_base_offset(&mut bytes, next);
            next += b.records.len() as i64;
            Bytes::from(bytes)
        })
        .collect()
}

/// (offset, key, value) of every record in `batch`.
/// (offset, key, value) of one record.
type OwnedRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn records_of(batch: &[u8]) -> Vec<OwnedRecord> {
    let view = RecordBatchView::parse(batch, usize::MAX).unwrap();
    view.verify_crc().unwrap();
    let records = BatchRecords::new(view, usize::MAX).unwrap();
    records
        .iter()
        .map(|r| {
            let r = r.unwrap();
            (
                view.base_offset() + i64::from(r.offset_delta),
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn cleaning_keeps_the_latest_per_key_offsets_and_producer_batches(
        batches in prop::collection::vec(batch_strategy(), 1..15),
        horizon_batch in 0usize..16,
    ) {
        let encoded = encode(&batches);
        let views: Vec<_> = encoded.iter().map(|b| RecordBatchView::parse(b, usize::MAX).unwrap()).collect();
        let mut map = OffsetMap::with_memory(1 << 16);
        let end = map_batches(views.iter().copied(), &mut map, 1 << 20).unwrap();
        let log_end = views.last().unwrap().last_offset() + 1;
        prop_assert_eq!(end, Some(log_end));
        // Tombstones go in the batches before batch `horizon_batch`.
        let horizon = views.get(horizon_batch).map_or(log_end, |v| v.base_offset());
        let rules = CleaningRules { tombstones_removable_below: Some(horizon), records_bytes_max: 1 << 20 };
        let mut last_of_producer = BTreeMap::new();
        for (i, b) in batches.iter().enumerate() {
            if let Some(p) = b.producer { last_of_producer.insert(p, i); }
        }
        let producer_last: BTreeSet<usize> = last_of_producer.values().copied().collect();

        // The model: the latest offset of each key, and which records live.
        let all: Vec<_> = encoded.iter().flat_map(|b| records_of(b)).collect();
        let mut latest = BTreeMap::new();
        for (offset, key, _) in &all {
            if let Some(k) = key { latest.insert(k.clone(), *offset); }
        }
        let expected: Vec<_> = all.iter().filter(|(offset, key, value)| {
            let Some(k) = key else { return false };
            let batch_end = views.iter().find(|v| v.last_offset() >= *offset).unwrap().last_offset();
            latest[k] == *offset && !(value.is_none() && batch_end < horizon)
        }).cloned().collect();

        let mut kept = Vec::new();
        for (i, view) in views.iter().enumerate() {
            let out = filter_batch(view, &map, &rules, producer_last.contains(&i)).unwrap();
            let bytes = match out {
                Filtered::Keep => encoded[i].clone(),
                Filtered::Drop => {
                    prop_assert!(!producer_last.contains(&i), "a producer's last batch was dropped");
                    continue;
                }
                Filtered::Rewrite(b) => b,
            };
            let new = RecordBatchView::parse(&bytes, usize::MAX).unwrap();
            new.verify_crc().unwrap();
            prop_assert_eq!(new.base_offset(), view.base_offset());
            prop_assert_eq!(new.last_offset(), view.last_offset());
            prop_assert_eq!(new.producer_id(), view.producer_id());
            prop_assert_eq!(new.base_sequence(), view.base_sequence());
            kept.extend(records_of(&bytes));
        }
        prop_assert_eq!(kept, expected);
    }
}

#[test]
fn a_small_map_stops_at_a_batch_boundary() {
    let batches: Vec<InBatch> = (0..10)
        .map(|i| InBatch {
            records: (0..4)
                .map(|j| (Some(((i * 4 + j) % 256) as u8), Some(1)))
                .collect(),
            codec: i % 5,
            producer: None,
        })
        .collect();
    let encoded = encode(&batches);
    let views: Vec<_> = encoded
        .iter()
        .map(|b| RecordBatchView::parse(b, usize::MAX).unwrap())
        .collect();
    // 10 keys fit (12 slots at 90 %): two batches of four, not three.
    let mut map = OffsetMap::with_memory(12 * super::super::offset_map::SLOT_BYTES);
    let end = map_batches(views.iter().copied(), &mut map, 1 << 20).unwrap();
    assert_eq!(end, Some(8));
    assert_eq!(map.len(), 8);
}

#[test]
fn an_emptied_last_producer_batch_stays_as_an_empty_batch() {
    let batches = vec![
        InBatch {
            records: vec![(Some(1), Some(1)), (Some(2), Some(2))],
            codec: 1,
            producer: Some(7),
        },
        InBatch {
            records: vec![(Some(1), Some(3)), (Some(2), Some(4))],
            codec: 0,
            producer: None,
        },
    ];
    let encoded = encode(&batches);
    let views: Vec<_> = encoded
        .iter()
        .map(|b| RecordBatchView::parse(b, usize::MAX).unwrap())
        .collect();
    let mut map = OffsetMap::with_memory(1 << 12);
    map_batches(views.iter().copied(), &mut map, 1 << 20).unwrap();
    let rules = CleaningRules {
        tombstones_removable_below: None,
        records_bytes_max: 1 << 20,
    };
    let Filtered::Rewrite(empty) = filter_batch(&views[0], &map, &rules, true).unwrap() else {
        panic!("the producer's last batch must be kept");
    };
    let view = RecordBatchView::parse(&empty, usize::MAX).unwrap();
    view.verify_crc().unwrap();
    assert_eq!(
        (view.records_count(), view.base_offset(), view.last_offset()),
        (0, 0, 1)
    );
    assert_eq!((view.producer_id(), view.base_sequence()), (7, 0));
    assert_eq!(view.compression(), Some(CompressionType::None));
    assert_eq!(
        filter_batch(&views[0], &map, &rules, false).unwrap(),
        Filtered::Drop
    );
    assert_eq!(
        filter_batch(&views[1], &map, &rules, false).unwrap(),
        Filtered::Keep
    );
}
