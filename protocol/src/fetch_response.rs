//! The Fetch response (v4–12), written by hand so that record bytes never
//! pass through user space.
//!
//! kafka-protocol encodes a message into one contiguous buffer, which would
//! mean copying every fetched batch out of its segment. This encoder writes
//! only the framing and names the places where record bytes go: its output
//! is a list of [`FetchPart`]s, encoded bytes interleaved with
//! `Records { index, len }` placeholders, and the broker writes the encoded
//! parts and each region straight from the segment's mapping (one
//! `writev`: the kernel's one copy).
//!
//! ```text
//! FetchResponse                       v4–11                 v12 (flexible)
//!   throttle_time_ms                  i32                   i32
//!   error_code                        i16 (v7+)             i16
//!   session_id                        i32 (v7+)             i32
//!   responses                         [i32 n]               [uvarint n+1]
//!     topic                           string (i16 length)   compact string
//!     partitions                      [i32 n]               [uvarint n+1]
//!       partition_index               i32                   i32
//!       error_code                    i16                   i16
//!       high_watermark                i64                   i64
//!       last_stable_offset            i64                   i64
//!       log_start_offset              i64 (v5+)             i64
//!       aborted_transactions          nullable [i32 n]      nullable [uvarint n+1]
//!         producer_id, first_offset   i64, i64              i64, i64, tagged fields
//!       preferred_read_replica        i32 (v11+)            i32
//!       records                       i32 length, bytes     uvarint length+1, bytes
//!       tagged fields                 —                     0: diverging_epoch
//!                                                           1: current_leader
//!     tagged fields                   —                     none
//!   tagged fields                     —                     none
//! ```
//!
//! # Invariants
//! - Concatenating the parts, with `Records { index, len }` replaced by the
//!   caller's region `index` (exactly `len` bytes), gives the byte-for-byte
//!   encoding kafka-protocol would produce with the records inline (tested
//!   for every version 4–12 on random responses).
//! - Regions are numbered in the order they appear: topic by topic,
//!   partition by partition, region by region; every region gets exactly
//!   one `Records` part, even when empty.
//! - Tagged fields are written only when they differ from their defaults
//!   (-1, -1), as Kafka does: librdkafka before 2.1.1 mis-skips them.
//! - Fields a version lacks are not written (a v4 response has no
//!   `log_start_offset`); the caller fills one struct for every version.
//!
//! # Limits
//! - A partition's records, a string and an array must fit their wire
//!   lengths (`i32`, `i16`, `u32` varint); otherwise
//!   [`DecodeError::EncodeOverflow`]. So must the whole frame (`i32`).
//!
//! # Caveats
//! - Records are never null: Kafka always sends an empty record set rather
//!   than null, and so does this encoder.
//! - `snapshot_id` (tagged field 2, KRaft followers) and v13+ (topic ids)
//!   are not written: Sluice serves Fetch 4–12.
//!
//! # References
//! `FetchResponse.json` in Kafka; KIP-482 (tagged fields); Kafka's
//! `FetchResponse` and `MultiRecordsSend` (the same idea in Java).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, TopicName};

use crate::error::{DecodeError, Result};
use crate::frame::{FRAME_SIZE_PREFIX_BYTES, frame_size_prefix};
use crate::header::{encode_response_header, response_header_bytes};

/// Lowest Fetch version this encoder writes.
pub const FETCH_VERSION_MIN: i16 = 4;
/// Highest Fetch version this encoder writes.
pub const FETCH_VERSION_MAX: i16 = 12;
/// First flexible Fetch version.
const FLEXIBLE_FROM: i16 = 12;

/// A Fetch response, with record regions given by length only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponseData {
    pub throttle_time_ms: i32,
    /// Top-level error (v7+).
    pub error_code: i16,
    /// Fetch session id (v7+); 0 for no session.
    pub session_id: i32,
    pub topics: Vec<FetchResponseTopic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponseTopic {
    pub name: TopicName,
    pub partitions: Vec<FetchResponsePartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponsePartition {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// v5+.
    pub log_start_offset: i64,
    /// Tagged field 0 (v12+): where a follower's log diverges.
    pub diverging_epoch: DivergingEpoch,
    /// Tagged field 1 (v12+): the leader, sent with NOT_LEADER_OR_FOLLOWER
    /// and FENCED_LEADER_EPOCH.
    pub current_leader: CurrentLeader,
    /// `None` is null (Kafka sends null unless read_committed).
    pub aborted_transactions: Option<Vec<FetchAbortedTransaction>>,
    /// v11+; -1 for none.
    pub preferred_read_replica: i32,
    /// Byte lengths of the record regions the caller will send for this
    /// partition, in order. Their concatenation is the partition's records.
    pub record_regions: Vec<usize>,
}

impl Default for FetchResponsePartition {
    /// The defaults of `FetchResponse.json`.
    fn default() -> Self {
        Self {
            partition_index: 0,
            error_code: 0,
            high_watermark: 0,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: DivergingEpoch::default(),
            current_leader: CurrentLeader::default(),
            aborted_transactions: None,
            preferred_read_replica: -1,
            record_regions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchAbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// `EpochEndOffset` in `FetchResponse.json`; `(-1, -1)` is "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    pub epoch: i32,
    pub end_offset: i64,
}

impl Default for DivergingEpoch {
    fn default() -> Self {
        Self {
            epoch: -1,
            end_offset: -1,
        }
    }
}

/// `LeaderIdAndEpoch` in `FetchResponse.json`; `(-1, -1)` is "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

impl Default for CurrentLeader {
    fn default() -> Self {
        Self {
            leader_id: -1,
            leader_epoch: -1,
        }
    }
}

/// One piece of an encoded Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPart {
    /// Bytes to write as they are.
    Encoded(Bytes),
    /// The caller's record region number `index`, exactly `len` bytes.
    Records { index: usize, len: usize },
}

/// An encoded Fetch response: its parts and their total size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFetchResponse {
    pub parts: Vec<FetchPart>,
    /// Bytes of all parts, regions included.
    pub total_bytes: usize,
}

impl EncodedFetchResponse {
    /// The parts concatenated with `regions` substituted: the copy path
    /// (TLS, simulation, tests). Fails if a region's length differs from
    /// the one encoded.
    pub fn assemble<R: AsRef<[u8]>>(&self, regions: &[R]) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.total_bytes);
        for part in &self.parts {
            match part {
                FetchPart::Encoded(bytes) => out.put_slice(bytes),
                FetchPart::Records { index, len } => {
                    let region = regions.get(*index).map(AsRef::as_ref).unwrap_or_default();
                    if region.len() != *len {
                        return Err(DecodeError::EncodeOverflow {
                            field: "record region length",
                            value: region.len() as u64,
                        });
                    }
                    out.put_slice(region);
                }
            }
        }
        Ok(out.freeze())
    }
}

/// Encodes the response body (no size prefix, no response header).
pub fn encode_fetch_response(
    data: &FetchResponseData,
    version: i16,
) -> Result<EncodedFetchResponse> {
    check_version(version)?;
    let mut w = PartsWriter::new(data);
    w.body(data, version)?;
    Ok(w.finish())
}

/// Encodes the whole response frame: 4-byte size, response header (v0 for
/// Fetch 4–11, v1 for 12), then the body. Writing the parts in order is the
/// complete reply.
pub fn encode_fetch_response_frame(
    data: &FetchResponseData,
    version: i16,
    correlation_id: i32,
) -> Result<EncodedFetchResponse> {
    let body = encode_fetch_response(data, version)?;
    let header_bytes = response_header_bytes(ApiKey::Fetch, version);
    let size = header_bytes.saturating_add(body.total_bytes);
    let mut head = BytesMut::with_capacity(FRAME_SIZE_PREFIX_BYTES + header_bytes);
    head.put_slice(&frame_size_prefix(size)?);
    encode_response_header(&mut head, ApiKey::Fetch, version, correlation_id);
    let mut parts = Vec::with_capacity(body.parts.len() + 1);
    parts.push(FetchPart::Encoded(head.freeze()));
    parts.extend(body.parts);
    Ok(EncodedFetchResponse {
        parts,
        total_bytes: FRAME_SIZE_PREFIX_BYTES + size,
    })
}

fn check_version(version: i16) -> Result<()> {
    if (FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version) {
        Ok(())
    } else {
        Err(DecodeError::Encode {
            what: "FetchResponse",
            api_version: version,
            reason: format!("only v{FETCH_VERSION_MIN}-{FETCH_VERSION_MAX} are written by hand"),
        })
    }
}

/// Accumulates encoded bytes and cuts them into parts at each region.
struct PartsWriter {
    buf: BytesMut,
    parts: Vec<FetchPart>,
    total_bytes: usize,
    next_region: usize,
}

impl PartsWriter {
    fn new(data: &FetchResponseData) -> Self {
        // A first guess at the framing: fixed fields per partition and
        // topic. Only the framing lives here, never record bytes.
        let partitions: usize = data.topics.iter().map(|t| t.partitions.len()).sum();
        let guess = 32 + data.topics.len() * 64 + partitions * 96;
        Self {
            buf: BytesMut::with_capacity(guess),
            parts: Vec::with_capacity(2 * partitions + 1),
            total_bytes: 0,
            next_region: 0,
        }
    }

    fn finish(mut self) -> EncodedFetchResponse {
        self.cut();
        EncodedFetchResponse {
            parts: self.parts,
            total_bytes: self.total_bytes,
        }
    }

    /// Moves the bytes written so far into an `Encoded` part. `split` hands
    /// over the written bytes and keeps the spare capacity: no copy.
    fn cut(&mut self) {
        if !self.buf.is_empty() {
            self.total_bytes += self.buf.len();
            self.parts
                .push(FetchPart::Encoded(self.buf.split().freeze()));
        }
    }

    fn region(&mut self, len: usize) {
        self.cut();
        self.parts.push(FetchPart::Records {
            index: self.next_region,
            len,
        });
        self.next_region += 1;
        self.total_bytes += len;
    }

    fn body(&mut self, data: &FetchResponseData, version: i16) -> Result<()> {
        self.buf.put_i32(data.throttle_time_ms);
        if version >= 7 {
            self.buf.put_i16(data.error_code);
            self.buf.put_i32(data.session_id);
        }
        self.array_len(data.topics.len(), version)?;
        for topic in &data.topics {
            self.string(topic.name.as_bytes(), version)?;
            self.array_len(topic.partitions.len(), version)?;
            for partition in &topic.partitions {
                self.partition(partition, version)?;
            }
            self.no_tagged_fields(version);
        }
        self.no_tagged_fields(version);
        Ok(())
    }

    fn partition(&mut self, p: &FetchResponsePartition, version: i16) -> Result<()> {
        self.buf.put_i32(p.partition_index);
        self.buf.put_i16(p.error_code);
        self.buf.put_i64(p.high_watermark);
        self.buf.put_i64(p.last_stable_offset);
        if version >= 5 {
            self.buf.put_i64(p.log_start_offset);
        }
        self.aborted_transactions(p.aborted_transactions.as_deref(), version)?;
        if version >= 11 {
            self.buf.put_i32(p.preferred_read_replica);
        }
        self.records(&p.record_regions, version)?;
        if version >= FLEXIBLE_FROM {
            self.partition_tagged_fields(p);
        }
        Ok(())
    }

    fn aborted_transactions(
        &mut self,
        aborted: Option<&[FetchAbortedTransaction]>,
        version: i16,
    ) -> Result<()> {
        let Some(aborted) = aborted else {
            if version >= FLEXIBLE_FROM {
                self.buf.put_u8(0);
            } else {
                self.buf.put_i32(-1);
            }
            return Ok(());
        };
        self.array_len(aborted.len(), version)?;
        for txn in aborted {
            self.buf.put_i64(txn.producer_id);
            self.buf.put_i64(txn.first_offset);
            self.no_tagged_fields(version);
        }
        Ok(())
    }

    fn records(&mut self, regions: &[usize], version: i16) -> Result<()> {
        let len = regions
            .iter()
            .try_fold(0usize, |sum, len| sum.checked_add(*len))
            .ok_or(DecodeError::EncodeOverflow {
                field: "partition records length",
                value: u64::MAX,
            })?;
        let overflow = DecodeError::EncodeOverflow {
            field: "partition records length",
            value: len as u64,
        };
        if version >= FLEXIBLE_FROM {
            let len_plus_one = u32::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(overflow)?;
            put_unsigned_varint(&mut self.buf, len_plus_one);
        } else {
            self.buf.put_i32(i32::try_from(len).map_err(|_| overflow)?);
        }
        for len in regions {
            self.region(*len);
        }
        Ok(())
    }

    fn partition_tagged_fields(&mut self, p: &FetchResponsePartition) {
        let diverging = p.diverging_epoch != DivergingEpoch::default();
        let leader = p.current_leader != CurrentLeader::default();
        self.buf.put_u8(u8::from(diverging) + u8::from(leader));
        if diverging {
            // tag 0, size 13: epoch i32, end_offset i64, no tagged fields.
            self.buf.put_slice(&[0, 13]);
            self.buf.put_i32(p.diverging_epoch.epoch);
            self.buf.put_i64(p.diverging_epoch.end_offset);
            self.buf.put_u8(0);
        }
        if leader {
            // tag 1, size 9: leader_id i32, leader_epoch i32, no tagged fields.
            self.buf.put_slice(&[1, 9]);
            self.buf.put_i32(p.current_leader.leader_id);
            self.buf.put_i32(p.current_leader.leader_epoch);
            self.buf.put_u8(0);
        }
    }

    fn no_tagged_fields(&mut self, version: i16) {
        if version >= FLEXIBLE_FROM {
            self.buf.put_u8(0);
        }
    }

    fn array_len(&mut self, len: usize, version: i16) -> Result<()> {
        let overflow = DecodeError::EncodeOverflow {
            field: "array length",
            value: len as u64,
        };
        if version >= FLEXIBLE_FROM {
            let len_plus_one = u32::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(overflow)?;
            put_unsigned_varint(&mut self.buf, len_plus_one);
        } else {
            self.buf.put_i32(i32::try_from(len).map_err(|_| overflow)?);
        }
        Ok(())
    }

    fn string(&mut self, s: &[u8], version: i16) -> Result<()> {
        let overflow = DecodeError::EncodeOverflow {
            field: "string length",
            value: s.len() as u64,
        };
        if version >= FLEXIBLE_FROM {
            let len_plus_one = u32::try_from(s.len())
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(overflow)?;
            put_unsigned_varint(&mut self.buf, len_plus_one);
        } else {
            self.buf
                .put_i16(i16::try_from(s.len()).map_err(|_| overflow)?);
        }
        self.buf.put_slice(s);
        Ok(())
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    fn topic(name: &'static str, partitions: Vec<FetchResponsePartition>) -> FetchResponseTopic {
        FetchResponseTopic {
            name: TopicName(StrBytes::from_static_str(name)),
            partitions,
        }
    }

    #[test]
    fn parts_alternate_framing_and_regions_in_order() {
        let data = FetchResponseData {
            topics: vec![
                topic(
                    "a",
                    vec![
                        FetchResponsePartition {
                            record_regions: vec![3, 0],
                            ..Default::default()
                        },
                        FetchResponsePartition {
                            record_regions: vec![5],
                            ..Default::default()
                        },
                    ],
                ),
                topic("b", vec![FetchResponsePartition::default()]),
            ],
            ..Default::default()
        };
        let encoded = encode_fetch_response(&data, 12).unwrap();
        let regions: Vec<_> = encoded
            .parts
            .iter()
            .filter_map(|p| match p {
                FetchPart::Records { index, len } => Some((*index, *len)),
                FetchPart::Encoded(_) => None,
            })
            .collect();
        assert_eq!(regions, vec![(0, 3), (1, 0), (2, 5)]);
        let assembled = encoded.assemble(&[&b"abc"[..], b"", b"defgh"]).unwrap();
        assert_eq!(assembled.len(), encoded.total_bytes);
        let decoded = FetchResponse::decode(&mut assembled.clone(), 12).unwrap();
        assert_eq!(
            decoded.responses[0].partitions[0].records.as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            decoded.responses[0].partitions[1].records.as_deref(),
            Some(&b"defgh"[..])
        );
        assert!(encoded.assemble(&[&b"ab"[..], b"", b"defgh"]).is_err());
    }

    #[test]
    fn frame_starts_with_size_and_header() {
        let data = FetchResponseData::default();
        for (version, header_bytes) in [(11, 4), (12, 5)] {
            let encoded = encode_fetch_response_frame(&data, version, 1234).unwrap();
            let mut frame = encoded.assemble::<&[u8]>(&[]).unwrap();
            assert_eq!(frame.len(), encoded.total_bytes);
            assert_eq!(frame.get_i32() as usize, frame.len());
            assert_eq!(frame.get_i32(), 1234);
            frame.advance(header_bytes - 4);
            assert!(FetchResponse::decode(&mut frame, version).is_ok());
        }
    }

    #[test]
    fn versions_outside_4_to_12_are_refused() {
        let data = FetchResponseData::default();
        assert!(encode_fetch_response(&data, 3).is_err());
        assert!(encode_fetch_response(&data, 13).is_err());
    }

    /// The same response in kafka-protocol's types, records inline.
    pub(crate) fn to_kafka_protocol(
        data: &FetchResponseData,
        regions: &[Vec<u8>],
        version: i16,
    ) -> FetchResponse {
        let mut next = 0;
        let topics = data.topics.iter().map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                let mut records = Vec::new();
                for _ in &p.record_regions {
                    records.extend_from_slice(&regions[next]);
                    next += 1;
                }
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(p.error_code)
                    .with_high_watermark(p.high_watermark)
                    .with_last_stable_offset(p.last_stable_offset)
                    .with_log_start_offset(p.log_start_offset)
                    .with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(p.diverging_epoch.epoch)
                            .with_end_offset(p.diverging_epoch.end_offset),
                    )
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(p.current_leader.leader_id.into())
                            .with_leader_epoch(p.current_leader.leader_epoch),
                    )
                    .with_aborted_transactions(p.aborted_transactions.as_ref().map(|a| {
                        a.iter()
                            .map(|t| {
                                AbortedTransaction::default()
                                    .with_producer_id(t.producer_id.into())
                                    .with_first_offset(t.first_offset)
                            })
                            .collect()
                    }))
                    .with_preferred_read_replica(if version >= 11 {
                        p.preferred_read_replica.into()
                    } else {
                        (-1).into()
                    })
                    .with_records(Some(Bytes::from(records)))
            });
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_partitions(partitions.collect())
        });
        FetchResponse::default()
            .with_throttle_time_ms(data.throttle_time_ms)
            .with_error_code(data.error_code)
            .with_session_id(if version >= 7 { data.session_id } else { 0 })
            .with_responses(topics.collect())
    }

    #[test]
    fn matches_kafka_protocol_for_a_fixed_response_at_every_version() {
        let data = FetchResponseData {
            throttle_time_ms: 7,
            error_code: 0,
            session_id: 99,
            topics: vec![topic(
                "orders",
                vec![FetchResponsePartition {
                    partition_index: 3,
                    high_watermark: 1000,
                    last_stable_offset: 990,
                    log_start_offset: 5,
                    diverging_epoch: DivergingEpoch {
                        epoch: 4,
                        end_offset: 77,
                    },
                    current_leader: CurrentLeader {
                        leader_id: 2,
                        leader_epoch: 9,
                    },
                    aborted_transactions: Some(vec![FetchAbortedTransaction {
                        producer_id: 11,
                        first_offset: 12,
                    }]),
                    preferred_read_replica: 1,
                    record_regions: vec![4, 2],
                    ..Default::default()
                }],
            )],
        };
        let regions = vec![b"abcd".to_vec(), b"ef".to_vec()];
        for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
            let ours = encode_fetch_response(&data, version)
                .unwrap()
                .assemble(&regions)
                .unwrap();
            let mut theirs = BytesMut::new();
            to_kafka_protocol(&data, &regions, version)
                .encode(&mut theirs, version)
                .unwrap();
            assert_eq!(ours, theirs, "v{version}");
        }
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        fn partition() -> impl Strategy<Value = (FetchResponsePartition, Vec<Vec<u8>>)> {
            let aborted = proptest::option::of(proptest::collection::vec(
                (any::<i64>(), any::<i64>()).prop_map(|(producer_id, first_offset)| {
                    FetchAbortedTransaction {
                        producer_id,
                        first_offset,
                    }
                }),
                0..3,
            ));
            // -1 often, so the "default, not written" path is exercised.
            let maybe_default = || prop_oneof![Just(-1i32), any::<i32>()];
            (
                (
                    any::<i32>(),
                    any::<i16>(),
                    any::<i64>(),
                    any::<i64>(),
                    any::<i64>(),
                ),
                (maybe_default(), prop_oneof![Just(-1i64), any::<i64>()]),
                (maybe_default(), maybe_default()),
                aborted,
                maybe_default(),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
            )
                .prop_map(|(fixed, diverging, leader, aborted, replica, regions)| {
                    let partition = FetchResponsePartition {
                        partition_index: fixed.0,
                        error_code: fixed.1,
                        high_watermark: fixed.2,
                        last_stable_offset: fixed.3,
                        log_start_offset: fixed.4,
                        diverging_epoch: DivergingEpoch {
                            epoch: diverging.0,
                            end_offset: diverging.1,
                        },
                        current_leader: CurrentLeader {
                            leader_id: leader.0,
                            leader_epoch: leader.1,
                        },
                        aborted_transactions: aborted,
                        preferred_read_replica: replica,
                        record_regions: regions.iter().map(Vec::len).collect(),
                    };
                    (partition, regions)
                })
        }

        fn response() -> impl Strategy<Value = (FetchResponseData, Vec<Vec<u8>>)> {
            let topic = (
                "[a-z._-]{0,20}",
                proptest::collection::vec(partition(), 0..4),
            );
            (
                any::<i32>(),
                any::<i16>(),
                any::<i32>(),
                proptest::collection::vec(topic, 0..4),
            )
                .prop_map(|(throttle_time_ms, error_code, session_id, topics)| {
                    let mut regions = Vec::new();
                    let topics = topics
                        .into_iter()
                        .map(|(name, partitions)| FetchResponseTopic {
                            name: TopicName(StrBytes::from_string(name)),
                            partitions: partitions
                                .into_iter()
                                .map(|(p, r)| {
                                    regions.extend(r);
                                    p
                                })
                                .collect(),
                        })
                        .collect();
                    let data = FetchResponseData {
                        throttle_time_ms,
                        error_code,
                        session_id,
                        topics,
                    };
                    (data, regions)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn byte_identical_to_kafka_protocol_at_every_version((data, regions) in response()) {
                for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
                    let encoded = encode_fetch_response(&data, version).unwrap();
                    let ours = encoded.assemble(&regions).unwrap();
                    prop_assert_eq!(ours.len(), encoded.total_bytes);
                    let mut theirs = BytesMut::new();
                    to_kafka_protocol(&data, &regions, version)
                        .encode(&mut theirs, version)
                        .unwrap();
                    prop_assert_eq!(&ours[..], &theirs[..], "v{}", version);
                }
            }
        }
    }
}
