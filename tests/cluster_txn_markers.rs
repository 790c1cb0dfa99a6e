//! WriteTxnMarkers and DescribeProducers on a cluster of two nodes (a voter and a broker): a
//! partition this node follows, or holds no replica of, is answered as Kafka answers it, and a
//! marker on a
//! `__consumer_offsets` partition commits or drops the producer's transactional offsets of
//! that partition's groups, as Kafka's group coordinator completes them.

mod cluster;
mod common;
mod ports;

use std::time::Duration;

use cluster::{eventually, TestCluster, FAST};
use common::{committed, name, produce_request, producers, write_marker, Client};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::{BrokerId, GroupId, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const PATIENCE: Duration = Duration::from_secs(20);
const OFFSETS: &str = "__consumer_offsets";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn txn_offset_commit(c: &mut Client, (pid, epoch): (i64, i16), offset: i64) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("o")))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(name("m"))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)])]);
    c.call(request, 3).await.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_answer_for_partitions_led_here_and_complete_transactional_offsets() {
    let settings = [FAST, &[("offsets.topic.num.partitions", "1"), ("offsets.topic.replication.factor", "1"), ("transaction.state.log.num.partitions", "1"), ("transaction.state.log.replication.factor", "1")]].concat();
    let cluster = TestCluster::start(1, 1, &settings);
    // Topic m: partition 0 on node 1, partition 1 on node 2 only; topic f led by node 2 and
    // followed by node 1.
    for (topic, replicas) in [("m", vec![vec![1], vec![2]]), ("f", vec![vec![2, 1]])] {
        eventually(PATIENCE, "the topics to be created", || async {
            let mut c = cluster.client(1).await?;
            let assignments = replicas.iter().enumerate().map(|(p, r)| CreatableReplicaAssignment::default().with_partition_index(p as i32).with_broker_ids(r.iter().copied().map(BrokerId).collect())).collect();
            let topic = CreatableTopic::default().with_name(name(topic)).with_num_partitions(-1).with_replication_factor(-1).with_assignments(assignments);
            let error = c.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000), 7).await.topics[0].error_code;
            (error == 0 || error == ResponseError::TopicAlreadyExists.code()).then_some(())
        })
        .await;
    }
    let mut one = cluster.client(1).await.expect("node 1 serves");
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    eventually(PATIENCE, "node 1 to lead m-0", || async { (producers(&mut cluster.client(1).await?, "m", 0).await == (0, vec![])).then_some(()) }).await;
    assert_eq!(producers(&mut one, "m", 1).await.0, not_leader, "no replica of m-1 here");
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(write_marker(&mut one, "m", vec![1, 0], (1000, 0), 0, false).await, vec![unknown, 0]);
    let known: Vec<(i64, i32)> = producers(&mut one, "m", 0).await.1.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(known, vec![(1000, 0)], "written with nothing open, so a batch of an older epoch is refused after it");
    // f-0's follower: whichever node does not lead it, once it knows that.
    let follower = eventually(PATIENCE, "f-0 to have a leader and a follower", || async {
        let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("f")))]));
        let leader = cluster.client(1).await?.call(request, 12).await.topics.first()?.partitions.first()?.leader_id.0;
        let follower = match leader {
            1 => 2,
            2 => 1,
            _ => return None,
        };
        (producers(&mut cluster.client(follower).await?, "f", 0).await == (0, vec![])).then_some(follower)
    })
    .await;
    let mut f = cluster.client(follower).await.expect("the follower serves");
    assert_eq!(write_marker(&mut f, "f", vec![0], (1000, 0), 0, false).await, vec![not_leader], "a follower");

    // Group g's coordinator leads __consumer_offsets-0, and transactional id o's
    // __transaction_state-0: the same node or not, as the controller placed them.
    let find = |key: &'static str, key_type: i8| {
        let cluster = &cluster;
        eventually(PATIENCE, "a coordinator", move || async move {
            let r = cluster.client(1).await?.call(FindCoordinatorRequest::default().with_key(s(key)).with_key_type(key_type), 3).await;
            (r.error_code == 0).then_some(r.node_id.0)
        })
    };
    // InitProducerId once the coordinator has loaded the id's partition: (coordinator, id, epoch).
    let init = |id: &'static str| {
        let (find, cluster) = (&find, &cluster);
        async move {
            let coordinator = find(id, 1).await;
            let request = InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s(id)))).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
            eventually(PATIENCE, "the transaction coordinator to be ready", || async {
                let r = cluster.client(coordinator).await?.call(request.clone(), 4).await;
                (r.error_code == 0).then_some((coordinator, (r.producer_id.0, r.producer_epoch)))
            })
            .await
        }
    };
    let coordinator = find("g", 0).await;
    let mut c = cluster.client(coordinator).await.expect("the group coordinator serves");
    let (txn_coordinator, p) = init("o").await;
    let mut t = cluster.client(txn_coordinator).await.expect("the transaction coordinator serves");
    let add = AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(s("o"))).with_producer_id(ProducerId(p.0)).with_producer_epoch(p.1).with_group_id(GroupId(s("g")));
    assert_eq!(t.call(add.clone(), 3).await.error_code, 0);
    eventually(PATIENCE, "the group's coordinator to take transactional offsets", || async { (txn_offset_commit(&mut cluster.client(coordinator).await?, p, 7).await == 0).then_some(()) }).await;
    assert_eq!(committed(&mut c, "g", "m").await.0, -1, "held until a marker");

    assert_eq!(write_marker(&mut c, OFFSETS, vec![0], p, 0, true).await, vec![0]);
    assert_eq!(committed(&mut c, "g", "m").await.0, 7, "committed by the COMMIT marker");
    assert_eq!(write_marker(&mut c, OFFSETS, vec![0], p, 0, true).await, vec![0], "a retry");
    assert_eq!(txn_offset_commit(&mut c, p, 9).await, 0);
    assert_eq!(write_marker(&mut c, OFFSETS, vec![0], (p.0, p.1 - 1), 0, false).await, vec![ResponseError::InvalidProducerEpoch.code()], "a stale epoch");
    assert_eq!(write_marker(&mut c, OFFSETS, vec![0], p, 0, false).await, vec![0]);
    assert_eq!(committed(&mut c, "g", "m").await.0, 7, "9 dropped by the ABORT marker");
    let end = EndTxnRequest::default().with_transactional_id(TransactionalId(s("o"))).with_producer_id(ProducerId(p.0)).with_producer_epoch(p.1).with_committed(true);
    assert_eq!(t.call(end.clone(), 3).await.error_code, 0);
    assert_eq!(committed(&mut c, "g", "m").await.0, 7, "the coordinator's commit has nothing left of 9");

    // The coordinator's own markers reach the group's partition, wherever it is led.
    assert_eq!(t.call(add, 3).await.error_code, 0);
    assert_eq!(txn_offset_commit(&mut c, p, 11).await, 0);
    assert_eq!(committed(&mut c, "g", "m").await.0, 7, "held until the transaction ends");
    assert_eq!(t.call(end, 3).await.error_code, 0);
    assert_eq!(committed(&mut c, "g", "m").await.0, 11, "committed with the transaction");

    // KIP-890 part 1 across brokers: a partition leader that does not coordinate the
    // transaction asks its coordinator before it writes a transactional batch.
    let (coordinator, v) = init("v").await;
    let other = if coordinator == 1 { 2 } else { 1 };
    let index = other - 1; // m-0 is led by node 1, m-1 by node 2
    let mut t = cluster.client(coordinator).await.expect("the coordinator serves");
    let mut leader = cluster.client(other).await.expect("the other node serves");
    let produce = |seq: i32| {
        let batch = encode_batch(&BatchSpec { producer: Some((v.0, v.1, seq)), transactional: true, ..BatchSpec::values(2) });
        produce_request("m", index, batch, -1).with_transactional_id(Some(TransactionalId(s("v"))))
    };
    let error = leader.call(produce(0), 9).await.responses[0].partition_responses[0].error_code;
    assert_eq!(error, ResponseError::InvalidTxnState.code(), "not in the transaction: refused by its coordinator");
    let add = |partitions: Vec<i32>, verify_only: bool| {
        AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s("v")))
            .with_producer_id(ProducerId(v.0))
            .with_producer_epoch(v.1)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(name("m")).with_partitions(partitions)])])
    };
    let codes = |r: kafka_protocol::messages::AddPartitionsToTxnResponse| r.results_by_transaction[0].topic_results[0].results_by_partition.iter().map(|p| p.partition_error_code).collect::<Vec<_>>();
    assert_eq!(codes(t.call(add(vec![index], false), 4).await), vec![0], "added by a broker's batched form");
    assert_eq!(codes(t.call(add(vec![index, 1 - index], true), 5).await), vec![0, ResponseError::InvalidTxnState.code()], "verify only");
    assert_eq!(leader.call(produce(0), 9).await.responses[0].partition_responses[0].error_code, 0, "in the transaction now");
    let end = EndTxnRequest::default().with_transactional_id(TransactionalId(s("v"))).with_producer_id(ProducerId(v.0)).with_producer_epoch(v.1).with_committed(true);
    assert_eq!(t.call(end, 3).await.error_code, 0);
    let (error, states) = producers(&mut leader, "m", index).await;
    assert_eq!(error, 0);
    let state = states.iter().find(|s| s.0 == v.0).expect("the producer is known there");
    assert_eq!(state.4, -1, "its transaction closed by the coordinator's marker");
}
