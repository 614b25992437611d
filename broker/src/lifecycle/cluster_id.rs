//! One cluster id for every node: the first node that finds the metadata
//! log without one writes it there (its `meta.properties` id, or a new
//! one); every node then keeps the log's id in `meta.properties` and
//! reports it in Metadata and DescribeCluster.
//!
//! # Invariants
//! - A node whose `meta.properties` names another cluster than the log
//!   refuses to start: its data directory belongs elsewhere.
//! - `meta.properties` is replaced atomically (write, fsync, rename,
//!   fsync of the directory).

use std::path::Path;
use std::sync::Arc;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::{ApplyError, MetadataRecord, ProposeError};

const FILE: &str = "meta.properties";

/// The cluster id `meta.properties` in `data_dir` holds, if any.
pub fn read(data_dir: &Path) -> Result<Option<String>, BrokerError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("cluster.id="))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BrokerError::DataDirIo {
            op: "read",
            path,
            source,
        }),
    }
}

/// Writes `meta.properties` (Kafka's format, `version=1`) atomically.
pub fn write(data_dir: &Path, node_id: i32, cluster_id: &str) -> Result<(), BrokerError> {
    let path = data_dir.join(FILE);
    let tmp = data_dir.join("meta.properties.tmp");
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BrokerError::DataDirIo { op, path, source }
    };
    let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n");
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", data_dir))?;
    Ok(())
}

/// Settles this node's cluster id with the metadata log (see the module
/// doc) and records it on the broker.
pub async fn agree(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let data_dir = broker.config().data_dir.clone();
    let local = read(&data_dir)?;
    if broker.image().cluster_id().is_none() {
        let proposed = local
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        match broker
            .propose(MetadataRecord::ClusterIdAssigned {
                cluster_id: proposed,
            })
            .await
        {
            // Another node was first: its id is in the image now.
            Ok(_)
            | Err(BrokerError::Metadata(ProposeError::Rejected(ApplyError::ClusterIdAssigned(
                _,
            )))) => {}
            Err(e) => return Err(e),
        }
    }
    let image = broker.image();
    let Some(cluster) = image.cluster_id() else {
        return Err(BrokerError::ClusterId(
            "the metadata log has no cluster id after assigning one".into(),
        ));
    };
    match &local {
        Some(mine) if mine != cluster => {
            return Err(BrokerError::ClusterId(format!(
                "{} says cluster.id={mine}, but the metadata log of this cluster says {cluster}: \
                 this data directory belongs to another cluster (start the node on an empty \
                 data directory, or remove meta.properties if you know the data belongs here)",
                data_dir.join(FILE).display()
            )));
        }
        Some(_) => {}
        None => write(&data_dir, broker.identity().node_id, cluster)?,
    }
    broker.set_cluster_id(cluster);
    Ok(())
}
