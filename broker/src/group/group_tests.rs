//! Transitions of [`Group`], driven with explicit times.

use super::*;

const LIMITS: GroupLimits = GroupLimits {
    max_size: 3,
    min_session_timeout_ms: 1_000,
    max_session_timeout_ms: 60_000,
    initial_rebalance_delay_ms: 0,
};

fn proto(name: &str, meta: &'static [u8]) -> Protocol {
    Protocol {
        name: name.into(),
        metadata: Bytes::from_static(meta),
    }
}

fn join_req(member_id: &str, fresh: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![proto("range", b"r"), proto("roundrobin", b"rr")],
        require_known_member_id: false,
        supports_skip_assignment: false,
        fresh_member_id: fresh.into(),
    }
}

fn sync_req(member_id: &str, generation_id: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

fn group() -> Group {
    Group::new("g".into(), LIMITS, 0)
}

fn joined(out: &[Output], id: &str) -> Option<JoinResult> {
    out.iter().find_map(|o| match o {
        Output::Joined { member_id, result } if member_id == id => Some(result.clone()),
        _ => None,
    })
}

fn synced(out: &[Output], id: &str) -> Option<SyncResult> {
    out.iter().find_map(|o| match o {
        Output::Synced { member_id, result } if member_id == id => Some(result.clone()),
        _ => None,
    })
}

/// One member joins, is leader, syncs its own assignment: Stable at gen 1.
fn stable_with(g: &mut Group, ids: &[&str], now: i64) {
    let mut out = Vec::new();
    for id in ids {
        assert!(matches!(
            g.join(join_req("", id), now, &mut out),
            Reply::Wait { .. }
        ));
    }
    // The first join completed at once (no initial delay); the others
    // started a second rebalance that every member rejoins.
    for id in ids {
        if g.state() == GroupState::PreparingRebalance {
            g.join(join_req(id, "-"), now, &mut out);
        }
    }
    let gen_id = g.generation_id();
    assert_eq!(g.state(), GroupState::CompletingRebalance, "{out:?}");
    let leader = g.leader_id().unwrap().to_string();
    let assignments = ids
        .iter()
        .map(|id| (id.to_string(), Bytes::from(format!("a-{id}"))))
        .collect();
    let mut out = Vec::new();
    assert!(matches!(
        g.sync(sync_req(&leader, gen_id, assignments), now, &mut out),
        Reply::Wait { .. }
    ));
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn first_join_with_v4_gets_member_id_required_then_joins() {
    let mut g = group();
    let mut out = Vec::new();
    let mut req = join_req("", "c-1");
    req.require_known_member_id = true;
    match g.join(req.clone(), 0, &mut out) {
        Reply::Now(Err(GroupError::MemberIdRequired(id))) => assert_eq!(id, "c-1"),
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    }
    assert_eq!(g.state(), GroupState::Empty);
    req.member_id = "c-1".into();
    req.fresh_member_id = "unused".into();
    assert!(matches!(g.join(req, 1, &mut out), Reply::Wait { .. }));
    let result = joined(&out, "c-1").expect("join completed").unwrap();
    assert_eq!(result.generation_id, 1);
    assert_eq!(result.leader, "c-1");
    assert_eq!(result.protocol_name.as_deref(), Some("range"));
    assert_eq!(result.members.len(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(out.contains(&Output::Store));
}

#[test]
fn unknown_member_id_on_join_sync_heartbeat() {
    let mut g = group();
    stable_with(&mut g, &["a"], 0);
    let mut out = Vec::new();
    assert!(matches!(
        g.join(join_req("zz", "x"), 1, &mut out),
        Reply::Now(Err(GroupError::UnknownMemberId(_)))
    ));
    assert!(matches!(
        g.sync(sync_req("zz", 1, vec![]), 1, &mut out),
        Reply::Now(Err(GroupError::UnknownMemberId(_)))
    ));
    assert_eq!(
        g.heartbeat("zz", None, 1, 1),
        Err(GroupError::UnknownMemberId("zz".into()))
    );
    assert_eq!(g.heartbeat("a", None, 1, 1), Ok(()));
    assert!(matches!(
        g.heartbeat("a", None, 7, 1),
        Err(GroupError::IllegalGeneration {
            requested: 7,
            current: 1
        })
    ));
}

#[test]
fn second_member_triggers_rebalance_and_followers_wait_for_leader_sync() {
    let mut g = group();
    stable_with(&mut g, &["a"], 0);
    let mut out = Vec::new();
    assert!(matches!(
        g.join(join_req("", "b"), 10, &mut out),
        Reply::Wait { .. }
    ));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat("a", None, 1, 11),
        Err(GroupError::RebalanceInProgress)
    );
    // "a" rejoins: everyone is in, generation 2.
    assert!(matches!(
        g.join(join_req("a", "x"), 12, &mut out),
        Reply::Wait { .. }
    ));
    assert_eq!(g.generation_id(), 2);
    let a = joined(&out, "a").unwrap().unwrap();
    let b = joined(&out, "b").unwrap().unwrap();
    assert_eq!(a.leader, "a", "the old leader stays leader");
    assert_eq!(a.members.len(), 2);
    assert!(b.members.is_empty(), "followers get no member list");
    // Follower syncs first and waits; the leader's sync answers both.
    let mut out = Vec::new();
    assert!(matches!(
        g.sync(sync_req("b", 2, vec![]), 13, &mut out),
        Reply::Wait { .. }
    ));
    assert!(out.is_empty());
    let assignments = vec![
        ("a".to_string(), Bytes::from_static(b"A")),
        ("b".to_string(), Bytes::from_static(b"B")),
    ];
    assert!(matches!(
        g.sync(sync_req("a", 2, assignments), 14, &mut out),
        Reply::Wait { .. }
    ));
    assert_eq!(
        synced(&out, "b").unwrap().unwrap().assignment.as_ref(),
        b"B"
    );
    assert_eq!(
        synced(&out, "a").unwrap().unwrap().assignment.as_ref(),
        b"A"
    );
    assert_eq!(g.state(), GroupState::Stable);
    // A late sync in Stable is answered at once.
    match g.sync(sync_req("b", 2, vec![]), 15, &mut Vec::new()) {
        Reply::Now(Ok(r)) => assert_eq!(r.assignment.as_ref(), b"B"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn protocol_vote_picks_what_all_members_support() {
    let mut g = group();
    let mut out = Vec::new();
    let mut a = join_req("", "a");
    a.protocols = vec![proto("cooperative-sticky", b""), proto("range", b"")];
    let mut b = join_req("", "b");
    b.protocols = vec![proto("range", b""), proto("roundrobin", b"")];
    g.join(a.clone(), 0, &mut out);
    assert_eq!(g.protocol_name(), Some("cooperative-sticky"));
    g.join(b, 1, &mut out);
    a.member_id = "a".into();
    g.join(a, 2, &mut out);
    assert_eq!(g.protocol_name(), Some("range"));
    let mut c = join_req("", "c");
    c.protocols = vec![proto("roundrobin", b"")];
    assert!(matches!(
        g.join(c, 3, &mut out),
        Reply::Now(Err(GroupError::InconsistentGroupProtocol))
    ));
    let mut d = join_req("", "d");
    d.protocol_type = "connect".into();
    assert!(matches!(
        g.join(d, 3, &mut out),
        Reply::Now(Err(GroupError::InconsistentGroupProtocol))
    ));
}

#[test]
fn group_max_size_counts_pending_members() {
    let mut g = group();
    stable_with(&mut g, &["a", "b"], 0);
    let mut req = join_req("", "c");
    req.require_known_member_id = true;
    let mut out = Vec::new();
    assert!(matches!(
        g.join(req.clone(), 1, &mut out),
        Reply::Now(Err(GroupError::MemberIdRequired(_)))
    ));
    req.fresh_member_id = "d".into();
    assert!(matches!(
        g.join(req, 1, &mut out),
        Reply::Now(Err(GroupError::GroupMaxSizeReached { max: 3 }))
    ));
}

#[test]
fn invalid_session_timeout_is_refused() {
    let mut g = group();
    let mut req = join_req("", "a");
    req.session_timeout_ms = 10;
    assert!(matches!(
        g.join(req, 0, &mut Vec::new()),
        Reply::Now(Err(GroupError::InvalidSessionTimeout { .. }))
    ));
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut g = group();
    stable_with(&mut g, &["a", "b"], 0);
    let gen_id = g.generation_id();
    let mut out = Vec::new();
    g.heartbeat("a", None, gen_id, 9_000).unwrap();
    g.tick(10_000, &mut out);
    assert_eq!(g.member_count(), 1, "b's session (10 s) expired");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // "a" does not rejoin within its rebalance timeout: it is dropped too,
    // and the group ends Empty at the next generation.
    g.tick(9_000 + 30_000 + 10_000, &mut out);
    assert_eq!(g.state(), GroupState::Empty, "{out:?}");
    assert_eq!(g.generation_id(), gen_id + 1);
    assert_eq!(g.member_count(), 0);
}

#[test]
fn members_awaiting_join_do_not_expire_and_rebalance_timeout_completes_join() {
    let mut g = group();
    stable_with(&mut g, &["a", "b"], 0);
    let gen_id = g.generation_id();
    let mut out = Vec::new();
    g.join(join_req("a", "-"), 1_000, &mut out);
    g.heartbeat("b", None, gen_id, 1_000).ok();
    // Past a's session timeout, but a is awaiting join: exempt.
    g.tick(1_000 + 10_500, &mut out);
    assert!(g.members().any(|m| m.member_id == "a"));
    assert!(!g.members().any(|m| m.member_id == "b"), "b expired");
    // b's expiry left only joined members: the join completed.
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        joined(&out, "a").unwrap().unwrap().generation_id,
        gen_id + 1
    );
}

#[test]
fn leader_that_never_syncs_is_removed_after_rebalance_timeout() {
    let mut g = group();
    let mut out = Vec::new();
    g.join(join_req("", "a"), 0, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    g.heartbeat("a", None, 1, 29_000).unwrap();
    g.tick(30_000, &mut out);
    assert_eq!(g.member_count(), 0);
    assert_eq!(g.state(), GroupState::Empty);
}

#[test]
fn leave_rebalances_and_last_leave_empties_the_group() {
    let mut g = group();
    stable_with(&mut g, &["a", "b"], 0);
    let gen_id = g.generation_id();
    let mut out = Vec::new();
    assert_eq!(g.leave("b", None, 1, &mut out), Ok("b".to_string()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(matches!(
        g.leave("zz", None, 1, &mut out),
        Err(GroupError::UnknownMemberId(_))
    ));
    g.leave("a", None, 2, &mut out).unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), gen_id + 1);
    assert_eq!(g.state_timestamp_ms(), 2);
}

#[test]
fn static_member_rejoin_in_stable_keeps_assignment_without_rebalance() {
    let mut g = group();
    let mut out = Vec::new();
    let mut a = join_req("", "a1");
    a.group_instance_id = Some("inst-a".into());
    let mut b = join_req("", "b1");
    b.group_instance_id = Some("inst-b".into());
    g.join(a.clone(), 0, &mut out);
    g.join(b.clone(), 0, &mut out);
    g.join(join_req("a1", "-"), 0, &mut out);
    let assignments = vec![
        ("a1".to_string(), Bytes::from_static(b"A")),
        ("b1".to_string(), Bytes::from_static(b"B")),
    ];
    g.sync(sync_req("a1", 2, assignments), 0, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    // b restarts: empty member id, same instance id.
    b.fresh_member_id = "b2".into();
    let mut out = Vec::new();
    match g.join(b, 100, &mut out) {
        Reply::Now(Ok(r)) => {
            assert_eq!(r.member_id, "b2");
            assert_eq!(r.generation_id, 2);
            assert_eq!(r.leader, "a1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    match g.sync(sync_req("b2", 2, vec![]), 101, &mut out) {
        Reply::Now(Ok(r)) => assert_eq!(r.assignment.as_ref(), b"B"),
        other => panic!("{other:?}"),
    }
    // The old member id is fenced.
    let mut old = sync_req("b1", 2, vec![]);
    old.group_instance_id = Some("inst-b".into());
    assert!(matches!(
        g.sync(old, 102, &mut out),
        Reply::Now(Err(GroupError::FencedInstanceId { .. }))
    ));
    assert!(matches!(
        g.heartbeat("b1", Some("inst-b"), 2, 102),
        Err(GroupError::FencedInstanceId { .. })
    ));
}

#[test]
fn offset_commit_rules() {
    let mut g = group();
    // No members: a standalone commit with generation -1 is fine.
    assert_eq!(g.validate_commit("", None, -1, 0), Ok(()));
    let mut out = Vec::new();
    g.join(join_req("", "a"), 0, &mut out);
    assert_eq!(
        g.validate_commit("a", None, 1, 0),
        Err(GroupError::RebalanceInProgress),
        "CompletingRebalance refuses commits"
    );
    g.sync(sync_req("a", 1, vec![]), 0, &mut out);
    assert_eq!(g.validate_commit("a", None, 1, 0), Ok(()));
    assert!(matches!(
        g.validate_commit("a", None, 0, 0),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        g.validate_commit("", None, -1, 0),
        Err(GroupError::UnknownMemberId(_))
    ));
    // During PreparingRebalance the current generation may still commit.
    g.join(join_req("", "b"), 1, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.validate_commit("a", None, 1, 1), Ok(()));
}

#[test]
fn initial_rebalance_delay_holds_the_first_generation() {
    let limits = GroupLimits {
        initial_rebalance_delay_ms: 3_000,
        ..LIMITS
    };
    let mut g = Group::new("g".into(), limits, 0);
    let mut out = Vec::new();
    g.join(join_req("", "a"), 0, &mut out);
    g.join(join_req("", "b"), 1_000, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.tick(2_999, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.tick(3_000, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.generation_id(), 1, "one generation for both members");
    assert_eq!(joined(&out, "b").unwrap().unwrap().generation_id, 1);
}

#[test]
fn rejoin_during_completing_rebalance_cancels_parked_syncs() {
    let mut g = group();
    stable_with(&mut g, &["a", "b"], 0);
    let mut out = Vec::new();
    g.join(join_req("", "c"), 1, &mut out);
    g.join(join_req("a", "-"), 1, &mut out);
    g.join(join_req("b", "-"), 1, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let mut out = Vec::new();
    g.sync(sync_req("b", g.generation_id(), vec![]), 2, &mut out);
    // A member leaves before the leader syncs.
    g.leave("c", None, 3, &mut out).unwrap();
    assert_eq!(
        synced(&out, "b"),
        Some(Err(GroupError::RebalanceInProgress))
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn dead_group_refuses_everything() {
    let mut g = group();
    let mut out = Vec::new();
    g.join(join_req("", "a"), 0, &mut out);
    let mut out = Vec::new();
    g.mark_dead(1, &mut out);
    assert_eq!(g.state(), GroupState::Dead);
    assert!(matches!(
        g.join(join_req("", "b"), 2, &mut out),
        Reply::Now(Err(GroupError::CoordinatorNotAvailable))
    ));
    assert_eq!(
        g.validate_commit("", None, -1, 2),
        Err(GroupError::CoordinatorNotAvailable)
    );
}
