//! Consumer group protocol with hand-built frames: the join/sync/heartbeat/commit cycle,
//! rebalances, timeouts, restarts, and the error codes clients rely on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use gregor::Broker;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{GroupId, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const GROUP: &str = "readers";

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn join_request(member_id: &str, session_ms: i32) -> JoinGroupRequest {
    join_request_with(member_id, session_ms, 5000)
}

fn join_request_with(member_id: &str, session_ms: i32, rebalance_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(rebalance_ms)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

/// MEMBER_ID_REQUIRED round trip, then the real join; returns the response.
async fn join(c: &mut Client, session_ms: i32) -> JoinGroupResponse {
    let first = c.call(join_request("", session_ms), 5).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    c.call(join_request(&first.member_id, session_ms), 5).await
}

async fn sync(c: &mut Client, member: &str, generation: i32, assignment: &'static [u8]) -> (i16, Bytes) {
    let own = [(member, assignment)];
    sync_all(c, member, generation, if assignment.is_empty() { &[] } else { &own }).await
}

/// SyncGroup with the given (member, assignment) pairs; returns (error, own assignment).
async fn sync_all(c: &mut Client, member: &str, generation: i32, assignments: &[(&str, &'static [u8])]) -> (i16, Bytes) {
    let assignments = assignments
        .iter()
        .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(text(m)).with_assignment(Bytes::from_static(a)))
        .collect();
    let request = SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation).with_member_id(text(member)).with_assignments(assignments);
    let r = c.call(request, 3).await;
    (r.error_code, r.assignment)
}

async fn heartbeat(c: &mut Client, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group())
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_string()));
    c.call(request, 3).await.error_code
}

async fn commit(c: &mut Client, member: &str, generation: i32, topic: &str, offset: i64, metadata: &str) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(StrBytes::from_string(metadata.to_string()))),
        ])]);
    c.call(request, 8).await.topics[0].partitions[0].error_code
}

async fn group_state(c: &mut Client) -> (String, usize) {
    let r = c.call(DescribeGroupsRequest::default().with_groups(vec![group()]), 5).await;
    (r.groups[0].group_state.to_string(), r.groups[0].members.len())
}

#[tokio::test]
async fn one_member_cycle_offsets_and_administration() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;

    let r = c.call(FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(GROUP)), 3).await;
    assert_eq!((r.error_code, r.port), (0, broker.local_addr().port() as i32));
    let keys = vec![StrBytes::from_static_str("a"), StrBytes::from_static_str("b")];
    let r = c.call(FindCoordinatorRequest::default().with_coordinator_keys(keys), 4).await;
    assert_eq!(r.coordinators.len(), 2);
    assert!(r.coordinators.iter().all(|k| k.error_code == 0 && k.node_id.0 == 1));

    let joined = join(&mut c, 10_000).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let (me, generation) = (joined.member_id.to_string(), joined.generation_id);
    assert_eq!(sync(&mut c, &me, generation, b"my partitions").await, (0, Bytes::from_static(b"my partitions")));
    assert_eq!(heartbeat(&mut c, &me, generation).await, 0);
    assert_eq!(heartbeat(&mut c, &me, generation + 5).await, ResponseError::IllegalGeneration.code());
    assert_eq!(heartbeat(&mut c, "stranger", generation).await, ResponseError::UnknownMemberId.code());

    assert_eq!(commit(&mut c, &me, generation, "t", 42, "hello").await, 0);
    assert_eq!(committed(&mut c, GROUP, "t").await, (42, "hello".to_string(), 0));
    assert_eq!(commit(&mut c, &me, generation, "missing", 1, "").await, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(commit(&mut c, &me, generation, "t", 43, &"m".repeat(5000)).await, ResponseError::OffsetMetadataTooLarge.code());
    assert_eq!(commit(&mut c, &me, generation - 1, "t", 44, "").await, ResponseError::IllegalGeneration.code());
    assert_eq!(committed(&mut c, GROUP, "t").await.0, 42, "refused commits changed nothing");
    // An unknown group has no offsets, and that is not an error.
    assert_eq!(committed(&mut c, "nobody", "t").await, (-1, String::new(), 0));

    // v8: several groups in one request, and "all partitions" for one of them.
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default().with_group_id(group()).with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("other")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default().with_name(name("t")).with_partition_indexes(vec![0])])),
    ]);
    let r = c.call(request, 8).await;
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 42);
    assert_eq!(r.groups[1].topics[0].partitions[0].committed_offset, -1);

    let listed = c.call(ListGroupsRequest::default(), 4).await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!((listed.groups[0].group_state.as_str(), listed.groups[0].protocol_type.as_str()), ("Stable", "consumer"));
    assert_eq!(group_state(&mut c).await, ("Stable".to_string(), 1));
    let r = c.call(DeleteGroupsRequest::default().with_groups_names(vec![group()]), 2).await;
    assert_eq!(r.results[0].error_code, ResponseError::NonEmptyGroup.code());

    let leave = LeaveGroupRequest::default()
        .with_group_id(group())
        .with_members(vec![MemberIdentity::default().with_member_id(StrBytes::from_string(me.clone()))]);
    let r = c.call(leave, 3).await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    assert_eq!(group_state(&mut c).await, ("Empty".to_string(), 0));
    let r = c.call(DeleteGroupsRequest::default().with_groups_names(vec![group()]), 2).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(committed(&mut c, GROUP, "t").await.0, -1, "deleting a group deletes its offsets");
    let r = c.call(DeleteGroupsRequest::default().with_groups_names(vec![group()]), 2).await;
    assert_eq!(r.results[0].error_code, ResponseError::GroupIdNotFound.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_second_member_triggers_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let (mut a, mut b) = (Client::connect(&broker).await, Client::connect(&broker).await);
    let joined = join(&mut a, 10_000).await;
    let (a_id, generation) = (joined.member_id.to_string(), joined.generation_id);
    sync(&mut a, &a_id, generation, b"everything").await;

    // B's join waits until A has rejoined.
    let b_first = b.call(join_request("", 10_000), 5).await;
    let b_join = b.send(&join_request(&b_first.member_id, 10_000), 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(heartbeat(&mut a, &a_id, generation).await, ResponseError::RebalanceInProgress.code());
    assert_eq!(group_state(&mut a).await.0, "PreparingRebalance");
    let a_joined = a.call(join_request(&a_id, 10_000), 5).await;
    let b_joined = b.receive::<JoinGroupRequest>(5, b_join).await;
    assert_eq!((a_joined.generation_id, b_joined.generation_id), (generation + 1, generation + 1));
    assert_eq!(a_joined.leader.as_str(), a_id, "the leader stays the leader");
    assert_eq!((a_joined.members.len(), b_joined.members.len()), (2, 0));

    // B's SyncGroup waits for the leader's assignment.
    let b_member = b_joined.member_id.to_string();
    let b_sync = b
        .send(&SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation + 1).with_member_id(b_joined.member_id.clone()), 3)
        .await;
    let assignments = vec![
        SyncGroupRequestAssignment::default().with_member_id(StrBytes::from_string(a_id.clone())).with_assignment(Bytes::from_static(b"half-a")),
        SyncGroupRequestAssignment::default().with_member_id(StrBytes::from_string(b_member.clone())).with_assignment(Bytes::from_static(b"half-b")),
    ];
    let r = a
        .call(SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation + 1).with_member_id(StrBytes::from_string(a_id.clone())).with_assignments(assignments), 3)
        .await;
    assert_eq!(r.assignment, Bytes::from_static(b"half-a"));
    let r = b.receive::<SyncGroupRequest>(3, b_sync).await;
    assert_eq!((r.error_code, r.assignment), (0, Bytes::from_static(b"half-b")));
    assert_eq!(group_state(&mut a).await, ("Stable".to_string(), 2));
    broker.shutdown().await;
}

#[tokio::test]
async fn silent_members_expire_and_bad_session_timeouts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("group.min.session.timeout.ms", "100").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    let r = c.call(join_request("", 50), 5).await;
    assert_eq!(r.error_code, ResponseError::InvalidSessionTimeout.code());
    let joined = join(&mut c, 300).await;
    sync(&mut c, &joined.member_id, joined.generation_id, b"x").await;
    assert_eq!(group_state(&mut c).await.0, "Stable");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(group_state(&mut c).await, ("Empty".to_string(), 0));
    assert_eq!(heartbeat(&mut c, &joined.member_id, joined.generation_id).await, ResponseError::UnknownMemberId.code());
    broker.shutdown().await;
}

#[tokio::test]
async fn groups_and_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;
    let joined = join(&mut c, 30_000).await;
    let (me, generation) = (joined.member_id.to_string(), joined.generation_id);
    sync(&mut c, &me, generation, b"mine").await;
    assert_eq!(commit(&mut c, &me, generation, "t", 7, "before restart").await, 0);
    broker.shutdown().await;

    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(committed(&mut c, GROUP, "t").await, (7, "before restart".to_string(), 0));
    // The member carries on in the same generation, without a rebalance.
    assert_eq!(heartbeat(&mut c, &me, generation).await, 0);
    assert_eq!(sync(&mut c, &me, generation, b"").await, (0, Bytes::from_static(b"mine")));
    assert_eq!(group_state(&mut c).await, ("Stable".to_string(), 1));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_static_leader_coming_back_keeps_the_assignment_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let (mut a, mut b) = (Client::connect(&broker).await, Client::connect(&broker).await);
    let static_join = |member: &str, instance: &str| {
        join_request(member, 10_000).with_group_instance_id(Some(StrBytes::from_string(instance.to_string())))
    };
    let a_joined = a.call(static_join("", "instance-a"), 9).await;
    let generation = a_joined.generation_id;
    sync(&mut a, &a_joined.member_id, generation, b"only-a").await;
    // B joins: A rejoins as leader, assigns both.
    let b_join = b.send(&static_join("", "instance-b"), 9).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a_rejoined = a.call(static_join(&a_joined.member_id, "instance-a"), 9).await;
    let b_joined = b.receive::<JoinGroupRequest>(9, b_join).await;
    let generation = a_rejoined.generation_id;
    let b_sync = b.send(&SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation).with_member_id(b_joined.member_id.clone()), 3).await;
    let assignments = vec![
        SyncGroupRequestAssignment::default().with_member_id(a_rejoined.member_id.clone()).with_assignment(Bytes::from_static(b"half-a")),
        SyncGroupRequestAssignment::default().with_member_id(b_joined.member_id.clone()).with_assignment(Bytes::from_static(b"half-b")),
    ];
    a.call(SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation).with_member_id(a_rejoined.member_id.clone()).with_assignments(assignments), 3).await;
    b.receive::<SyncGroupRequest>(3, b_sync).await;

    // The leader restarts: a new connection, no member id, the same instance id.
    let mut a_again = Client::connect(&broker).await;
    let back = a_again.call(static_join("", "instance-a"), 9).await;
    assert_eq!((back.error_code, back.generation_id), (0, generation), "no new generation");
    assert_ne!(back.member_id, a_rejoined.member_id);
    assert_eq!(back.leader, back.member_id);
    assert!(back.skip_assignment, "the returning leader keeps the current assignment");
    assert_eq!(heartbeat(&mut b, &b_joined.member_id, generation).await, 0, "the follower is not rebalanced");
    assert_eq!(sync(&mut a_again, &back.member_id, generation, b"").await, (0, Bytes::from_static(b"half-a")));
    // The old member id is fenced.
    assert_eq!(heartbeat(&mut a, &a_rejoined.member_id, generation).await, ResponseError::UnknownMemberId.code());
    broker.shutdown().await;
}

async fn listed_groups(c: &mut Client) -> Vec<String> {
    c.call(ListGroupsRequest::default(), 4).await.groups.iter().map(|g| g.group_id.to_string()).collect()
}

async fn describe_state(c: &mut Client, group_id: &str) -> String {
    let r = c.call(DescribeGroupsRequest::default().with_groups(vec![GroupId(text(group_id))]), 5).await;
    r.groups[0].group_state.to_string()
}

async fn leave(c: &mut Client, member: &str) -> i16 {
    let request = LeaveGroupRequest::default().with_group_id(group()).with_members(vec![MemberIdentity::default().with_member_id(text(member))]);
    c.call(request, 3).await.members[0].error_code
}

/// Panics once `deadline` has passed; call it in a polling loop.
async fn before(deadline: tokio::time::Instant, what: &str) {
    assert!(tokio::time::Instant::now() < deadline, "timed out waiting: {what}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn expired_offsets_are_deleted_and_empty_groups_without_offsets_disappear() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("offsets.retention.check.interval.ms", "100").unwrap();
    let broker = Broker::start(config.clone()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;
    // OffsetCommit v2-v4 can give an offset its own retention; the others keep the broker's 7 days.
    assert_eq!(simple_commit(&mut c, "short", "t", 5, 300).await, 0);
    assert_eq!(simple_commit(&mut c, "long", "t", 6, -1).await, 0);
    assert!(listed_groups(&mut c).await.contains(&"short".to_string()));
    // A consumer group that never commits, left Empty.
    let joined = join(&mut c, 10_000).await;
    sync(&mut c, &joined.member_id, joined.generation_id, b"x").await;
    assert_eq!(leave(&mut c, &joined.member_id).await, 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listed_groups(&mut c).await != ["long"] {
        before(deadline, "the expired and the empty group to disappear").await;
    }
    assert_eq!(committed(&mut c, "short", "t").await.0, -1);
    assert_eq!(committed(&mut c, "long", "t").await.0, 6);
    assert_eq!(describe_state(&mut c, "short").await, "Dead");
    assert_eq!(describe_state(&mut c, GROUP).await, "Dead");
    broker.shutdown().await;

    // The expiry was stored.
    let broker = Broker::start(config).await.unwrap();
    let mut c = Client::connect(&broker).await;
    assert_eq!(listed_groups(&mut c).await, ["long"]);
    assert_eq!(committed(&mut c, "short", "t").await.0, -1);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_full_group_refuses_new_members_with_group_max_size_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.set("group.max.size", "2").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let (mut a, mut b, mut c) = (Client::connect(&broker).await, Client::connect(&broker).await, Client::connect(&broker).await);
    let a_joined = join(&mut a, 10_000).await;
    let a_id = a_joined.member_id.to_string();
    sync(&mut a, &a_id, a_joined.generation_id, b"all").await;
    let b_first = b.call(join_request("", 10_000), 5).await;
    assert_eq!(b_first.error_code, ResponseError::MemberIdRequired.code(), "the second member fits");
    let b_join = b.send(&join_request(&b_first.member_id, 10_000), 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let generation = a.call(join_request(&a_id, 10_000), 5).await.generation_id;
    let b_id = b.receive::<JoinGroupRequest>(5, b_join).await.member_id.to_string();
    assert_eq!(sync_all(&mut a, &a_id, generation, &[(&a_id, b"half-a"), (&b_id, b"half-b")]).await.0, 0);
    assert_eq!(group_state(&mut a).await, ("Stable".to_string(), 2));

    // A third member, dynamic or static, is turned away; the group carries on undisturbed.
    let r = c.call(join_request("", 10_000), 5).await;
    assert_eq!((r.error_code, r.member_id.as_str()), (ResponseError::GroupMaxSizeReached.code(), ""));
    let r = c.call(join_request("", 10_000).with_group_instance_id(Some(text("instance-c"))), 9).await;
    assert_eq!(r.error_code, ResponseError::GroupMaxSizeReached.code());
    assert_eq!(group_state(&mut a).await, ("Stable".to_string(), 2));
    assert_eq!(heartbeat(&mut a, &a_id, generation).await, 0);
    assert_eq!(heartbeat(&mut b, &b_id, generation).await, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_group_above_a_lowered_max_size_sheds_the_last_members_to_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Long enough for three joins to make one generation.
    config.set("group.initial.rebalance.delay.ms", "500").unwrap();
    let broker = Broker::start(config.clone()).await.unwrap();
    let mut clients = [Client::connect(&broker).await, Client::connect(&broker).await, Client::connect(&broker).await];
    let mut ids = Vec::new();
    for c in clients.iter_mut() {
        ids.push(c.call(join_request("", 30_000), 5).await.member_id.to_string());
    }
    let mut joins = Vec::new();
    for (c, id) in clients.iter_mut().zip(&ids) {
        joins.push(c.send(&join_request(id, 30_000), 5).await);
    }
    let mut generation = 0;
    for (c, correlation) in clients.iter_mut().zip(joins) {
        generation = c.receive::<JoinGroupRequest>(5, correlation).await.generation_id;
    }
    let [a, b, c] = &mut clients;
    let (b_sync, c_sync) = (b.send(&sync_request(&ids[1], generation), 3).await, c.send(&sync_request(&ids[2], generation), 3).await);
    assert_eq!(sync_all(a, &ids[0], generation, &[(&ids[0], b"1"), (&ids[1], b"2"), (&ids[2], b"3")]).await.0, 0);
    b.receive::<SyncGroupRequest>(3, b_sync).await;
    c.receive::<SyncGroupRequest>(3, c_sync).await;
    broker.shutdown().await;

    config.set("group.max.size", "2").unwrap();
    let broker = Broker::start(config).await.unwrap();
    let mut clients = [Client::connect(&broker).await, Client::connect(&broker).await, Client::connect(&broker).await];
    let [a, b, c] = &mut clients;
    assert_eq!(heartbeat(a, &ids[0], generation).await, ResponseError::RebalanceInProgress.code(), "an oversized group rebalances on load");
    let a_join = a.send(&join_request(&ids[0], 30_000), 5).await;
    let b_join = b.send(&join_request(&ids[1], 30_000), 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = c.call(join_request(&ids[2], 30_000), 5).await;
    assert_eq!(r.error_code, ResponseError::GroupMaxSizeReached.code(), "the last to rejoin is turned away");
    let a_joined = a.receive::<JoinGroupRequest>(5, a_join).await;
    let b_joined = b.receive::<JoinGroupRequest>(5, b_join).await;
    assert_eq!((a_joined.error_code, b_joined.error_code, a_joined.generation_id), (0, 0, generation + 1));
    assert_eq!(a_joined.members.len(), 2);
    assert_eq!(heartbeat(c, &ids[2], generation + 1).await, ResponseError::UnknownMemberId.code());
    broker.shutdown().await;
}

fn sync_request(member: &str, generation: i32) -> SyncGroupRequest {
    SyncGroupRequest::default().with_group_id(group()).with_generation_id(generation).with_member_id(text(member))
}

#[tokio::test]
async fn members_that_do_not_sync_within_the_rebalance_timeout_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let (mut a, mut b) = (Client::connect(&broker).await, Client::connect(&broker).await);
    // Sessions outlast the test: only the sync timeout (the 500 ms rebalance timeout) can act.
    let joining = |member: &str| join_request_with(member, 30_000, 500);
    let a_id = a.call(joining(""), 5).await.member_id.to_string();
    let generation = a.call(joining(&a_id), 5).await.generation_id;
    sync(&mut a, &a_id, generation, b"all").await;
    let b_id = b.call(joining(""), 5).await.member_id.to_string();
    let b_join = b.send(&joining(&b_id), 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a_joined = a.call(joining(&a_id), 5).await;
    assert_eq!(a_joined.leader.as_str(), a_id);
    let generation = b.receive::<JoinGroupRequest>(5, b_join).await.generation_id;

    // The follower syncs; the leader never does. The follower is not left waiting.
    let b_sync = b.send(&sync_request(&b_id, generation), 3).await;
    let r = b.receive::<SyncGroupRequest>(3, b_sync).await;
    assert_eq!(r.error_code, ResponseError::RebalanceInProgress.code());
    assert_eq!(group_state(&mut b).await, ("PreparingRebalance".to_string(), 1), "the leader was removed");
    let b_joined = b.call(joining(&b_id), 5).await;
    assert_eq!((b_joined.generation_id, b_joined.leader.as_str(), b_joined.members.len()), (generation + 1, b_id.as_str(), 1));
    let generation = generation + 1;
    assert_eq!(sync(&mut b, &b_id, generation, b"all").await.0, 0);

    // A follower that does not sync after the leader did is removed as well.
    let c_id = a.call(joining(""), 5).await.member_id.to_string();
    let c_join = a.send(&joining(&c_id), 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let generation = b.call(joining(&b_id), 5).await.generation_id;
    a.receive::<JoinGroupRequest>(5, c_join).await;
    assert_eq!(sync_all(&mut b, &b_id, generation, &[(&b_id, b"half"), (&c_id, b"half")]).await.0, 0);
    assert_eq!(group_state(&mut b).await, ("Stable".to_string(), 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while heartbeat(&mut b, &b_id, generation).await != ResponseError::RebalanceInProgress.code() {
        before(deadline, "the silent follower to be removed").await;
    }
    assert_eq!(group_state(&mut b).await, ("PreparingRebalance".to_string(), 1));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_static_member_that_misses_a_rebalance_keeps_its_place_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let (mut a, mut b) = (Client::connect(&broker).await, Client::connect(&broker).await);
    let static_join = |member: &str, instance: &str| join_request_with(member, 30_000, 1000).with_group_instance_id(Some(text(instance)));
    let a_joined = a.call(static_join("", "instance-a"), 9).await;
    let a_id = a_joined.member_id.to_string();
    sync(&mut a, &a_id, a_joined.generation_id, b"all").await;
    let b_join = b.send(&static_join("", "instance-b"), 9).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let generation = a.call(static_join(&a_id, "instance-a"), 9).await.generation_id;
    let b_id = b.receive::<JoinGroupRequest>(9, b_join).await.member_id.to_string();
    let b_sync = b.send(&sync_request(&b_id, generation), 3).await;
    sync_all(&mut a, &a_id, generation, &[(&a_id, b"a2"), (&b_id, b"b2")]).await;
    b.receive::<SyncGroupRequest>(3, b_sync).await;

    // B's process stops. The leader starts a rebalance, which B misses: B stays a member.
    let rejoined = a.call(static_join(&a_id, "instance-a"), 9).await;
    let generation = rejoined.generation_id;
    let members: Vec<&str> = rejoined.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members.len(), 2, "B is still a member: {members:?}");
    assert!(members.contains(&b_id.as_str()));
    assert_eq!(sync_all(&mut a, &a_id, generation, &[(&a_id, b"a3"), (&b_id, b"b3")]).await, (0, Bytes::from_static(b"a3")));

    // B comes back without its member id: the same generation and its assignment, no rebalance.
    let mut b = Client::connect(&broker).await;
    let back = b.call(static_join("", "instance-b"), 9).await;
    assert_eq!((back.error_code, back.generation_id, back.leader.as_str(), back.skip_assignment), (0, generation, a_id.as_str(), false));
    let b_id = back.member_id.to_string();
    assert_eq!(sync(&mut b, &b_id, generation, b"").await, (0, Bytes::from_static(b"b3")));
    assert_eq!(heartbeat(&mut a, &a_id, generation).await, 0);
    broker.shutdown().await;

    // After a restart too. A leader on JoinGroup v5 (before KIP-814's skip_assignment) is told
    // the old id leads, so it acts as a follower and the assignment stands.
    let broker = start(dir.path()).await;
    let (mut a, mut b) = (Client::connect(&broker).await, Client::connect(&broker).await);
    let back = a.call(static_join("", "instance-a"), 5).await;
    assert_eq!((back.error_code, back.generation_id, back.leader.as_str(), back.members.len()), (0, generation, a_id.as_str(), 0));
    assert_ne!(back.member_id.as_str(), a_id);
    assert_eq!(sync(&mut a, &back.member_id, generation, b"").await, (0, Bytes::from_static(b"a3")));
    assert_eq!(heartbeat(&mut b, &b_id, generation).await, 0);
    assert_eq!(group_state(&mut b).await, ("Stable".to_string(), 2));
    broker.shutdown().await;
}

#[tokio::test]
async fn group_ids_the_offset_keys_cannot_hold_are_refused_by_every_group_api() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;
    // Offsets are stored under o<group>\0<topic>\0<partition>: a NUL in an id would let
    // group "a"'s keys cover those of "a\0t".
    assert_eq!(simple_commit(&mut c, "a", "t", 1, -1).await, 0);
    let invalid = ResponseError::InvalidGroupId.code();
    // Kafka refuses empty ids in the APIs that act on a group; a NUL is refused everywhere.
    for bad in ["a\0t", ""] {
        let id = GroupId(text(bad));
        assert_eq!(c.call(join_request("", 10_000).with_group_id(id.clone()), 5).await.error_code, invalid);
        assert_eq!(c.call(sync_request("m", 1).with_group_id(id.clone()), 3).await.error_code, invalid);
        let r = c.call(HeartbeatRequest::default().with_group_id(id.clone()).with_member_id(text("m")), 3).await;
        assert_eq!(r.error_code, invalid);
        let r = c.call(LeaveGroupRequest::default().with_group_id(id.clone()).with_member_id(text("m")), 0).await;
        assert_eq!(r.error_code, invalid);
        let r = c.call(LeaveGroupRequest::default().with_group_id(id.clone()).with_members(vec![MemberIdentity::default().with_member_id(text("m"))]), 3).await;
        assert_eq!((r.error_code, r.members.len()), (invalid, 0));
        assert_eq!(simple_commit(&mut c, bad, "t", 2, -1).await, invalid);
        let topics = vec![OffsetDeleteRequestTopic::default().with_name(name("t")).with_partitions(vec![OffsetDeleteRequestPartition::default()])];
        assert_eq!(c.call(OffsetDeleteRequest::default().with_group_id(id).with_topics(topics), 0).await.error_code, invalid);
    }
    let (bad, empty) = (GroupId(text("a\0t")), GroupId(text("")));
    let r = c.call(DescribeGroupsRequest::default().with_groups(vec![bad.clone(), empty.clone()]), 5).await;
    assert_eq!((r.groups[0].error_code, r.groups[1].error_code, r.groups[1].group_state.as_str()), (invalid, 0, "Dead"));
    let r = c.call(DeleteGroupsRequest::default().with_groups_names(vec![bad.clone(), empty.clone()]), 2).await;
    assert_eq!((r.results[0].error_code, r.results[1].error_code), (invalid, ResponseError::GroupIdNotFound.code()));
    // OffsetFetch carries the error per partition in v1, for the request in v2-v7, per group in v8+.
    let wanted = Some(vec![OffsetFetchRequestTopic::default().with_name(name("t")).with_partition_indexes(vec![0])]);
    let r = c.call(OffsetFetchRequest::default().with_group_id(bad.clone()).with_topics(wanted.clone()), 1).await;
    assert_eq!((r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].committed_offset), (invalid, -1));
    let r = c.call(OffsetFetchRequest::default().with_group_id(bad.clone()).with_topics(wanted), 7).await;
    assert_eq!((r.error_code, r.topics.len()), (invalid, 0));
    assert_eq!(committed(&mut c, "", "t").await, (-1, String::new(), 0), "Kafka reads offsets of the empty id");
    let groups = vec![OffsetFetchRequestGroup::default().with_group_id(bad).with_topics(None), OffsetFetchRequestGroup::default().with_group_id(empty).with_topics(None)];
    let r = c.call(OffsetFetchRequest::default().with_groups(groups), 8).await;
    assert_eq!((r.groups[0].error_code, r.groups[1].error_code), (invalid, 0));

    assert_eq!(listed_groups(&mut c).await, ["a"]);
    assert_eq!(committed(&mut c, "a", "t").await.0, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn deleting_a_topic_deletes_its_committed_offsets_so_a_recreated_topic_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("t", 1).await;
    c.create_topic("u", 1).await;
    for group_id in ["g1", "g2"] {
        assert_eq!(simple_commit(&mut c, group_id, "t", 5, -1).await, 0);
        assert_eq!(simple_commit(&mut c, group_id, "u", 6, -1).await, 0);
    }
    let r = c.call(DeleteTopicsRequest::default().with_topic_names(vec![name("t")]).with_timeout_ms(5000), 4).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(c.create_topic("t", 1).await, 0);
    for group_id in ["g1", "g2"] {
        assert_eq!(committed(&mut c, group_id, "t").await.0, -1);
        assert_eq!(committed(&mut c, group_id, "u").await.0, 6);
    }
    broker.shutdown().await;
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(committed(&mut c, "g1", "t").await.0, -1, "the removal was stored");
    assert_eq!(committed(&mut c, "g1", "u").await.0, 6);
    broker.shutdown().await;
}
