//! Topics across three real nodes: a topic created on any node is in the metadata image with
//! its replicas spread over the brokers, every node serves the same Metadata for it, followers
//! copy the leader's log, and when a leader is killed another ISR member leads with every
//! acknowledged record; a partition whose only replica is gone has no leader.

mod cluster;
mod common;
mod ports;

use std::time::Duration;

use cluster::{eventually, TestCluster, FAST};
use common::{batch_offsets, name, produce_request, Client};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::ResponseError;

const PATIENCE: Duration = Duration::from_secs(20);
const TOPIC: &str = "replicated";

/// Per partition (leader, leader epoch, replicas, ISR) as node `id` answers Metadata; `None`
/// while it does not serve or does not know the topic.
async fn partitions(cluster: &TestCluster, id: i32) -> Option<Vec<(i32, i32, Vec<i32>, Vec<i32>)>> {
    let mut c = connect(cluster, id).await?;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]));
    let topic = c.call(request, 12).await.topics.into_iter().next()?;
    if topic.error_code != 0 {
        return None;
    }
    let mut out: Vec<_> = topic.partitions.iter().map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch, sorted(p.replica_nodes.iter().map(|b| b.0)), sorted(p.isr_nodes.iter().map(|b| b.0))))).collect();
    out.sort_by_key(|(i, _)| *i);
    Some(out.into_iter().map(|(_, p)| p).collect())
}

/// A client of node `id`, or `None` while it does not serve.
async fn connect(cluster: &TestCluster, id: i32) -> Option<Client> {
    let addr = cluster.client_addr(id);
    tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
    Some(Client::connect_to(addr).await)
}

/// The topics node `id` lists in DescribeLogDirs, by name.
async fn log_dir_topics(cluster: &TestCluster, id: i32) -> Vec<String> {
    let mut c = Client::connect_to(cluster.client_addr(id)).await;
    let r = c.call(DescribeLogDirsRequest::default().with_topics(None), 1).await;
    let mut names: Vec<String> = r.results[0].topics.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

fn sorted(ids: impl Iterator<Item = i32>) -> Vec<i32> {
    let mut ids: Vec<i32> = ids.collect();
    ids.sort_unstable();
    ids
}

async fn create(cluster: &TestCluster, via: i32, partitions: i32, replication_factor: i16) -> (i16, Option<String>) {
    let mut c = Client::connect_to(cluster.client_addr(via)).await;
    let topic = CreatableTopic::default().with_name(name(TOPIC)).with_num_partitions(partitions).with_replication_factor(replication_factor);
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
    (r.topics[0].error_code, r.topics[0].error_message.as_ref().map(|m| m.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_topics_survive_their_leader() {
    let mut cluster = TestCluster::start(3, 0, &[FAST, &[("replica.lag.time.max.ms", "2000")]].concat());
    eventually(PATIENCE, "three live brokers", || async {
        let mut c = connect(&cluster, 1).await?;
        (c.call(MetadataRequest::default().with_topics(None), 12).await.brokers.len() == 3).then_some(())
    })
    .await;

    let (code, message) = create(&cluster, 2, 1, 4).await;
    assert_eq!(code, ResponseError::InvalidReplicationFactor.code());
    assert!(message.unwrap_or_default().contains("only 3 broker(s)"));
    assert_eq!(create(&cluster, 2, 3, 3).await.0, 0, "created through a node that need not be the controller");

    // Every node publishes the same assignment: all three replicas in the ISR, leaders spread.
    let layout = eventually(PATIENCE, "every node to publish the topic", || async {
        let first = partitions(&cluster, 1).await?;
        for id in [2, 3] {
            if partitions(&cluster, id).await? != first {
                return None;
            }
        }
        first.iter().all(|(_, _, replicas, isr)| replicas == &[1, 2, 3] && isr == replicas).then_some(first)
    })
    .await;
    assert_eq!(sorted(layout.iter().map(|p| p.0)), vec![1, 2, 3], "each broker leads one partition: {layout:?}");

    // acks=all on partition 0's leader; a follower refuses the same write.
    let (leader, epoch) = (layout[0].0, layout[0].1);
    let mut producer = Client::connect_to(cluster.client_addr(leader)).await;
    let mut acked = 0;
    for i in 0..10 {
        let r = producer.call(produce_request(TOPIC, 0, encode_batch(&BatchSpec::values(3)), -1).with_timeout_ms(10_000), 9).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, acked), "acks=all produce {i}");
        acked += 3;
    }
    let follower = [1, 2, 3].into_iter().find(|&b| b != leader).unwrap();
    let mut wrong = Client::connect_to(cluster.client_addr(follower)).await;
    let r = wrong.call(produce_request(TOPIC, 0, encode_batch(&BatchSpec::values(1)), 1), 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, ResponseError::NotLeaderOrFollower.code());

    // A topic on the leader's broker alone, named there by a manual assignment; only that
    // broker lists it among its log directories.
    let mut admin = Client::connect_to(cluster.client_addr(follower)).await;
    let lonely = CreatableTopic::default()
        .with_name(name("lonely"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(leader)])]);
    let r = admin.call(CreateTopicsRequest::default().with_topics(vec![lonely]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0);
    eventually(PATIENCE, "the leader to hold the lonely topic", || async { (log_dir_topics(&cluster, leader).await == ["lonely", TOPIC]).then_some(()) }).await;
    assert_eq!(log_dir_topics(&cluster, follower).await, [TOPIC]);

    // The leader dies: another ISR member leads, at the next epoch, with every acked record.
    cluster.kill(leader);
    let survivor = follower;
    let (new_leader, new_epoch) = eventually(PATIENCE, "a new leader for partition 0", || async {
        let p = partitions(&cluster, survivor).await?;
        (p[0].0 != leader && p[0].0 != -1).then_some((p[0].0, p[0].1))
    })
    .await;
    assert!(new_epoch > epoch, "leader epoch {epoch} -> {new_epoch}");
    // The lonely topic has no replica left: no leader, its replica offline.
    let mut c = Client::connect_to(cluster.client_addr(survivor)).await;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("lonely")))]));
    let p = c.call(request, 12).await.topics[0].partitions[0].clone();
    assert_eq!((p.error_code, p.leader_id.0, p.offline_replicas), (ResponseError::LeaderNotAvailable.code(), -1, vec![BrokerId(leader)]));
    // Its high watermark moves up to its log end once the other follower fetches from it.
    let records = eventually(PATIENCE, "the new leader's high watermark to cover every acked record", || async {
        let (code, high_watermark, records) = connect(&cluster, new_leader).await?.fetch(TOPIC, 0, 0, 0).await;
        (code == 0 && high_watermark == acked).then_some(records)
    })
    .await;
    assert_eq!(batch_offsets(&records), (0..10).map(|i| i * 3).collect::<Vec<i64>>(), "every acknowledged batch");
    // Writes go on at the new leader (min.insync.replicas is 1).
    let mut producer = Client::connect_to(cluster.client_addr(new_leader)).await;
    let r = producer.call(produce_request(TOPIC, 0, encode_batch(&BatchSpec::values(1)), -1).with_timeout_ms(10_000), 9).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, acked);

    // The old leader comes back as a follower and rejoins the ISR.
    cluster.start_node(leader);
    eventually(PATIENCE, "the restarted broker to rejoin the ISR", || async {
        let p = partitions(&cluster, new_leader).await?;
        (p[0].3 == [1, 2, 3]).then_some(())
    })
    .await;
}
