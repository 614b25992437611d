//! How the batches drained for one leader are split into Produce requests:
//! Kafka's `max.request.size`, as its `RecordAccumulator.drain` applies it.
//!
//! ```text
//! drained for leader 1 (each partition's batches in sequence order):
//!   p0#1 400K   p0#2 300K   p1#1 700K   p2#1 2M   p3#1 100K      cap 1 MiB
//! requests, queued in this order on the leader's connection:
//!   [p0#1 p3#1] 500K   [p0#2 p1#1] 1000K   [p2#1] 2M (alone: larger than the cap)
//! ```
//!
//! # Invariants
//! - A request carries at most one batch per partition, so each answer in
//!   a response names exactly one batch.
//! - A partition's batches go out in the order given (its sequence order):
//!   its n-th batch is in a later request than its (n-1)-th. The sender
//!   queues the requests on the connection in the order returned, and a
//!   connection writes and answers them in that order.
//! - The batch bytes of a request are at most `max_request_size`, except in
//!   a request of one batch: no batch is held back for its size. One larger
//!   than the cap (compression that grew it, a `batch_size` above the cap)
//!   goes alone, as Kafka's first batch of a request always goes. The cap
//!   counts batches only, as Kafka's does; the request's own fields (topic
//!   names, partition indexes: tens of bytes per batch) come on top.
//! - First fit: a batch goes into the earliest request after its
//!   partition's previous batch that has room for it, else into a new
//!   request at the end. Kafka instead ends a request at the first batch
//!   that does not fit and leaves the rest for its next drain; this sender
//!   sends everything it drained, so it packs what fits instead.
//!
//! # Cost
//! O(batches × requests) size comparisons, plus one map lookup per batch
//! (the request of its partition's previous batch); no batch bytes are
//! touched.

use std::collections::HashMap;

use super::accumulator::TopicPartition;

/// One request being filled.
struct Request<B> {
    batches: Vec<B>,
    /// Sum of the batches' bytes.
    bytes: usize,
}

/// Splits `batches` (each partition's in sequence order; partitions may
/// interleave) into requests as the module docs say. `partition` and
/// `bytes` read a batch's partition and its encoded size.
pub(crate) fn split_into_requests<B>(
    batches: Vec<B>,
    max_request_size: usize,
    partition: impl Fn(&B) -> &TopicPartition,
    bytes: impl Fn(&B) -> usize,
) -> Vec<Vec<B>> {
    let mut requests: Vec<Request<B>> = Vec::new();
    // The request holding each partition's latest batch so far.
    let mut latest: HashMap<TopicPartition, usize> = HashMap::new();
    for batch in batches {
        let size = bytes(&batch);
        let after = latest.get(partition(&batch)).map_or(0, |&at| at + 1);
        let at = requests
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, r)| r.bytes.saturating_add(size) <= max_request_size)
            .map_or(requests.len(), |(at, _)| at);
        latest.insert(partition(&batch).clone(), at);
        match requests.get_mut(at) {
            Some(r) => {
                r.bytes += size;
                r.batches.push(batch);
            }
            None => requests.push(Request {
                batches: vec![batch],
                bytes: size,
            }),
        }
    }
    requests.into_iter().map(|r| r.batches).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A batch as the splitter sees it: its partition, its size, and
    /// which of its partition's batches it is.
    #[derive(Debug, Clone, PartialEq)]
    struct Batch {
        tp: TopicPartition,
        bytes: usize,
        nth: usize,
    }

    fn batch(topic: &str, partition: i32, nth: usize, bytes: usize) -> Batch {
        Batch {
            tp: TopicPartition {
                topic: Arc::from(topic),
                partition,
            },
            bytes,
            nth,
        }
    }

    fn split(batches: Vec<Batch>, cap: usize) -> Vec<Vec<Batch>> {
        split_into_requests(batches, cap, |b| &b.tp, |b| b.bytes)
    }

    /// What every split must satisfy, whatever the input: every batch
    /// once, at most one per partition per request, each partition's
    /// batches in their order across requests, and at most `cap` bytes
    /// in any request of more than one batch.
    fn check(input: &[Batch], requests: &[Vec<Batch>], cap: usize) {
        let mut seen: Vec<&Batch> = requests.iter().flatten().collect();
        assert_eq!(seen.len(), input.len(), "every batch exactly once");
        for b in input {
            let at = seen.iter().position(|s| *s == b).expect("batch sent");
            seen.swap_remove(at);
        }
        let mut next: HashMap<&TopicPartition, usize> = HashMap::new();
        for (i, r) in requests.iter().enumerate() {
            assert!(!r.is_empty(), "request {i} is empty");
            let bytes: usize = r.iter().map(|b| b.bytes).sum();
            assert!(
                r.len() == 1 || bytes <= cap,
                "request {i}: {} batches, {bytes} bytes > cap {cap}",
                r.len()
            );
            for (j, b) in r.iter().enumerate() {
                assert!(
                    r.iter().skip(j + 1).all(|o| o.tp != b.tp),
                    "request {i}: two batches of {:?}",
                    b.tp
                );
                let expected = next.entry(&b.tp).or_insert(0);
                assert_eq!(b.nth, *expected, "{:?} out of order in request {i}", b.tp);
                *expected += 1;
            }
        }
    }

    #[test]
    fn batches_are_packed_up_to_the_cap_first_fit() {
        // The module docs' example.
        let k = 1024;
        let input = vec![
            batch("t", 0, 0, 400 * k),
            batch("t", 0, 1, 300 * k),
            batch("t", 1, 0, 700 * k),
            batch("t", 2, 0, 2048 * k),
            batch("t", 3, 0, 100 * k),
        ];
        let requests = split(input.clone(), 1024 * k);
        check(&input, &requests, 1024 * k);
        let shape: Vec<Vec<(i32, usize)>> = requests
            .iter()
            .map(|r| r.iter().map(|b| (b.tp.partition, b.nth)).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![(0, 0), (3, 0)],
                vec![(0, 1), (1, 0)],
                vec![(2, 0)], // larger than the cap: alone
            ]
        );
    }

    #[test]
    fn a_full_request_takes_exactly_the_cap() {
        let input: Vec<Batch> = (0..8).map(|p| batch("t", p, 0, 250)).collect();
        let requests = split(input.clone(), 1000);
        check(&input, &requests, 1000);
        assert_eq!(requests.len(), 2, "4 × 250 = 1000 fits, a fifth does not");
        assert!(requests.iter().all(|r| r.len() == 4));
    }

    #[test]
    fn a_batch_larger_than_the_cap_goes_alone_and_first() {
        let input = vec![batch("t", 0, 0, 5000), batch("t", 1, 0, 10)];
        let requests = split(input.clone(), 100);
        check(&input, &requests, 100);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], vec![input[0].clone()], "alone, not dropped");
        assert_eq!(requests[1], vec![input[1].clone()]);
    }

    #[test]
    fn a_partitions_batches_keep_their_order_when_a_later_request_has_room() {
        // p0's second batch is small and request 0 has room for it, but it
        // must not overtake the first, which is in request 1.
        let input = vec![
            batch("t", 1, 0, 900),
            batch("t", 0, 0, 900),
            batch("t", 0, 1, 50),
            batch("t", 0, 2, 50),
        ];
        let requests = split(input.clone(), 1000);
        check(&input, &requests, 1000);
        let where_is = |nth: usize| {
            requests
                .iter()
                .position(|r| r.iter().any(|b| b.tp.partition == 0 && b.nth == nth))
                .expect("sent")
        };
        assert_eq!((where_is(0), where_is(1), where_is(2)), (1, 2, 3));
        assert_eq!(requests[0].len(), 1, "p1 alone: nothing of p0 may go first");
    }

    #[test]
    fn without_a_binding_cap_each_request_is_one_round_of_partitions() {
        // The split before the cap: the n-th request takes the n-th batch
        // of every partition.
        let mut input = Vec::new();
        for nth in 0..3 {
            for p in 0..4 {
                input.push(batch("a", p, nth, 100));
                input.push(batch("b", p, nth, 100));
            }
        }
        let requests = split(input.clone(), usize::MAX);
        check(&input, &requests, usize::MAX);
        assert_eq!(requests.len(), 3);
        for (nth, r) in requests.iter().enumerate() {
            assert_eq!(r.len(), 8);
            assert!(r.iter().all(|b| b.nth == nth));
        }
    }

    #[test]
    fn random_inputs_keep_every_invariant() {
        // A small deterministic generator: many shapes of partitions,
        // batch counts and sizes around the cap.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).expect("fits")
        };
        for _ in 0..500 {
            let cap = 1 + next(4096);
            let partitions = 1 + next(40);
            let mut counts = vec![0usize; partitions];
            let mut input = Vec::new();
            for _ in 0..next(200) {
                let p = next(partitions);
                let topic = if p % 3 == 0 { "x" } else { "y" };
                input.push(batch(
                    topic,
                    i32::try_from(p).expect("fits"),
                    counts[p],
                    next(2 * cap) + 1,
                ));
                counts[p] += 1;
            }
            let requests = split(input.clone(), cap);
            check(&input, &requests, cap);
        }
    }
}
