//! The Produce request body, written around the batches instead of
//! through them.
//!
//! kafka-protocol's `ProduceRequest::encode` copies every batch into the
//! request buffer; here the fields between batches go into one small
//! buffer and the request is a list of parts — field bytes, batch, field
//! bytes, batch, … — that the connection writes with one vectored write.
//! A record's bytes are thus copied once on the way out: into its batch.
//!
//! # Invariants
//! - The parts, concatenated, are byte for byte what kafka-protocol encodes
//!   for the same request at the same version (checked by the tests for
//!   every version the client speaks).
//! - Batches of one topic are written under one topic entry, in the order
//!   given.
//!
//! # Limits
//! - Versions 3..=12 (topic names; v13 addresses topics by id and is not
//!   negotiated by this client).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, protocol};

/// One partition's batch in a request.
pub(crate) struct PartitionBatch<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub data: &'a Bytes,
}

/// The body of a Produce request at `version`, as parts in wire order.
/// `batches` must be grouped by topic (equal topics adjacent).
pub(crate) fn encode(
    batches: &[PartitionBatch<'_>],
    acks: i16,
    timeout_ms: i32,
    version: i16,
) -> Result<Vec<Bytes>> {
    if !(3..=12).contains(&version) {
        return Err(protocol(format!(
            "Produce v{version} is not written by this client"
        )));
    }
    let flexible = version >= 9;
    let mut meta = BytesMut::with_capacity(64 + batches.len() * 48);
    // Where each batch goes: after this many bytes of `meta`.
    let mut splits: Vec<(usize, &Bytes)> = Vec::with_capacity(batches.len());
    // transactional_id: null
    if flexible {
        put_uvarint(&mut meta, 0);
    } else {
        meta.put_i16(-1);
    }
    meta.put_i16(acks);
    meta.put_i32(timeout_ms);
    let topics = batches
        .chunk_by(|a, b| a.topic == b.topic)
        .collect::<Vec<_>>();
    put_len(&mut meta, topics.len(), flexible)?;
    for group in topics {
        let name = group.first().map_or("", |b| b.topic);
        put_string(&mut meta, name, flexible)?;
        put_len(&mut meta, group.len(), flexible)?;
        for b in group {
            meta.put_i32(b.partition);
            if flexible {
                put_uvarint(&mut meta, to_u32(b.data.len())? + 1);
            } else {
                meta.put_i32(to_i32(b.data.len())?);
            }
            splits.push((meta.len(), b.data));
            if flexible {
                put_uvarint(&mut meta, 0); // partition tagged fields
            }
        }
        if flexible {
            put_uvarint(&mut meta, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut meta, 0); // request tagged fields
    }
    let mut meta = meta.freeze();
    let mut parts = Vec::with_capacity(2 * splits.len() + 1);
    let mut taken = 0;
    for (at, data) in splits {
        parts.push(meta.split_to(at - taken));
        taken = at;
        parts.push(data.clone());
    }
    parts.push(meta);
    Ok(parts)
}

fn to_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| protocol(format!("{n} bytes do not fit a Produce request")))
}

fn to_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| protocol(format!("{n} bytes do not fit a Produce request")))
}

fn put_len(buf: &mut BytesMut, n: usize, flexible: bool) -> Result<()> {
    if flexible {
        put_uvarint(buf, to_u32(n)? + 1);
    } else {
        buf.put_i32(to_i32(n)?);
    }
    Ok(())
}

fn put_string(buf: &mut BytesMut, s: &str, flexible: bool) -> Result<()> {
    if flexible {
        put_uvarint(buf, to_u32(s.len())? + 1);
    } else {
        let len = i16::try_from(s.len()).map_err(|_| protocol("topic name too long"))?;
        buf.put_i16(len);
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn parts_equal_kafka_protocols_encoding_at_every_version() {
        let data: Vec<Bytes> = (0..4u8)
            .map(|i| Bytes::from(vec![i; 10 + 200 * usize::from(i)]))
            .collect();
        let batches: Vec<_> = [("a", 0), ("a", 3), ("bb", 1), ("c", 7)]
            .into_iter()
            .zip(&data)
            .map(|((topic, partition), data)| PartitionBatch {
                topic,
                partition,
                data,
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(
                batches
                    .chunk_by(|a, b| a.topic == b.topic)
                    .map(|g| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(g[0].topic.into())))
                            .with_partition_data(
                                g.iter()
                                    .map(|b| {
                                        PartitionProduceData::default()
                                            .with_index(b.partition)
                                            .with_records(Some(b.data.clone()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        for version in 3..=12 {
            let mut expected = BytesMut::new();
            request.encode(&mut expected, version).expect("encodes");
            let parts = encode(&batches, -1, 30_000, version).expect("encodes");
            let got: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(got, expected.to_vec(), "Produce v{version}");
            assert!(
                data.iter()
                    .all(|d| parts.iter().any(|p| p.as_ptr() == d.as_ptr())),
                "batches are referenced, not copied"
            );
        }
    }
}
