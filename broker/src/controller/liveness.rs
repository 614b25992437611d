//! Broker liveness on the active controller (KIP-631): who heartbeats,
//! who missed the session timeout, who asked to shut down, and the
//! metadata changes that follow — fence, unfence, move leaderships.
//!
//! I/O-free and clocked in controller ticks, so the driver and the
//! simulation run the same code. Heartbeat times live in memory only, not
//! in the log (as in Kafka): a controller that becomes leader starts every
//! registered broker with a fresh session (a grace of one session timeout).
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

/// The active controller's view of broker sessions.
#[derive(Debug)]
pub struct BrokerLiveness {
    session_ticks: u64,
    sessions: BTreeMap<BrokerId, Session>,
}

impl BrokerLiveness {
    /// Sessions expire after `session_ticks` ticks without a heartbeat.
    pub fn new(session_ticks: u64) -> Self {
        Self {
            session_ticks: session_ticks.max(1),
            sessions: BTreeMap::new(),
        }
    }

    /// This controller became leader: every broker starts a fresh session
    /// at the next [`Self::due`], whatever an earlier term remembered.
    pub fn reset(&mut self) {
        self.sessions.clear();
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
            let expired = now.saturating_sub(session.last_seen) > self.session_ticks;
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
        let mut live = BrokerLiveness::new(10);
        live.reset();
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
    fn a_restarted_broker_registers_fenced_and_its_heartbeat_unfences_it() {
        let mut image = cluster();
        let mut live = BrokerLiveness::new(10);
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
        let mut live = BrokerLiveness::new(10);
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
