//! Consumer group protocol with hand-built frames: the join/sync/heartbeat/commit cycle,
//! rebalances, timeouts, restarts, and the error codes clients rely on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use gregor::Broker;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{GroupId, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const GROUP: &str = "readers";

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

fn join_request(member_id: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5000)
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
    let mut request = SyncGroupRequest::default()
        .with_group_id(group())
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_string()));
    if !assignment.is_empty() {
        request.assignments = vec![SyncGroupRequestAssignment::default()
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_assignment(Bytes::from_static(assignment))];
    }
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

/// (offset, metadata) committed for partition 0 of `topic`, via OffsetFetch v7.
async fn committed(c: &mut Client, group_id: &str, topic: &str) -> (i64, String, i16) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default().with_name(name(topic)).with_partition_indexes(vec![0])]));
    let r = c.call(request, 7).await;
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.metadata.as_deref().unwrap_or_default().to_string(), r.error_code)
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
