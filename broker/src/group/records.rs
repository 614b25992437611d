//! The records of `__consumer_offsets`, in Kafka's own key and value
//! schemas, so Kafka's tools (and a Kafka broker) can read what Sluice wrote.
//!
//! ```text
//! key   version i16 = 1 (offset commit)     version i16 = 2 (group metadata)
//!       group   string                      group   string
//!       topic   string
//!       partition i32
//! value OffsetCommitValue v3                GroupMetadataValue v3
//!       version i16 = 3                     version i16 = 3
//!       offset i64                          protocol_type string
//!       leader_epoch i32 (-1: none)         generation i32
//!       metadata string                     protocol nullable string
//!       commit_timestamp i64                leader nullable string
//!                                           current_state_timestamp i64
//!                                           members [member_id string,
//!                                             group_instance_id nullable string,
//!                                             client_id string, client_host string,
//!                                             rebalance_timeout i32, session_timeout i32,
//!                                             subscription bytes, assignment bytes]
//! null value = tombstone (the offset, or the whole group, is deleted)
//! ```
//!
//! `string` is an i16 length and UTF-8 bytes (-1: null), `bytes` an i32
//! length; all integers big-endian. Reading accepts offset-commit values
//! v0–3 and group-metadata values v0–3; other key versions (transactional
//! markers, KIP-848 records) are skipped.
//!
//! # Caveats
//! - Members are stored with empty subscription and assignment bytes: a
//!   replayed group comes back `Empty` (members rejoin), so the bytes would
//!   only cost space; leaving them out also bounds the record's size by
//!   `group.max.size` × ids (see `limits.rs`).
//!
//! # References
//! Kafka's `OffsetCommitKey.json`, `OffsetCommitValue.json`,
//! `GroupMetadataKey.json`, `GroupMetadataValue.json` and
//! `GroupMetadataManager.scala`.

use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::CompressionType;
use sluice_protocol::batch_builder::{self, ProducerIdentity};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// The offsets-topic partition that holds `group_id`: Kafka's
/// `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`, with
/// Java's `String.hashCode` over UTF-16 code units.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A group member as stored (ids and timeouts only; see the caveats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
}

/// A group's generation, protocol and members as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
}

/// A record of `__consumer_offsets` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct RecordError(pub &'static str);

impl OffsetsRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Self::OffsetCommit { group, .. } | Self::GroupMetadata { group, .. } => group,
        }
    }

    /// Key and value bytes in Kafka's schemas.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            Self::OffsetCommit {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.put_i32(*partition);
                (key.freeze(), value.as_ref().map(encode_offset_value))
            }
            Self::GroupMetadata { group, value } => {
                key.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut key, group);
                (key.freeze(), value.as_ref().map(encode_group_value))
            }
        }
    }

    /// Parses a stored record; `Ok(None)` for key versions the group
    /// coordinator does not own.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, RecordError> {
        let mut k = Reader(key);
        match k.i16()? {
            0 | 1 => {
                let group = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                let value = value.map(decode_offset_value).transpose()?;
                Ok(Some(Self::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value,
                }))
            }
            2 => {
                let group = k.string()?;
                let value = value.map(decode_group_value).transpose()?;
                Ok(Some(Self::GroupMetadata { group, value }))
            }
            _ => Ok(None),
        }
    }
}

fn encode_offset_value(v: &OffsetCommitValue) -> Bytes {
    let mut b = BytesMut::with_capacity(24 + v.metadata.len());
    b.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_string(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp_ms);
    b.freeze()
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError("unknown offset commit value version"));
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn encode_group_value(v: &GroupMetadataValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_string(&mut b, v.protocol.as_deref());
    put_nullable_string(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp_ms);
    b.put_i32(i32::try_from(v.members.len()).unwrap_or(i32::MAX));
    for m in &v.members {
        put_string(&mut b, &m.member_id);
        put_nullable_string(&mut b, m.group_instance_id.as_deref());
        put_string(&mut b, &m.client_id);
        put_string(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        // Subscription and assignment: empty (see the module caveats).
        b.put_i32(0);
        b.put_i32(0);
    }
    b.freeze()
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError("unknown group metadata value version"));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        r.bytes()?;
        r.bytes()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// One RecordBatch v2 (uncompressed, no producer id) holding `records`,
/// ready for `Partition::append_as_leader`.
pub fn build_batch(records: &[OffsetsRecord], now_ms: i64) -> Result<Bytes, RecordError> {
    let mut encoded: Vec<_> = records
        .iter()
        .map(|r| {
            let (key, value) = r.encode();
            batch_builder::record(now_ms, Some(key), value, [])
        })
        .collect();
    batch_builder::encode_batch(
        &mut encoded,
        CompressionType::None,
        ProducerIdentity::NONE,
        -1,
    )
    .map_err(|_| RecordError("record batch does not encode"))
}

fn put_string(b: &mut BytesMut, s: &str) {
    // Ids are bounded far below i16::MAX bytes (limits.rs) before they get
    // here; clamp rather than write a corrupt length.
    let len = s.len().min(i16::MAX as usize);
    b.put_i16(i16::try_from(len).unwrap_or(i16::MAX));
    b.put_slice(s.as_bytes().get(..len).unwrap_or_default());
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        self.take(N)?
            .try_into()
            .map_err(|_| RecordError("truncated"))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(usize::try_from(len).unwrap_or(0))?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError("string is not UTF-8"))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?
            .ok_or(RecordError("null where a string is required"))
    }

    fn bytes(&mut self) -> Result<&[u8], RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(&[]);
        }
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafka_hashing() {
        // Java: "my-group".hashCode() == 1_000_989_385 (checked by hand:
        // Math.abs(h) % 50 is what Kafka's GroupMetadataManager uses).
        let h = "my-group"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(partition_for("my-group", 50), h.abs() % 50);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..50).contains(&partition_for("ünïcode-group", 50)));
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    #[test]
    fn offset_and_group_records_round_trip_and_tombstones_are_null() {
        let records = [
            OffsetsRecord::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetCommitValue {
                    offset: 42,
                    leader_epoch: 7,
                    metadata: "meta".into(),
                    commit_timestamp_ms: 1_700_000_000_000,
                }),
            },
            OffsetsRecord::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            OffsetsRecord::GroupMetadata {
                group: "g".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 5,
                    protocol: Some("range".into()),
                    leader: Some("m-1".into()),
                    current_state_timestamp_ms: 9,
                    members: vec![MemberMetadata {
                        member_id: "m-1".into(),
                        group_instance_id: Some("i-1".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 300_000,
                        session_timeout_ms: 45_000,
                    }],
                }),
            },
            OffsetsRecord::GroupMetadata {
                group: "g".into(),
                value: None,
            },
        ];
        for r in &records {
            let (key, value) = r.encode();
            let back = OffsetsRecord::decode(&key, value.as_deref()).unwrap();
            assert_eq!(back.as_ref(), Some(r));
        }
    }

    #[test]
    fn offset_commit_value_v3_bytes_are_kafkas() {
        let (key, value) = OffsetsRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: Some(OffsetCommitValue {
                offset: 2,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 3,
            }),
        }
        .encode();
        assert_eq!(key.as_ref(), [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        assert_eq!(
            value.unwrap().as_ref(),
            [
                0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3
            ]
        );
    }

    #[test]
    fn truncated_or_unknown_records_are_errors_or_skipped() {
        let (key, value) = OffsetsRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 1,
                protocol: None,
                leader: None,
                current_state_timestamp_ms: 0,
                members: vec![],
            }),
        }
        .encode();
        let value = value.unwrap();
        for cut in 0..value.len() {
            assert!(
                OffsetsRecord::decode(&key, value.get(..cut)).is_err(),
                "cut {cut}"
            );
        }
        assert_eq!(
            OffsetsRecord::decode(&[0, 0], None),
            Err(RecordError("truncated"))
        );
        assert_eq!(OffsetsRecord::decode(&[0, 9, 1, 2], None), Ok(None));
    }

    #[test]
    fn batches_parse_as_record_batch_v2() {
        let batch = build_batch(
            &[OffsetsRecord::GroupMetadata {
                group: "g".into(),
                value: None,
            }],
            5,
        )
        .unwrap();
        let view = sluice_protocol::RecordBatchView::parse(&batch, batch.len()).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.records_count(), 1);
        assert_eq!(view.producer_id(), -1);
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn every_record_of_a_built_batch_reads_back_in_order() {
        let records: Vec<OffsetsRecord> = (0..3)
            .map(|p| OffsetsRecord::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: p,
                value: None,
            })
            .chain([OffsetsRecord::GroupMetadata {
                group: "g".into(),
                value: None,
            }])
            .collect();
        let batch = build_batch(&records, 5).unwrap();
        let view = sluice_protocol::RecordBatchView::parse(&batch, batch.len()).unwrap();
        let parsed = sluice_protocol::BatchRecords::new(view, 1 << 20).unwrap();
        let back: Vec<OffsetsRecord> = parsed
            .iter()
            .map(|r| {
                let r = r.unwrap();
                OffsetsRecord::decode(r.key.unwrap(), r.value)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(back, records);
    }
}
