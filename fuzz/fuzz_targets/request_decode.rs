//! The request path the broker runs on every frame: size prefix
//! (`frame::decode_frame`), header (`header::decode_request_header`), the
//! served-version check (`api::served_range`), and the body decoded into the
//! request type `broker/src/dispatch.rs` picks for the API key, through the
//! same `RequestFrame::decode_body`. A decoded Produce request's batches
//! then go through the produce-time validation (`sluice_fuzz`).
//!
//! Input layout: byte 0 picks the API (an index into the served table,
//! `CORE_APIS` then `GROUP_APIS`), byte 1 the version inside its served
//! range, and the rest is the frame after `api_key` and `api_version`
//! (correlation id, client id, tagged fields, body). Byte 0 ≥ 0xF0 instead
//! sends bytes 1.. as a whole frame, unserved and unknown keys included.
#![no_main]

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{MESSAGE_MAX_BYTES, validate_produced_batch};
use sluice_protocol::api::{CORE_APIS, GROUP_APIS};
use sluice_protocol::header::RequestFrame;
use sluice_protocol::{SOCKET_REQUEST_MAX_BYTES_DEFAULT, decode_frame, decode_request_header};

const RAW_FRAME: u8 = 0xF0;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut wire = BytesMut::new();
    let apis: Vec<_> = CORE_APIS.iter().chain(GROUP_APIS).collect();
    if pick >= RAW_FRAME {
        frame_into(&mut wire, rest);
    } else {
        let Some((&v, tail)) = rest.split_first() else {
            return;
        };
        let api = apis[usize::from(pick) % apis.len()];
        let (min, max) = api.served;
        let version = min + i16::from(v) % (max - min + 1);
        let mut frame = Vec::with_capacity(4 + tail.len());
        frame.extend_from_slice(&(api.api_key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(tail);
        frame_into(&mut wire, &frame);
    }
    let Ok(Some(frame)) = decode_frame(&mut wire, SOCKET_REQUEST_MAX_BYTES_DEFAULT) else {
        return;
    };
    let Ok(request) = decode_request_header(frame) else {
        return;
    };
    let version = request.api_version();
    let served = sluice_protocol::api::served_range(request.api_key)
        .is_some_and(|(min, max)| (min..=max).contains(&version));
    if served {
        decode_as_dispatch_does(&request);
    }
});

fn frame_into(wire: &mut BytesMut, frame: &[u8]) {
    wire.put_i32(frame.len() as i32);
    wire.put_slice(frame);
}

/// The body types of `broker/src/dispatch.rs`, one arm per served API. A
/// served API without an arm here fails the run: the target must follow
/// the table.
fn decode_as_dispatch_does(request: &RequestFrame) {
    macro_rules! decode {
        ($ty:ty) => {{
            let _ = request.decode_body::<$ty>();
        }};
    }
    match request.api_key {
        ApiKey::ApiVersions => decode!(ApiVersionsRequest),
        ApiKey::Metadata => decode!(MetadataRequest),
        ApiKey::Produce => {
            if let Ok(produce) = request.decode_body::<ProduceRequest>() {
                for topic in &produce.topic_data {
                    for partition in &topic.partition_data {
                        if let Some(records) = &partition.records {
                            let _ = validate_produced_batch(records, MESSAGE_MAX_BYTES);
                        }
                    }
                }
            }
        }
        ApiKey::Fetch => decode!(FetchRequest),
        ApiKey::ListOffsets => decode!(ListOffsetsRequest),
        ApiKey::CreateTopics => decode!(CreateTopicsRequest),
        ApiKey::InitProducerId => decode!(InitProducerIdRequest),
        ApiKey::DeleteTopics => decode!(DeleteTopicsRequest),
        ApiKey::CreatePartitions => decode!(CreatePartitionsRequest),
        ApiKey::DescribeConfigs => decode!(DescribeConfigsRequest),
        ApiKey::AlterConfigs => decode!(AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => decode!(IncrementalAlterConfigsRequest),
        ApiKey::DeleteRecords => decode!(DeleteRecordsRequest),
        ApiKey::DescribeCluster => decode!(DescribeClusterRequest),
        ApiKey::OffsetForLeaderEpoch => decode!(OffsetForLeaderEpochRequest),
        ApiKey::ElectLeaders => decode!(ElectLeadersRequest),
        ApiKey::AlterPartitionReassignments => decode!(AlterPartitionReassignmentsRequest),
        ApiKey::ListPartitionReassignments => decode!(ListPartitionReassignmentsRequest),
        ApiKey::FindCoordinator => decode!(FindCoordinatorRequest),
        ApiKey::JoinGroup => decode!(JoinGroupRequest),
        ApiKey::SyncGroup => decode!(SyncGroupRequest),
        ApiKey::Heartbeat => decode!(HeartbeatRequest),
        ApiKey::LeaveGroup => decode!(LeaveGroupRequest),
        ApiKey::OffsetCommit => decode!(OffsetCommitRequest),
        ApiKey::OffsetFetch => decode!(OffsetFetchRequest),
        ApiKey::ListGroups => decode!(ListGroupsRequest),
        ApiKey::DescribeGroups => decode!(DescribeGroupsRequest),
        ApiKey::DeleteGroups => decode!(DeleteGroupsRequest),
        ApiKey::OffsetDelete => decode!(OffsetDeleteRequest),
        other => panic!("{other:?} is served but this target does not decode it"),
    }
}
