//! Broker liveness on the active controller (KIP-631): who heartbeats,
//! who missed the session timeout, who asked to shut down, and the
//! metadata changes that follow — fence, unfence, move leaderships.
//!
//! I/O-free and clocked in controller ticks, so the driver and the
//! simulation run the same code. Heartbeat times live in memory only, not
//! in the log (as in Kafka): a controller that becomes leader starts every
//! registered broker with a fresh session (a grace of one session timeout).
//!
//! A silent broker is fenced after the session timeout; a broker whose
//! controller connection *closed* is fenced sooner. A process that dies
//! (crash, kill -9, OOM) has its sockets closed by its kernel, and the
//! controller reads end-of-stream at once; a live broker whose connection
//! broke dials again with its next frame. So a broker whose connection was
//! lost and that sent nothing since is fenced after the lost-connection
//! grace (one heartbeat interval plus slack, well under the session)
//! instead of the whole session. This is what brings a crashed leader's
//! partitions back within about a second instead of the session timeout
//! (Kafka waits `broker.session.timeout.ms`, 9 s by default). A silent
//! failure without a closed connection (a network partition, a hung
//! process) still waits for the session. A wrong guess (a live broker that
//! redials late) costs a fence and an unfence at its next heartbeat, never
//! data: fencing is always safe, only availability is at stake.
//!
//! ```text
//! broker            heartbeat(id, incarnation, want_shutdown) every interval
//!   │                        │ (controller transport, or a local call)
//!   ▼                        ▼
//! registered fenced ──hb──► unfenced ──no hb for session──► fenced (+ leaders moved)
//!                              │
//!                              └──hb want_shutdown──► fenced (+ leaders moved)
//! ```
//!
//! # Invariants
//! - Every change this module asks for is one [`MetadataRecord::Atomic`]:
//!   leaderships move in the same record that fences, and leaderless
//!   partitions get leaders in the same record that unfences, so no image
//!   shows a fenced leader (the image refuses one anyway).
//! - Only a heartbeat naming the incarnation the image holds counts: a
//!   heartbeat from a process that has since restarted, or from one whose
//!   registration has not applied yet, neither unfences nor keeps alive.
//!   The broker heartbeats only once its own registration applied on its
//!   node, so a counted heartbeat also says it has caught up to it.
//! - A broker that asked to shut down is not unfenced again by the same
//!   incarnation.
//! - A lost connection counts only until the broker is heard from again
//!   (a heartbeat or a Raft message from its node). A controller that
//!   becomes leader keeps the connections it saw lost within the last
//!   session, with their times (voters that voted were heard from), and
//!   forgets older ones.
//! - The same action for the same broker is proposed at most once per
//!   [`RETRY_TICKS`]: a proposal that lost a race (refused at apply) or was
//!   dropped is made again from the then-current image.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::metadata::election::{changes_electing_offline, changes_removing_broker};
use crate::metadata::{BrokerId, MetadataImage, MetadataRecord};

/// Ticks between two proposals of the same action for one broker.
pub const RETRY_TICKS: u64 = 20;

/// One broker heartbeat (Kafka's `BrokerHeartbeatRequest`, reduced to what
/// Sluice uses: the metadata offset is implied, see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    pub broker: BrokerId,
    /// The incarnation the broker registered with at this start.
    pub incarnation: Uuid,
    /// Kafka's `wantShutDown`: move my leaderships away and fence me.
    pub want_shutdown: bool,
}

#[derive(Debug, Clone)]
struct Session {
    incarnation: Option<Uuid>,
    /// Tick of the last counted heartbeat (or of the session's start).
    last_seen: u64,
    want_shutdown: bool,
    /// Tick of the last proposal made for this broker.
    acted_at: Option<u64>,
}

/// Brokers remembered with a lost connection at once: more than any
/// cluster has brokers; a lost connection beyond it is not remembered (the
/// session still fences the broker).
pub const LOST_CONNECTIONS_MAX: usize = 4096;

/// The active controller's view of broker sessions.
#[derive(Debug)]
pub struct BrokerLiveness {
    session_ticks: u64,
    lost_grace_ticks: u64,
    sessions: BTreeMap<BrokerId, Session>,
    /// Brokers whose controller connection closed and that were not heard
    /// from since, with the tick the grace counts from. Kept on every
    /// controller, leader or not, and across a change of leadership.
    lost: BTreeMap<BrokerId, u64>,
}

impl BrokerLiveness {
    /// Sessions expire after `session_ticks` ticks without a heartbeat,
    /// or `lost_grace_ticks` after a lost connection (the smaller wins).
    pub fn new(session_ticks: u64, lost_grace_ticks: u64) -> Self {
        let session_ticks = session_ticks.max(1);
        Self {
            session_ticks,
            lost_grace_ticks: lost_grace_ticks.clamp(1, session_ticks),
            sessions: BTreeMap::new(),
            lost: BTreeMap::new(),
        }
    }

    /// This controller became leader at tick `now`: every broker starts a
    /// fresh session at the next [`Self::due`], whatever an earlier term
    /// remembered. A connection lost within the last session keeps its
    /// time: the usual case is the previous active controller, whose
    /// process died, and its grace has often run out during the election,
    /// so it is fenced at once. One lost longer ago is forgotten (that
    /// broker, if dead, was the previous leader's to fence).
    pub fn reset(&mut self, now: u64) {
        self.sessions.clear();
        let session = self.session_ticks;
        self.lost
            .retain(|_, since| now.saturating_sub(*since) <= session);
    }

    /// `broker`'s connection to this controller closed at tick `now`.
    pub fn connection_lost(&mut self, broker: BrokerId, now: u64) {
        if self.lost.len() < LOST_CONNECTIONS_MAX || self.lost.contains_key(&broker) {
            self.lost.insert(broker, now);
        }
    }

    /// A frame from `broker`'s node arrived: its process is alive.
    pub fn heard_from(&mut self, broker: BrokerId) {
        if !self.lost.is_empty() {
            self.lost.remove(&broker);
        }
    }

    /// Records a heartbeat received at tick `now`.
    pub fn heartbeat(&mut self, hb: &Heartbeat, now: u64) {
        let session = self.sessions.entry(hb.broker).or_insert(Session {
            incarnation: None,
            last_seen: now,
            want_shutdown: false,
            acted_at: None,
        });
        if session.incarnation != Some(hb.incarnation) {
            // A new process: its own session, nothing carried over.
            session.incarnation = Some(hb.incarnation);
            session.want_shutdown = false;
            session.acted_at = None;
        }
        session.last_seen = now;
        session.want_shutdown |= hb.want_shutdown;
        self.heard_from(hb.broker);
    }

    /// The changes due at tick `now` given `image`: at most one atomic
    /// record per broker, each computed on the image the ones before it
    /// leave (they are proposed, and commit, in this order).
    pub fn due(&mut self, image: &MetadataImage, now: u64) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        let mut scratch: Option<MetadataImage> = None;
        let ids: Vec<BrokerId> = image.brokers().map(|b| b.id).collect();
        for id in ids {
            let view = scratch.as_ref().unwrap_or(image);
            let Some(broker) = view.broker(id) else {
                continue;
            };
            let session = self.sessions.entry(broker.id).or_insert(Session {
                incarnation: None,
                last_seen: now,
                want_shutdown: false,
                acted_at: None,
            });
            if session
                .acted_at
                .is_some_and(|at| now < at.saturating_add(RETRY_TICKS))
            {
                continue;
            }
            let current = session.incarnation == Some(broker.incarnation_id);
            let lost = self
                .lost
                .get(&id)
                .is_some_and(|since| now.saturating_sub(*since) > self.lost_grace_ticks);
            let expired = lost || now.saturating_sub(session.last_seen) > self.session_ticks;
            let action = if !broker.fenced && (expired || (current && session.want_shutdown)) {
                Some(fence(view, id))
            } else if broker.fenced && current && !expired && !session.want_shutdown {
                Some(unfence(view, id))
            } else {
                None
            };
            if let Some(record) = action {
                session.acted_at = Some(now);
                let next = scratch.get_or_insert_with(|| image.clone());
                if let Err(e) = next.apply(&record) {
                    tracing::debug!(broker = id, error = %e, "liveness change does not apply; retried later");
                    continue;
                }
                out.push(record);
            }
        }
        // Brokers that left the image have no session to keep.
        self.sessions.retain(|id, _| image.broker(*id).is_some());
        self.lost.retain(|id, _| image.broker(*id).is_some());
        out
    }
}

/// Fences `broker`, moving its leaderships and taking it out of every ISR
/// first (KIP-841: a fenced broker is not eligible).
pub fn fence(image: &MetadataImage, broker: BrokerId) -> MetadataRecord {
    let mut records = changes_removing_broker(image, broker);
    records.push(MetadataRecord::BrokerFenced { id: broker });
    MetadataRecord::Atomic { records }
}

/// Unfences `broker` and elects leaders for the partitions that had none
/// and can now have one.
pub fn unfence(image: &MetadataImage, broker: BrokerId) -> MetadataRecord {
    let unfenced = MetadataRecord::BrokerUnfenced { id: broker };
    let mut after = image.clone();
    let mut records = vec![unfenced.clone()];
    if after.apply(&unfenced).is_ok() {
        records.extend(changes_electing_offline(&after));
    }
    MetadataRecord::Atomic { records }
}

/// The registration of a (re)starting broker: a new incarnation, fenced
/// until its first heartbeat; leaderships the previous incarnation still
/// held move away in the same record (that process is gone).
pub fn register(image: &MetadataImage, registration: MetadataRecord) -> MetadataRecord {
    let MetadataRecord::BrokerRegistered { id, .. } = &registration else {
        return registration;
    };
    let mut records = changes_removing_broker(image, *id);
    records.push(registration);
    MetadataRecord::Atomic { records }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Endpoint;
    use crate::metadata::fixtures::{created_on, registered};

    fn incarnation(id: BrokerId) -> Uuid {
        Uuid::from_u128(id as u128)
    }

    fn hb(broker: BrokerId, want_shutdown: bool) -> Heartbeat {
        Heartbeat {
            broker,
            incarnation: incarnation(broker),
            want_shutdown,
        }
    }

    fn cluster() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.apply(&registered(id, None)).unwrap();
        }
        image
            .apply(&created_on("t", &[&[1, 2, 3], &[2, 3, 1]]))
            .unwrap();
        image
    }

    fn apply_all(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
        for r in records {
            image.apply(&r).unwrap();
        }
    }

    #[test]
    fn a_silent_broker_is_fenced_after_the_session_and_its_leaderships_move() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(10, 10);
        live.reset(0);
        for now in 0..=10 {
            live.heartbeat(&hb(2, false), now);
            live.heartbeat(&hb(3, false), now);
            assert!(live.due(&image, now).is_empty(), "tick {now}");
        }
        live.heartbeat(&hb(2, false), 11);
        live.heartbeat(&hb(3, false), 11);
        let due = live.due(&image, 11);
        assert_eq!(due.len(), 1);
        apply_all(&mut image, due);
        assert!(image.broker(1).unwrap().fenced);
        assert_eq!(image.led_by(1), None);
        let p0 = image.partition("t", 0).unwrap();
        assert_eq!(
            (p0.leader, p0.leader_epoch, p0.isr.clone()),
            (2, 1, vec![2, 3])
        );
        let p1 = image.partition("t", 1).unwrap();
        assert_eq!(
            (p1.leader, p1.leader_epoch, p1.isr.clone()),
            (2, 0, vec![2, 3])
        );
        // Not proposed again while fenced.
        live.heartbeat(&hb(2, false), 40);
        live.heartbeat(&hb(3, false), 40);
        assert!(live.due(&image, 40).is_empty());
    }

    #[test]
    fn a_broker_whose_connection_closed_is_fenced_after_the_grace_unless_heard_from() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(60, 10);
        live.reset(0);
        for id in 1..=3 {
            live.heartbeat(&hb(id, false), 0);
        }
        // Broker 1's connection closes (its process died); broker 2's
        // closes too but it dials again and heartbeats within the grace.
        live.connection_lost(1, 1);
        live.connection_lost(2, 1);
        for now in 1..=11 {
            if now == 6 {
                live.heartbeat(&hb(2, false), now);
            }
            live.heartbeat(&hb(3, false), now);
            assert!(live.due(&image, now).is_empty(), "tick {now}");
        }
        live.heartbeat(&hb(2, false), 12);
        live.heartbeat(&hb(3, false), 12);
        let due = live.due(&image, 12);
        assert_eq!(due.len(), 1, "only broker 1, long before its session ends");
        apply_all(&mut image, due);
        assert!(image.broker(1).unwrap().fenced);
        assert!(!image.broker(2).unwrap().fenced);
        // It comes back: heard from again, its heartbeat unfences it.
        for id in 1..=3 {
            live.heartbeat(&hb(id, false), 40);
        }
        let due = live.due(&image, 40);
        apply_all(&mut image, due);
        assert!(!image.broker(1).unwrap().fenced);
    }

    #[test]
    fn a_new_leader_fences_at_once_a_broker_whose_connection_it_saw_close_during_the_election() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(60, 10);
        // Broker 2's connection closed long ago (more than a session):
        // forgotten. Broker 1 (the previous active controller) died 15
        // ticks before this controller won the election: fenced at once.
        live.connection_lost(2, 5);
        live.connection_lost(1, 85);
        live.reset(100);
        for id in 2..=3 {
            live.heartbeat(&hb(id, false), 100);
        }
        let due = live.due(&image, 100);
        assert_eq!(due.len(), 1);
        apply_all(&mut image, due);
        assert!(image.broker(1).unwrap().fenced);
        assert!(!image.broker(2).unwrap().fenced);
        // A Raft message from a broker's node clears its mark as well.
        live.connection_lost(2, 112);
        live.heard_from(2);
        live.heartbeat(&hb(3, false), 130);
        assert!(live.due(&image, 130).is_empty());
    }

    #[test]
    fn a_restarted_broker_registers_fenced_and_its_heartbeat_unfences_it() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(10, 10);
        let fresh = Uuid::from_u128(99);
        let again = MetadataRecord::BrokerRegistered {
            id: 1,
            incarnation_id: fresh,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            rack: None,
            fenced: true,
        };
        // Registering fenced alone is refused: broker 1 still leads.
        assert!(matches!(
            image.clone().apply(&again),
            Err(crate::metadata::ApplyError::FencedLeader { broker: 1, .. })
        ));
        image.apply(&register(&image, again)).unwrap();
        assert!(image.broker(1).unwrap().fenced);
        assert_eq!(image.partition("t", 0).unwrap().leader, 2);
        // A heartbeat from the old incarnation does nothing.
        live.heartbeat(&hb(1, false), 1);
        assert!(live.due(&image, 1).iter().all(|r| !matches!(
            r, MetadataRecord::Atomic { records } if records.contains(&MetadataRecord::BrokerUnfenced { id: 1 }))));
        live.heartbeat(
            &Heartbeat {
                broker: 1,
                incarnation: fresh,
                want_shutdown: false,
            },
            2,
        );
        let due = live.due(&image, 3);
        apply_all(&mut image, due);
        assert!(!image.broker(1).unwrap().fenced);
        // The partitions it left have leaders: nothing is re-elected.
        assert_eq!(image.partition("t", 0).unwrap().leader, 2);
    }

    #[test]
    fn want_shutdown_moves_leaders_then_fences_and_offline_partitions_return_on_unfence() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(10, 10);
        live.heartbeat(&hb(2, true), 0);
        let due = live.due(&image, 0);
        apply_all(&mut image, due);
        assert!(image.broker(2).unwrap().fenced);
        assert_eq!(image.partition("t", 1).unwrap().leader, 3);
        // Everyone else goes silent: the last ISR member stays, leaderless.
        let due = live.due(&image, 40);
        apply_all(&mut image, due);
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader(), p.isr.clone()), (None, vec![3]));
        // Broker 3 comes back: it leads again in the record that unfences it.
        live.heartbeat(&hb(3, false), 41);
        let due = live.due(&image, 41);
        apply_all(&mut image, due);
        assert_eq!(image.partition("t", 0).unwrap().leader(), Some(3));
        assert_eq!(image.partition("t", 1).unwrap().leader(), Some(3));
        // Broker 2's incarnation asked to shut down: it is not unfenced.
        live.heartbeat(&hb(2, false), 42);
        assert!(live.due(&image, 70).iter().all(|r| !matches!(
            r, MetadataRecord::Atomic { records } if records.contains(&MetadataRecord::BrokerUnfenced { id: 2 }))));
    }
}
