//! Topics across three real nodes: a topic created on any node is in the metadata image with
//! its replicas spread over the brokers, every node serves the same Metadata for it, followers
//! copy the leader's log, and when a leader is killed another ISR member leads with every
//! acknowledged record; a partition whose only replica is gone has no leader. Groups live in
//! the replicated `__consumer_offsets` and move with its leaders.

mod cluster;
mod common;
mod ports;

use std::time::Duration;

use cluster::{eventually, TestCluster, FAST};
use common::{batch_offsets, committed, fetch_request, name, produce_request, simple_commit, Client};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::alter_partition_reassignments_request::{AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::ResponseError;

const PATIENCE: Duration = Duration::from_secs(20);
const TOPIC: &str = "replicated";

/// Per partition (leader, leader epoch, replicas, ISR) as node `id` answers Metadata; `None`
/// while it does not serve or does not know the topic.
async fn partitions(cluster: &TestCluster, id: i32) -> Option<Vec<(i32, i32, Vec<i32>, Vec<i32>)>> {
    let mut c = cluster.client(id).await?;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]));
    let topic = c.call(request, 12).await.topics.into_iter().next()?;
    if topic.error_code != 0 {
        return None;
    }
    let mut out: Vec<_> = topic.partitions.iter().map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch, sorted(p.replica_nodes.iter().map(|b| b.0)), sorted(p.isr_nodes.iter().map(|b| b.0))))).collect();
    out.sort_by_key(|(i, _)| *i);
    Some(out.into_iter().map(|(_, p)| p).collect())
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
    all_live(&cluster).await;

    let (code, message) = create(&cluster, 2, 1, 4).await;
    assert_eq!(code, ResponseError::InvalidReplicationFactor.code());
    assert!(message.unwrap_or_default().contains("broker(s) are registered"));
    create_replicated(&cluster, 2, 3).await;

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
    // KIP-951: newer clients are told where the leader is, with its address.
    let r = wrong.call(produce_request(TOPIC, 0, encode_batch(&BatchSpec::values(1)), 1), 11).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.current_leader.leader_id.0, p.current_leader.leader_epoch), (ResponseError::NotLeaderOrFollower.code(), leader, epoch));
    let endpoints: Vec<(i32, i32)> = r.node_endpoints.iter().map(|e| (e.node_id.0, e.port)).collect();
    assert_eq!(endpoints, [(leader, i32::from(cluster.client_addr(leader).port()))]);
    let r = wrong.call(fetch_request(TOPIC, 0, 0, 0), 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.current_leader.leader_id.0, p.current_leader.leader_epoch), (ResponseError::NotLeaderOrFollower.code(), leader, epoch), "{r:?}");

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
        let (code, high_watermark, records) = cluster.client(new_leader).await?.fetch(TOPIC, 0, 0, 0).await;
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

/// Kafka's first fault test: the partition leader killed with SIGKILL again and again under
/// acks=all writes (min.insync.replicas=2), restarted each time; no acknowledged record is lost
/// or moved. `GREGOR_FAULT_CYCLES` sets the kills: 4 by default, `GREGOR_FAULT_CYCLES=20
/// scripts/test` for the long form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_again_and_again_loses_no_acknowledged_record() {
    let cycles: usize = std::env::var("GREGOR_FAULT_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::start(3, 0, &settings);
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    let mut acked = Acked::default();
    for cycle in 0..cycles {
        acked.write(&cluster, 20, &format!("cycle {cycle}")).await;
        // Killed once every replica is in sync again, so each kill finds the data on two others.
        let leader = eventually(PATIENCE, &format!("cycle {cycle}: the full ISR"), || async {
            let leader = leader_by_its_own_word(&cluster).await?;
            (partitions(&cluster, leader).await?[0].3 == [1, 2, 3]).then_some(leader)
        })
        .await;
        cluster.kill(leader);
        eventually(PATIENCE, &format!("cycle {cycle}: another leader"), || async {
            let survivor = cluster.running()[0];
            let p = partitions(&cluster, survivor).await?;
            (p[0].0 > 0 && p[0].0 != leader).then_some(())
        })
        .await;
        cluster.start_node(leader);
    }
    acked.check(&cluster, &format!("{cycles} leader kills")).await;
}

/// A restarted leader acts on no partition state before it has caught up with the metadata
/// log: the image it starts with is the one it had when it was killed, in which it still leads
/// at the old epoch. From its first answer until it follows the leader elected meanwhile, it
/// serves the partition to no consumer (who would read records it alone has, about to be
/// truncated) and names no stale leader in Metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_waits_to_catch_up_before_it_serves_the_partition() {
    let settings = [FAST, &[("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::start(3, 0, &settings);
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    let mut acked = Acked::default();
    acked.write(&cluster, 10, "before the kill").await;
    let old = eventually(PATIENCE, "the full ISR", || async {
        let leader = leader_by_its_own_word(&cluster).await?;
        (partitions(&cluster, leader).await?[0].3 == [1, 2, 3]).then_some(leader)
    })
    .await;
    cluster.kill(old);
    let survivor = cluster.running()[0];
    let new = eventually(PATIENCE, "another leader", || async {
        let leader = partitions(&cluster, survivor).await?[0].0;
        (leader > 0 && leader != old).then_some(leader)
    })
    .await;
    acked.write(&cluster, 10, "under the new leader").await;

    cluster.start_node(old);
    let latest = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(name(TOPIC))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut answers = 0;
    loop {
        assert!(std::time::Instant::now() < deadline, "node {old} did not follow node {new} within {PATIENCE:?} ({answers} answers)");
        let Some(mut c) = cluster.client(old).await else { continue };
        let p = c.call(latest.clone(), 7).await.topics[0].partitions[0].clone();
        assert_ne!(p.error_code, 0, "the restarted node {old} served ListOffsets (offset {}) as the leader it was before it was killed", p.offset);
        answers += 1;
        let Some(view) = partitions(&cluster, old).await else { continue };
        assert_ne!(view[0].0, old, "the restarted node {old} names itself the leader (epoch {}) in Metadata", view[0].1);
        if view[0].0 == new {
            break;
        }
    }
    acked.check(&cluster, "the old leader's restart").await;
}

/// Kafka's controller fault test: the active controller killed while acks=all writes go on
/// (min.insync.replicas=2, so the ISR changes it must decide are needed); writes and topic
/// creation carry on under the next controller, and no acknowledged record is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_controller_under_load_loses_no_acknowledged_record() {
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::start(3, 0, &settings);
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    let mut acked = Acked::default();
    acked.write(&cluster, 20, "before the kill").await;
    let controller = eventually(PATIENCE, "an active controller", || async {
        let id = cluster.client(1).await?.call(MetadataRequest::default().with_topics(Some(vec![])), 12).await.controller_id.0;
        (id > 0).then_some(id)
    })
    .await;
    cluster.kill(controller);
    acked.write(&cluster, 20, "after the controller's kill").await;
    // Admin requests reach the next controller.
    let survivor = cluster.running()[0];
    eventually(PATIENCE, "a topic created under the next controller", || async {
        let code = cluster.client(survivor).await?.create_topic("after-the-kill", 1).await;
        // A try that timed out waiting for its publication may have created it.
        (code == 0 || code == ResponseError::TopicAlreadyExists.code()).then_some(())
    })
    .await;
    cluster.start_node(controller);
    all_live(&cluster).await;
    acked.write(&cluster, 10, "after the restart").await;
    acked.check(&cluster, "the controller's kill").await;
}

/// Dedicated controllers (`process.roles=controller`): three controllers that serve no client
/// and three broker-only nodes. Metadata lists the brokers alone, and names one of them as the
/// controller (clients cannot reach a dedicated one, so brokers forward, as in Kafka). Under
/// acks=all writes each controller in turn is killed (one of them the active one) and topics
/// are still created; a broker leading the partition is killed too; nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_controllers_run_the_cluster_through_their_own_and_a_brokers_kill() {
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::start_dedicated(3, 3, &settings);
    assert_eq!(cluster.running(), [4, 5, 6]);
    all_live(&cluster).await;
    let metadata = cluster.client(4).await.unwrap().call(MetadataRequest::default().with_topics(None), 12).await;
    assert_eq!(sorted(metadata.brokers.iter().map(|b| b.node_id.0)), [4, 5, 6]);
    assert!([4, 5, 6].contains(&metadata.controller_id.0), "controller id {:?}", metadata.controller_id);
    assert!(cluster.log(1).contains("no client listener"), "{}", cluster.log(1));
    create_replicated(&cluster, 4, 1).await;
    let mut acked = Acked::default();
    acked.write(&cluster, 10, "before any kill").await;
    for controller in 1..=3 {
        cluster.kill(controller);
        acked.write(&cluster, 10, &format!("controller {controller} killed")).await;
        let topic = format!("after-controller-{controller}");
        eventually(PATIENCE, &format!("{topic} created"), || async {
            let code = cluster.client(5).await?.create_topic(&topic, 1).await;
            (code == 0 || code == ResponseError::TopicAlreadyExists.code()).then_some(())
        })
        .await;
        cluster.start_node(controller);
    }
    let leader = eventually(PATIENCE, "a leader", || leader_by_its_own_word(&cluster)).await;
    cluster.kill(leader);
    acked.write(&cluster, 10, &format!("broker {leader} killed")).await;
    cluster.start_node(leader);
    all_live(&cluster).await;
    acked.write(&cluster, 10, "after the restarts").await;
    acked.check(&cluster, "the kills of every controller and a broker").await;
}

/// Kafka's disk-loss fault test: a broker whose data directory is wiped is formatted again
/// and rejoins; it copies the partition back from the leader, returns to the ISR, and leads
/// with every acknowledged record once the other replica dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_a_wiped_disk_copies_its_replicas_back() {
    let mut cluster = TestCluster::start(3, 1, &[FAST, &[("replica.lag.time.max.ms", "2000")]].concat());
    all_live(&cluster).await;
    // Partition 0 on the broker-only node 4 and voter 1, led by 4.
    let topic = CreatableTopic::default()
        .with_name(name(TOPIC))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(4), BrokerId(1)])]);
    let r = Client::connect_to(cluster.client_addr(2)).await.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0);
    let mut acked = Acked::default();
    acked.write(&cluster, 20, "before the wipe").await;

    cluster.kill(4);
    std::fs::remove_dir_all(cluster.data_dir(4)).expect("wipe node 4");
    let formatted = cluster.command(4, &["format", "--cluster-id", &cluster.cluster_id.clone()], &[]).output().expect("format runs");
    assert!(formatted.status.success(), "{}", String::from_utf8_lossy(&formatted.stderr));
    acked.write(&cluster, 10, "while node 4 is gone").await;
    cluster.start_node(4);
    eventually(PATIENCE, "the wiped broker back in the ISR", || async {
        let p = partitions(&cluster, 2).await?;
        (p[0].3 == [1, 4]).then_some(())
    })
    .await;
    cluster.kill(1);
    eventually(PATIENCE, "the wiped broker leading", || async { (partitions(&cluster, 2).await?[0].0 == 4).then_some(()) }).await;
    acked.check(&cluster, "the wipe").await;
}

/// Kafka's add-a-broker operation: a fourth broker joins, partition 0 is reassigned to it
/// (away from its leader) while acks=all writes go on, the old replica's copy is deleted, and
/// a rolling restart of all four brokers loses nothing; a preferred election then puts the
/// new broker, first in the target, in the lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_broker_takes_a_partition_by_reassignment_and_a_rolling_restart_loses_nothing() {
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::formatted(3, 1, &settings);
    for id in 1..=3 {
        cluster.start_node(id);
    }
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    let mut acked = Acked::default();
    acked.write(&cluster, 20, "before the new broker").await;

    cluster.start_node(4);
    all_live(&cluster).await;
    let old_leader = leader_by_its_own_word(&cluster).await.expect("a leader");
    let mut target = vec![4];
    target.extend((1..=3).filter(|&b| b != old_leader));
    let mut c = Client::connect_to(cluster.client_addr(2)).await;
    let errors = reassign(&mut c, Some(target.clone())).await;
    assert_eq!(errors, [(0, None)]);
    acked.write(&cluster, 20, "during the reassignment").await;
    eventually(PATIENCE, "the reassignment to complete", || async {
        let mut c = cluster.client(3).await?;
        let ongoing = c.call(ListPartitionReassignmentsRequest::default().with_topics(None), 0).await;
        let p = partitions(&cluster, 3).await?;
        (ongoing.topics.is_empty() && p[0].2 == sorted(target.iter().copied()) && p[0].3 == p[0].2).then_some(())
    })
    .await;
    assert_ne!(leader_by_its_own_word(&cluster).await, Some(old_leader), "the removed leader handed over");
    eventually(PATIENCE, "the old replica's copy deleted", || async {
        (log_dir_topics(&cluster, old_leader).await.is_empty() && cluster.log(old_leader).contains("no longer a replica here: deleted its local copy")).then_some(())
    })
    .await;
    // Nothing to cancel any more; a broker nobody registered is refused.
    let mut c = Client::connect_to(cluster.client_addr(1)).await;
    assert_eq!(reassign(&mut c, None).await[0].0, ResponseError::NoReassignmentInProgress.code());
    assert_eq!(reassign(&mut c, Some(vec![1, 2, 9])).await[0].0, ResponseError::InvalidReplicaAssignment.code());
    acked.check(&cluster, "the reassignment").await;

    for id in 1..=4 {
        cluster.stop(id);
        acked.write(&cluster, 5, &format!("while broker {id} restarts")).await;
        cluster.start_node(id);
        all_live(&cluster).await;
        eventually(PATIENCE, "a full ISR again", || async {
            let p = partitions(&cluster, 1).await?;
            (p[0].3 == p[0].2).then_some(())
        })
        .await;
    }
    acked.check(&cluster, "the rolling restart").await;

    let request = ElectLeadersRequest::default().with_election_type(0).with_topic_partitions(Some(vec![TopicPartitions::default().with_topic(name(TOPIC)).with_partitions(vec![0])]));
    let r = Client::connect_to(cluster.client_addr(1)).await.call(request, 2).await;
    let code = r.replica_election_results[0].partition_result[0].error_code;
    assert!(code == 0 || code == ResponseError::ElectionNotNeeded.code(), "{r:?}");
    eventually(PATIENCE, "the preferred replica leading", || async { (leader_by_its_own_word(&cluster).await? == 4).then_some(()) }).await;
    acked.write(&cluster, 5, "after the election").await;
    acked.check(&cluster, "the election").await;
}

/// Kafka's replication quota: with `leader.replication.throttled.rate` on the leader and
/// partition 0's new replica listed in `leader.replication.throttled.replicas`, partition 0's
/// copy takes seconds while partition 1's, unthrottled, completes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_reassignment_copies_at_the_throttled_rate() {
    let cluster = TestCluster::start(3, 0, FAST);
    all_live(&cluster).await;
    let on_broker_1 = |i| CreatableReplicaAssignment::default().with_partition_index(i).with_broker_ids(vec![BrokerId(1)]);
    let topic = CreatableTopic::default().with_name(name(TOPIC)).with_num_partitions(-1).with_replication_factor(-1).with_assignments(vec![on_broker_1(0), on_broker_1(1)]);
    let mut c = Client::connect_to(cluster.client_addr(1)).await;
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    // 1.5 MB in each partition.
    for partition in [0, 1] {
        for _ in 0..15 {
            let batch = encode_batch(&BatchSpec { value_bytes: 100_000, ..BatchSpec::values(1) });
            let r = c.call(produce_request(TOPIC, partition, batch, -1), 9).await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
    }
    assert_eq!(alter_configs(&mut c, BROKER_RESOURCE, "1", "leader.replication.throttled.rate", "300000").await, 0);
    assert_eq!(alter_configs(&mut c, TOPIC_RESOURCE, TOPIC, "leader.replication.throttled.replicas", "0:2").await, 0);
    let started = std::time::Instant::now();
    let partitions: Vec<ReassignablePartition> = [0, 1].into_iter().map(|i| ReassignablePartition::default().with_partition_index(i).with_replicas(Some(vec![BrokerId(1), BrokerId(2)]))).collect();
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![ReassignableTopic::default().with_name(name(TOPIC)).with_partitions(partitions)]);
    let r = c.call(request, 0).await;
    assert!(r.responses[0].partitions.iter().all(|p| p.error_code == 0), "{r:?}");
    let ongoing = || async {
        let r = Client::connect_to(cluster.client_addr(1)).await.call(ListPartitionReassignmentsRequest::default().with_topics(None), 0).await;
        r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.partition_index)).collect::<Vec<_>>()
    };
    eventually(PATIENCE, "partition 1 copied while partition 0 is still being copied", || async { (ongoing().await == [0]).then_some(()) }).await;
    eventually(Duration::from_secs(30), "partition 0 copied", || async { ongoing().await.is_empty().then_some(()) }).await;
    // 1.5 MB at 300 kB/s: the first read (up to 1 MiB) is let through, the rest waits for it.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500), "the throttled copy took only {took:?}");
}

/// IncrementalAlterConfigs SET of one config; the error code.
async fn alter_configs(c: &mut Client, resource_type: i8, resource: &str, key: &str, value: &str) -> i16 {
    let s = |v: &str| kafka_protocol::protocol::StrBytes::from_string(v.to_string());
    let config = AlterableConfig::default().with_name(s(key)).with_config_operation(0).with_value(Some(s(value)));
    let resource = AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(resource)).with_configs(vec![config]);
    c.call(IncrementalAlterConfigsRequest::default().with_resources(vec![resource]), 1).await.responses[0].error_code
}

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

/// A follower whose disk fills: its appends fail, it leaves the ISR and acks=all writes go on
/// through the other two (min.insync.replicas=2); once space is free it reopens its store (or,
/// if its metadata log write failed and it halted, is restarted), catches up and rejoins, and
/// its log is the leader's batch for batch. Node 3's data
/// directory is a small tmpfs, so this needs root; it says so and returns otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_disk_fills_catches_up_once_space_is_free() {
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let mut cluster = TestCluster::formatted(3, 0, &settings);
    let Some(_disk) = SmallDisk::mount(&cluster.data_dir(3), 48) else { return };
    for id in 1..=3 {
        cluster.start_node(id);
    }
    all_live(&cluster).await;
    let on_all = CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
    let topic = CreatableTopic::default().with_name(name(TOPIC)).with_num_partitions(-1).with_replication_factor(-1).with_assignments(vec![on_all]);
    let mut c = Client::connect_to(cluster.client_addr(1)).await;
    assert_eq!(c.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);
    eventually(PATIENCE, "three replicas in sync", || async { (partitions(&cluster, 1).await?[0].3 == [1, 2, 3]).then_some(()) }).await;

    // 64 MB through leader 1: more than node 3's 48 MB disk holds.
    let mut acked = 0;
    for _ in 0..512 {
        let batch = encode_batch(&BatchSpec { value_bytes: 128 << 10, ..BatchSpec::values(1) });
        let code = eventually(PATIENCE, "an acks=all write while node 3's disk is full", || async {
            let r = cluster.client(1).await?.call(produce_request(TOPIC, 0, batch.clone(), -1).with_timeout_ms(10_000), 9).await;
            let code = r.responses[0].partition_responses[0].error_code;
            // REQUEST_TIMED_OUT: the ISR still held node 3 when its disk filled.
            (code == 0 || code != ResponseError::RequestTimedOut.code()).then_some(code)
        })
        .await;
        assert_eq!(code, 0, "acks=all writes go on with two in sync");
        acked += 1;
    }
    assert_eq!(acked, 512);
    eventually(PATIENCE, "node 3 out of the ISR", || async { (partitions(&cluster, 1).await?[0].3 == [1, 2]).then_some(()) }).await;
    assert!(cluster.log(3).contains("No space left on device"), "node 3 ran out of space: {}", cluster.log(3));

    _disk.grow(512);
    // A voter's metadata log write fails too once the disk is full, and a node whose quorum
    // member fails halts, as Kafka's does: restarted, as a supervisor would.
    if cluster.wait_exit(3, Duration::from_secs(2)).is_some() {
        assert!(cluster.log(3).contains("restart this node once that is fixed"), "{}", cluster.log(3));
        cluster.start_node(3);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while partitions(&cluster, 1).await.is_none_or(|p| p[0].3 != [1, 2, 3]) {
        let log = cluster.log(3);
        assert!(std::time::Instant::now() < deadline, "node 3 not back in the ISR after 60 s; its log ends:\n{}", &log[log.len().saturating_sub(6000)..]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in 1..=3 {
        cluster.stop(id);
    }
    let dump = |id| cluster.command(id, &["dump-log", "--topic", TOPIC], &[]).output().expect("dump-log runs").stdout;
    let (leader, caught_up) = (dump(1), dump(3));
    assert_eq!(String::from_utf8_lossy(&leader).lines().count(), 512);
    assert!(leader == caught_up, "node 3's log is the leader's, batch for batch");
}

/// A tmpfs of a given size mounted over a directory (its contents kept), unmounted on drop.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// `None`, said loudly, where this process may not mount (not root).
    fn mount(dir: &std::path::Path, size_mb: u32) -> Option<SmallDisk> {
        let kept = tempfile::tempdir().expect("temporary directory");
        copy_dir(dir, kept.path());
        let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"]).arg(dir).output().expect("mount runs");
        if !mounted.status.success() {
            eprintln!("*** SKIPPED: cannot mount a tmpfs (needs root): {}", String::from_utf8_lossy(&mounted.stderr));
            return None;
        }
        copy_dir(kept.path(), dir);
        Some(SmallDisk { dir: dir.to_path_buf() })
    }

    fn grow(&self, size_mb: u32) {
        let remounted = std::process::Command::new("mount").args(["-o", &format!("remount,size={size_mb}m")]).arg(&self.dir).status().expect("mount runs");
        assert!(remounted.success(), "remount {}", self.dir.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a node still holding files there (a failed test) does not keep it mounted.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("readable directory") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// AlterPartitionReassignments of partition 0 (`None` cancels): (error code, message).
async fn reassign(c: &mut Client, target: Option<Vec<i32>>) -> Vec<(i16, Option<String>)> {
    let partition = ReassignablePartition::default().with_partition_index(0).with_replicas(target.map(|t| t.into_iter().map(BrokerId).collect()));
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![ReassignableTopic::default().with_name(name(TOPIC)).with_partitions(vec![partition])]);
    let r = c.call(request, 0).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    r.responses[0].partitions.iter().map(|p| (p.error_code, p.error_message.as_ref().map(|m| m.to_string()))).collect()
}

/// Acknowledged batches of partition 0: base offset -> the batch's first timestamp, which
/// tells batches apart.
#[derive(Default)]
struct Acked {
    batches: std::collections::BTreeMap<i64, i64>,
    stamp: i64,
}

impl Acked {
    /// Writes `count` batches with acks=all, as a client does: to the leader, again after
    /// NOT_LEADER_OR_FOLLOWER or NOT_ENOUGH_REPLICAS while the cluster settles.
    async fn write(&mut self, cluster: &TestCluster, count: usize, when: &str) {
        for _ in 0..count {
            self.stamp = self.stamp.max(1_700_000_000_000) + 1000;
            let batch = encode_batch(&BatchSpec { base_ts: self.stamp, ..BatchSpec::values(2) });
            let offset = eventually(PATIENCE, &format!("{when}: an acks=all write"), || async {
                let leader = leader_by_its_own_word(cluster).await?;
                let request = produce_request(TOPIC, 0, batch.clone(), -1).with_timeout_ms(10_000);
                let r = cluster.client(leader).await?.call(request, 9).await;
                let p = &r.responses[0].partition_responses[0];
                (p.error_code == 0).then_some(p.base_offset)
            })
            .await;
            self.batches.insert(offset, self.stamp);
        }
    }

    /// Every acknowledged batch is in the final leader's log, at its offset.
    async fn check(&self, cluster: &TestCluster, after: &str) {
        let logged = eventually(PATIENCE, "the final leader to expose every acknowledged batch", || async {
            for id in cluster.running() {
                let Some(p) = partitions(cluster, id).await else { continue };
                if p[0].0 <= 0 {
                    continue;
                }
                let (code, high_watermark, records) = cluster.client(p[0].0).await?.fetch(TOPIC, 0, 0, 0).await;
                let last = self.batches.keys().last().copied().unwrap_or(0);
                return (code == 0 && high_watermark > last).then(|| batch_timestamps(&records));
            }
            None
        })
        .await;
        for (offset, stamp) in &self.batches {
            assert_eq!(logged.get(offset), Some(stamp), "acknowledged batch at offset {offset} after {after}");
        }
    }
}

/// FindCoordinator v3 for a group at node `id`: (error code, coordinator id).
async fn find_coordinator(cluster: &TestCluster, id: i32, group: &str) -> Option<(i16, i32)> {
    let request = FindCoordinatorRequest::default().with_key(kafka_protocol::protocol::StrBytes::from_string(group.to_string()));
    let r = cluster.client(id).await?.call(request, 3).await;
    Some((r.error_code, r.node_id.0))
}

/// The broker coordinating `group`, once node 1's FindCoordinator names one.
async fn coordinator_of(cluster: &TestCluster, group: &str) -> i32 {
    eventually(PATIENCE, "a coordinator for the group", || async {
        let (code, id) = find_coordinator(cluster, 1, group).await?;
        (code == 0).then_some(id)
    })
    .await
}

/// OffsetFetch shows a commit only once the ISR has it: one the coordinator could not
/// replicate (a replica of the group's `__consumer_offsets` partition down, with
/// min.insync.replicas=3) fails and leaves the previous commit in place, as Kafka's coordinator
/// keeps a commit pending until its append completes. A failover would otherwise take back an
/// offset clients were shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_isr_did_not_take_is_not_shown() {
    let settings = [FAST, &[("offsets.topic.num.partitions", "1"), ("min.insync.replicas", "3"), ("offsets.commit.timeout.ms", "1000")]].concat();
    let mut cluster = TestCluster::start(3, 0, &settings);
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    let coordinator = coordinator_of(&cluster, "g").await;
    eventually(PATIENCE, "a first commit", || async { (simple_commit(&mut cluster.client(coordinator).await?, "g", TOPIC, 42, -1).await == 0).then_some(()) }).await;

    cluster.kill(cluster.ids().find(|&id| id != coordinator).expect("another node"));
    let mut c = cluster.client(coordinator).await.expect("the coordinator serves");
    let code = simple_commit(&mut c, "g", TOPIC, 99, -1).await;
    assert_ne!(code, 0, "a commit with a replica of its __consumer_offsets partition down (min.insync.replicas=3)");
    let (offset, _, code) = committed(&mut c, "g", TOPIC).await;
    assert_eq!((offset, code), (42, 0), "OffsetFetch after a failed commit shows the last one written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_offsets_move_with_the_leader_of_its_offsets_partition() {
    let mut cluster = TestCluster::start(3, 0, &[FAST, &[("offsets.topic.num.partitions", "4")]].concat());
    all_live(&cluster).await;
    create_replicated(&cluster, 1, 1).await;
    // The first FindCoordinator creates __consumer_offsets; every node then names the same broker.
    let coordinator = coordinator_of(&cluster, "g").await;
    for id in cluster.ids() {
        assert_eq!(find_coordinator(&cluster, id, "g").await, Some((0, coordinator)));
    }
    let mut c = Client::connect_to(cluster.client_addr(1)).await;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("__consumer_offsets")))]));
    let topic = c.call(request, 12).await.topics.remove(0);
    assert!(topic.is_internal && topic.partitions.len() == 4, "{topic:?}");
    assert!(topic.partitions.iter().all(|p| p.replica_nodes.len() == 3), "offsets.topic.replication.factor is 3");

    let other = cluster.ids().find(|&id| id != coordinator).unwrap();
    let mut elsewhere = Client::connect_to(cluster.client_addr(other)).await;
    assert_eq!(simple_commit(&mut elsewhere, "g", TOPIC, 7, -1).await, ResponseError::NotCoordinator.code());
    // Once it has loaded the partition (COORDINATOR_LOAD_IN_PROGRESS until then).
    eventually(PATIENCE, "a commit at the coordinator", || async {
        (simple_commit(&mut cluster.client(coordinator).await?, "g", TOPIC, 42, -1).await == 0).then_some(())
    })
    .await;
    let mut at_coordinator = Client::connect_to(cluster.client_addr(coordinator)).await;
    assert_eq!(committed(&mut at_coordinator, "g", TOPIC).await, (42, String::new(), 0));
    // Only the coordinator writes the internal topic.
    let r = at_coordinator.call(produce_request("__consumer_offsets", 0, encode_batch(&BatchSpec::values(1)), -1), 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, ResponseError::InvalidTopicException.code());

    // The coordinator dies: a survivor leads the partition, loads it, and has the commit.
    cluster.kill(coordinator);
    let survivor = other;
    let moved = eventually(PATIENCE, "a new coordinator", || async {
        let (code, id) = find_coordinator(&cluster, survivor, "g").await?;
        (code == 0 && id != coordinator).then_some(id)
    })
    .await;
    let offset = eventually(PATIENCE, "the commit at the new coordinator", || async {
        let (offset, _, code) = committed(&mut cluster.client(moved).await?, "g", TOPIC).await;
        (code == 0).then_some(offset)
    })
    .await;
    assert_eq!(offset, 42, "the committed offset survives its coordinator");
}

/// Waits until every running node lists every running broker: each is then unfenced in the
/// others' images, so in the metadata log.
async fn all_live(cluster: &TestCluster) {
    let count = cluster.running().len();
    eventually(PATIENCE, "every broker live on every node", || async {
        for id in cluster.running() {
            let mut c = cluster.client(id).await?;
            if c.call(MetadataRequest::default().with_topics(None), 12).await.brokers.len() != count {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Creates the topic with replication factor 3 through node `via` (which need not be the
/// controller), again while a broker of a loaded machine is briefly fenced.
async fn create_replicated(cluster: &TestCluster, via: i32, partitions: i32) {
    let mut first = true;
    eventually(PATIENCE, "the replicated topic to be created", || {
        let again = !std::mem::replace(&mut first, false);
        async move {
            let code = create(cluster, via, partitions, 3).await.0;
            // An attempt that timed out waiting for its publication may have created it.
            (code == 0 || (again && code == ResponseError::TopicAlreadyExists.code())).then_some(())
        }
    })
    .await;
}

/// The node that says it leads partition 0.
async fn leader_by_its_own_word(cluster: &TestCluster) -> Option<i32> {
    for id in cluster.running() {
        if partitions(cluster, id).await.is_some_and(|p| p[0].0 == id) {
            return Some(id);
        }
    }
    None
}

/// Base offset -> first timestamp of every batch in a record set.
fn batch_timestamps(mut records: &[u8]) -> std::collections::BTreeMap<i64, i64> {
    let mut out = std::collections::BTreeMap::new();
    while records.len() >= 61 {
        let base = i64::from_be_bytes(records[0..8].try_into().unwrap());
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
        out.insert(base, i64::from_be_bytes(records[27..35].try_into().unwrap()));
        records = &records[len.min(records.len())..];
    }
    out
}
