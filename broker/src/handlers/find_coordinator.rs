//! FindCoordinator (v0–4): which broker coordinates a group — the leader
//! of the `__consumer_offsets` partition the group id hashes to, read from
//! the metadata image.
//!
//! | case | answer |
//! |---|---|
//! | the partition's leader is this node and the coordinator is loaded | this node |
//! | … this node, still loading | COORDINATOR_LOAD_IN_PROGRESS (from the coordinator) |
//! | the leader is another, unfenced broker | that broker's endpoint |
//! | no `__consumer_offsets` yet, no leader, or the leader is fenced | COORDINATOR_NOT_AVAILABLE |
//!
//! Key type 0 (group) is served; key type 1 (transaction) answers
//! COORDINATOR_NOT_AVAILABLE, since transactions are not served yet (a
//! transactional producer retries rather than failing on a code it does
//! not expect); any other key type is INVALID_REQUEST. v4 batches keys in
//! `coordinator_keys` and answers one `Coordinator` per key; v0–3 carry
//! the one `key`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::records::partition_for;
use crate::group::{GroupError, OFFSETS_TOPIC};
use crate::metadata::MetadataImage;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of one key, or why there is none.
struct Found {
    node: i32,
    host: StrBytes,
    port: i32,
    error: Option<ResponseError>,
}

impl Found {
    fn error(e: ResponseError) -> Self {
        Self {
            node: -1,
            host: StrBytes::default(),
            port: -1,
            error: Some(e),
        }
    }

    fn message(&self) -> Option<StrBytes> {
        self.error.map(|e| StrBytes::from_string(e.to_string()))
    }

    fn code(&self) -> i16 {
        self.error.map_or(0, |e| e.code())
    }
}

pub async fn handle_find_coordinator(
    broker: &Arc<Broker>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let image = broker.image();
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = lookup(broker, &image, request.key_type, &key);
                Coordinator::default()
                    .with_node_id(BrokerId(found.node))
                    .with_host(found.host.clone())
                    .with_port(found.port)
                    .with_error_code(found.code())
                    .with_error_message(found.message())
                    .with_key(key)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let found = lookup(broker, &image, request.key_type, &request.key);
    FindCoordinatorResponse::default()
        .with_error_code(found.code())
        .with_error_message(found.message())
        .with_node_id(BrokerId(found.node))
        .with_host(found.host)
        .with_port(found.port)
}

fn lookup(broker: &Broker, image: &MetadataImage, key_type: i8, key: &str) -> Found {
    match key_type {
        KEY_TYPE_GROUP => group_coordinator(broker, image, key),
        KEY_TYPE_TRANSACTION => Found::error(ResponseError::CoordinatorNotAvailable),
        _ => Found::error(ResponseError::InvalidRequest),
    }
}

fn group_coordinator(broker: &Broker, image: &MetadataImage, group_id: &str) -> Found {
    let Some(offsets) = image.topic(OFFSETS_TOPIC) else {
        return Found::error(ResponseError::CoordinatorNotAvailable);
    };
    let partition = partition_for(group_id, offsets.partition_count());
    let Some(leader) = offsets.partition(partition).and_then(|p| p.leader()) else {
        return Found::error(ResponseError::CoordinatorNotAvailable);
    };
    // The image names this node, but its coordinator may not have taken
    // the partition yet (the reconciler has not run) or may be loading it:
    // both retriable, and the client asks again.
    if leader == broker.identity().node_id
        && let Err(e) = broker.groups().check_available(group_id)
    {
        return Found::error(match e {
            GroupError::NotCoordinator => ResponseError::CoordinatorNotAvailable,
            e => e.error_code(),
        });
    }
    let endpoint = image
        .broker(leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.client_endpoint());
    match endpoint {
        Some(e) => Found {
            node: leader,
            host: StrBytes::from_string(e.host.clone()),
            port: i32::from(e.port),
            error: None,
        },
        None => Found::error(ResponseError::CoordinatorNotAvailable),
    }
}
