//! Writes the seed corpora under `fuzz/corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example gen_corpus -- corpus`). Deterministic: rerunning it
//! rewrites the same files.
//!
//! - `record_batch`: valid batches built with the repo's batch builder
//!   (`sluice_protocol::batch_builder`) for every codec — gzip, snappy
//!   xerial-framed (what the builder writes, the Java client's framing) and
//!   raw (librdkafka's), lz4, zstd — and none; each with mode 0 (validate
//!   as sent) and mode 1 (CRC rewritten), and a few two-batch inputs.
//! - `request_decode`: every served API at every served version, the
//!   default body encoded by kafka-protocol behind a real request header,
//!   plus Produce requests carrying a compressed batch of each codec.
//! - `log_recovery`: the files of real partition logs written by
//!   `PartitionLog` (clean close, crash after a flush, several segments),
//!   with the zero-filled preallocated tails trimmed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_fuzz::recovery_config;
use sluice_protocol::CompressionType;
use sluice_protocol::api::{CORE_APIS, GROUP_APIS};
use sluice_protocol::batch_builder::{ProducerIdentity, encode_batch, record};
use sluice_storage::{LeaderEpoch, PartitionLog};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let batches = batches();
    record_batch(&root.join("record_batch"), &batches);
    request_decode(&root.join("request_decode"), &batches);
    log_recovery(&root.join("log_recovery"), &batches);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// (name, batch) for every codec, raw snappy included.
fn batches() -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for codec in CompressionType::ALL {
        let mut records: Vec<_> = (0..5)
            .map(|i| {
                record(
                    1_700_000_000_000 + i,
                    (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
                    Some(Bytes::from(format!("value-{i}-").repeat(4))),
                    [(format!("h{i}"), Some(Bytes::from_static(b"header-value")))],
                )
            })
            .collect();
        let producer = if codec == CompressionType::Zstd {
            ProducerIdentity { id: 42, epoch: 0 }
        } else {
            ProducerIdentity::NONE
        };
        let seq = if producer == ProducerIdentity::NONE {
            -1
        } else {
            0
        };
        let batch = encode_batch(&mut records, codec, producer, seq).unwrap();
        out.push((format!("{codec:?}").to_lowercase(), batch.clone()));
        if codec == CompressionType::None {
            out.push(("snappy-raw".into(), raw_snappy(&batch)));
        }
    }
    out
}

/// `plain` (uncompressed) re-encoded with raw (unframed) snappy, as
/// librdkafka writes it: codec bits, length and CRC rewritten.
fn raw_snappy(plain: &[u8]) -> Bytes {
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&plain[61..])
        .unwrap();
    let mut b = plain[..61].to_vec();
    b.extend_from_slice(&compressed);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = i16::from_be_bytes([b[21], b[22]]) & !0x07 | CompressionType::Snappy.id();
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn record_batch(dir: &Path, batches: &[(String, Bytes)]) {
    for (name, batch) in batches {
        for mode in [0u8, 1] {
            let mut input = vec![mode | (CompressionType::ALL.len() as u8 * 2)];
            input.extend_from_slice(batch);
            write(dir, &format!("{name}-mode{mode}"), &input);
        }
        // Mode bits 1-3 pick the direct-decompression codec: aim them at
        // this batch's own codec.
        let codec = CompressionType::ALL
            .iter()
            .position(|c| name.starts_with(&format!("{c:?}").to_lowercase()))
            .unwrap_or(2) as u8;
        let mut input = vec![codec << 1];
        input.extend_from_slice(batch);
        input.extend_from_slice(batch);
        write(dir, &format!("{name}-twice"), &input);
    }
}

fn request_decode(dir: &Path, batches: &[(String, Bytes)]) {
    let apis: Vec<_> = CORE_APIS.iter().chain(GROUP_APIS).collect();
    for (index, api) in apis.iter().enumerate() {
        for version in api.served.0..=api.served.1 {
            let pick = [index as u8, (version - api.served.0) as u8];
            let Some(body) = default_body(api.api_key, version) else {
                continue;
            };
            let input = request_input(pick, api.api_key, version, &body);
            write(dir, &format!("{:?}-v{version}", api.api_key), &input);
        }
    }
    let produce = apis
        .iter()
        .position(|a| a.api_key == ApiKey::Produce)
        .unwrap();
    let (min, max) = apis[produce].served;
    for (name, batch) in batches {
        for version in [min, max] {
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_static_str("seed-topic")))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                        ]),
                ]);
            let body = encode(&request, version);
            let pick = [produce as u8, (version - min) as u8];
            let input = request_input(pick, ApiKey::Produce, version, &body);
            write(dir, &format!("Produce-v{version}-{name}"), &input);
        }
    }
}

/// Input for `request_decode`: pick bytes, then the request header after
/// api_key and api_version, then the body.
fn request_input(pick: [u8; 2], key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")));
    let header = encode(&header, key.request_header_version(version));
    let mut input = pick.to_vec();
    input.extend_from_slice(&header[4..]);
    input.extend_from_slice(body);
    input
}

fn encode<M: Encodable>(m: &M, version: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).unwrap();
    b.to_vec()
}

fn default_body(key: ApiKey, v: i16) -> Option<Vec<u8>> {
    fn enc<M: Encodable + Default>(v: i16) -> Option<Vec<u8>> {
        let mut b = BytesMut::new();
        M::default().encode(&mut b, v).ok().map(|()| b.to_vec())
    }
    match key {
        ApiKey::ApiVersions => enc::<ApiVersionsRequest>(v),
        ApiKey::Metadata => enc::<MetadataRequest>(v),
        ApiKey::Produce => enc::<ProduceRequest>(v),
        ApiKey::Fetch => enc::<FetchRequest>(v),
        ApiKey::ListOffsets => enc::<ListOffsetsRequest>(v),
        ApiKey::CreateTopics => enc::<CreateTopicsRequest>(v),
        ApiKey::InitProducerId => enc::<InitProducerIdRequest>(v),
        ApiKey::DeleteTopics => enc::<DeleteTopicsRequest>(v),
        ApiKey::CreatePartitions => enc::<CreatePartitionsRequest>(v),
        ApiKey::DescribeConfigs => enc::<DescribeConfigsRequest>(v),
        ApiKey::AlterConfigs => enc::<AlterConfigsRequest>(v),
        ApiKey::IncrementalAlterConfigs => enc::<IncrementalAlterConfigsRequest>(v),
        ApiKey::DeleteRecords => enc::<DeleteRecordsRequest>(v),
        ApiKey::DescribeCluster => enc::<DescribeClusterRequest>(v),
        ApiKey::OffsetForLeaderEpoch => enc::<OffsetForLeaderEpochRequest>(v),
        ApiKey::FindCoordinator => enc::<FindCoordinatorRequest>(v),
        ApiKey::JoinGroup => enc::<JoinGroupRequest>(v),
        ApiKey::SyncGroup => enc::<SyncGroupRequest>(v),
        ApiKey::Heartbeat => enc::<HeartbeatRequest>(v),
        ApiKey::LeaveGroup => enc::<LeaveGroupRequest>(v),
        ApiKey::OffsetCommit => enc::<OffsetCommitRequest>(v),
        ApiKey::OffsetFetch => enc::<OffsetFetchRequest>(v),
        ApiKey::ListGroups => enc::<ListGroupsRequest>(v),
        ApiKey::DescribeGroups => enc::<DescribeGroupsRequest>(v),
        ApiKey::DeleteGroups => enc::<DeleteGroupsRequest>(v),
        ApiKey::OffsetDelete => enc::<OffsetDeleteRequest>(v),
        _ => None,
    }
}

fn log_recovery(dir: &Path, batches: &[(String, Bytes)]) {
    // (name, rolls between appends, how it ends)
    for (name, roll_every, end) in [
        ("clean-close", 0, End::Close),
        ("crash-after-flush", 0, End::CrashAfterFlush),
        ("crash-unflushed-tail", 0, End::CrashUnflushed),
        ("two-segments-clean", 4, End::Close),
        ("two-segments-crash", 4, End::CrashAfterFlush),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(tmp.path(), recovery_config()).unwrap();
        for (i, (_, batch)) in batches.iter().cycle().take(8).enumerate() {
            if roll_every > 0 && i == roll_every {
                log.roll(1_700_000_000_000).unwrap();
            }
            log.append_as_leader(batch, LeaderEpoch(3), 1_700_000_000_000 + i as i64)
                .unwrap();
            if i == 5 && end == End::CrashUnflushed {
                log.flush().unwrap();
            }
        }
        match end {
            End::Close => log.close().unwrap(),
            End::CrashAfterFlush => {
                log.flush().unwrap();
                log.checkpoint_recovery_point().unwrap();
                drop(log.simulate_crash());
            }
            End::CrashUnflushed => drop(log.simulate_crash()),
        }
        write(dir, name, &chunks(tmp.path()));
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum End {
    Close,
    CrashAfterFlush,
    CrashUnflushed,
}

/// The partition directory as `log_recovery` input chunks: up to two
/// segments (tags 0-2 and 3-5, base offsets as tags 10 and 9), the
/// checkpoint (6) and the clean-shutdown marker (7), zero tails trimmed.
fn chunks(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |tag: u8, bytes: &[u8]| {
        let end = if tag <= 5 {
            bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
        } else {
            bytes.len()
        };
        let bytes = &bytes[..end];
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").and_then(|b| b.parse().ok())
        })
        .collect();
    bases.sort();
    for (slot, base) in bases.iter().take(2).enumerate() {
        push(if slot == 0 { 10 } else { 9 }, &base.to_be_bytes());
        for (i, ext) in ["log", "index", "timeindex"].iter().enumerate() {
            if let Ok(bytes) = std::fs::read(dir.join(format!("{base:020}.{ext}"))) {
                push((slot * 3 + i) as u8, &bytes);
            }
        }
    }
    for (tag, file) in [(6, "partition.checkpoint"), (7, "clean.shutdown")] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            push(tag, &bytes);
        }
    }
    out
}
