//! Leader/follower replication between in-process brokers, the test playing the controller: it
//! applies partition states on each broker (`apply_partition_state`, what the metadata publisher
//! will call) and accepts the leaders' ISR changes (an `AlterPartitionSender` that records them).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::future::BoxFuture;
use gregor::cluster::replication::{AlterPartition, AlterPartitionSender, BrokerAddresses, CommittedIsr, PartitionState, TopicPartition};
use gregor::log::{AppendOptions, FetchIsolation, FlushPolicy, ReadRequest};
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::{Broker, BrokerHandle};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig, CreateTopicsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::ResponseError;
use tempfile::TempDir;
use uuid::Uuid;

const TOPIC: &str = "replicated";

/// Accepts every ISR change, as the controller does a valid one, and remembers it.
#[derive(Default)]
struct Controller {
    requests: Mutex<Vec<AlterPartition>>,
}

impl AlterPartitionSender for Controller {
    fn alter_partition(&self, request: AlterPartition) -> BoxFuture<'static, Result<CommittedIsr, ResponseError>> {
        self.requests.lock().unwrap().push(request.clone());
        let committed = CommittedIsr { leader_epoch: request.leader_epoch, partition_epoch: request.partition_epoch + 1, isr: request.new_isr };
        Box::pin(std::future::ready(Ok(committed)))
    }
}

impl Controller {
    fn isr_changes(&self) -> Vec<Vec<i32>> {
        self.requests.lock().unwrap().iter().map(|r| r.new_isr.clone()).collect()
    }
}

/// Brokers 1..=n, each with its own data directory, quick to fetch and to notice a lagging
/// follower; the topic exists on every one.
struct TestCluster {
    brokers: Vec<Option<BrokerHandle>>,
    dirs: Vec<TempDir>,
    controller: Arc<Controller>,
    settings: Vec<(&'static str, &'static str)>,
}

const SETTINGS: &[(&str, &str)] = &[("replica.fetch.wait.max.ms", "100"), ("replica.fetch.backoff.ms", "50"), ("replica.lag.time.max.ms", "1000")];

impl TestCluster {
    async fn start(n: usize, topic_configs: &[(&str, &str)]) -> TestCluster {
        let mut cluster = TestCluster { brokers: Vec::new(), dirs: Vec::new(), controller: Arc::new(Controller::default()), settings: SETTINGS.to_vec() };
        for i in 0..n {
            cluster.dirs.push(TempDir::new().unwrap());
            cluster.brokers.push(None);
            cluster.restart(i as i32 + 1).await;
            let mut c = Client::connect(cluster.broker(i as i32 + 1)).await;
            assert_eq!(create_topic(&mut c, TOPIC, topic_configs).await, 0);
        }
        cluster
    }

    fn broker(&self, id: i32) -> &BrokerHandle {
        self.brokers[id as usize - 1].as_ref().expect("broker running")
    }

    async fn stop(&mut self, id: i32) {
        self.brokers[id as usize - 1].take().expect("broker running").shutdown().await;
    }

    async fn restart(&mut self, id: i32) {
        let mut config = config(self.dirs[id as usize - 1].path());
        config.set("node.id", &id.to_string()).unwrap();
        for (key, value) in &self.settings {
            config.set(key, value).unwrap();
        }
        self.brokers[id as usize - 1] = Some(Broker::start_with(config, self.controller.clone()).await.expect("broker starts"));
    }

    fn addresses(&self) -> BrokerAddresses {
        self.brokers.iter().enumerate().filter_map(|(i, b)| Some((i as i32 + 1, b.as_ref()?.local_addr().to_string()))).collect()
    }

    /// Tells every running broker the partition's state, with the leader's topic id.
    async fn apply(&self, state: &PartitionState) {
        let topic_id = topic_id(self.broker(state.leader.max(1))).await;
        let partition = TopicPartition { topic: TOPIC.into(), topic_id, partition: 0 };
        for broker in self.brokers.iter().flatten() {
            broker.apply_partition_state(&partition, state.clone(), &self.addresses()).await.unwrap();
        }
    }

    async fn apply_to(&self, id: i32, state: &PartitionState, topic_id: Uuid) {
        let partition = TopicPartition { topic: TOPIC.into(), topic_id, partition: 0 };
        self.broker(id).apply_partition_state(&partition, state.clone(), &self.addresses()).await.unwrap();
    }
}

fn state(leader: i32, leader_epoch: i32, partition_epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionState {
    PartitionState { leader, leader_epoch, partition_epoch, replicas: replicas.to_vec(), isr: isr.to_vec() }
}

async fn create_topic(c: &mut Client, topic: &str, configs: &[(&str, &str)]) -> i16 {
    let configs = configs.iter().map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)))).collect();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1).with_configs(configs)])
        .with_timeout_ms(5000);
    c.call(request, 7).await.topics[0].error_code
}

fn s(text: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(text.to_string())
}

async fn topic_id(broker: &BrokerHandle) -> Uuid {
    let mut c = Client::connect(broker).await;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]));
    c.call(request, 12).await.topics[0].topic_id
}

/// (leader id, leader epoch, ISR) as the broker's Metadata answers.
async fn metadata(broker: &BrokerHandle) -> (i32, i32, Vec<i32>) {
    let mut c = Client::connect(broker).await;
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]));
    let r = c.call(request, 12).await;
    let p = &r.topics[0].partitions[0];
    (p.leader_id.0, p.leader_epoch, p.isr_nodes.iter().map(|b| b.0).collect())
}

/// Every batch of the partition's log, as stored (log end, not high watermark).
async fn stored_log(broker: &BrokerHandle) -> Bytes {
    let (store, id) = broker.partition_log(TOPIC, 0).unwrap();
    let read = ReadRequest { id, offset: 0, max_bytes: 64 << 20, isolation: FetchIsolation::LogEnd };
    store.read(&[read], 64 << 20).await.pop().unwrap().map(|r| r.records).unwrap_or_default()
}

/// (log end, high watermark)
fn ends(broker: &BrokerHandle) -> (i64, i64) {
    let (store, id) = broker.partition_log(TOPIC, 0).unwrap();
    (store.log_end_offset(id).unwrap(), store.offsets(id).unwrap().1)
}

/// The partition leader epoch of each batch in a record set.
fn batch_epochs(mut records: &[u8]) -> Vec<i32> {
    let mut out = Vec::new();
    while records.len() >= 16 {
        out.push(i32::from_be_bytes(records[12..16].try_into().unwrap()));
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
        records = &records[len.min(records.len())..];
    }
    out
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Produces `count` records with the given acks and timeout; returns (error code, base offset).
async fn produce(c: &mut Client, acks: i16, timeout_ms: i32, batch: Vec<u8>) -> (i16, i64) {
    let r = c.call(produce_request(TOPIC, 0, batch, acks).with_timeout_ms(timeout_ms), 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn values(count: i64) -> Vec<u8> {
    encode_batch(&BatchSpec::values(count))
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[tokio::test]
async fn followers_copy_the_leaders_log_batch_for_batch() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.apply(&state(1, 1, 1, &[1, 2, 3], &[1, 2, 3])).await;
    let mut c = Client::connect(cluster.broker(1)).await;
    let pid = c.call(InitProducerIdRequest::default().with_transactional_id(None), 4).await.producer_id.0;
    let mut next = 0;
    for i in 0..10 {
        let batch = if i % 2 == 0 { values(i + 1) } else { encode_batch(&BatchSpec { producer: Some((pid, 0, (i as i32 / 2) * 10)), ..BatchSpec::values(10) }) };
        let count = if i % 2 == 0 { i + 1 } else { 10 };
        assert_eq!(produce(&mut c, -1, 5000, batch).await, (0, next), "acks=all produce {i}");
        next += count;
    }
    assert_eq!(ends(cluster.broker(1)), (next, next));
    let leader_log = stored_log(cluster.broker(1)).await;
    for follower in [2, 3] {
        eventually("followers have the high watermark", || ends(cluster.broker(follower)) == (next, next)).await;
        assert_eq!(stored_log(cluster.broker(follower)).await, leader_log, "broker {follower}'s log is the leader's, byte for byte");
    }
    assert_eq!(batch_offsets(&leader_log).len(), 10);
    assert_eq!(metadata(cluster.broker(1)).await, (1, 1, vec![1, 2, 3]));
    // Consumers fetch from the leader only.
    let mut f = Client::connect(cluster.broker(2)).await;
    assert_eq!(f.fetch(TOPIC, 0, 0, 0).await.0, code(ResponseError::NotLeaderOrFollower));
    let mut p = Client::connect(cluster.broker(2)).await;
    assert_eq!(produce(&mut p, 1, 5000, values(1)).await.0, code(ResponseError::NotLeaderOrFollower));
    assert!(cluster.controller.isr_changes().is_empty(), "no ISR change was needed");
}

#[tokio::test]
async fn acks_all_completes_only_once_the_follower_has_the_batch() {
    let cluster = TestCluster::start(2, &[]).await;
    let leading = state(1, 1, 1, &[1, 2], &[1, 2]);
    let leader_topic_id = topic_id(cluster.broker(1)).await;
    cluster.apply_to(1, &leading, leader_topic_id).await;
    let mut c = Client::connect(cluster.broker(1)).await;
    // The follower is not fetching yet: acks=all times out, acks=1 is answered at once.
    assert_eq!(produce(&mut c, -1, 300, values(3)).await, (code(ResponseError::RequestTimedOut), -1));
    assert_eq!(produce(&mut c, 1, 300, values(2)).await, (0, 3));
    assert_eq!(ends(cluster.broker(1)), (5, 0), "nothing is committed without the follower");
    assert_eq!(c.fetch(TOPIC, 0, 0, 0).await.2.len(), 0, "consumers see nothing above the high watermark");

    let produced = tokio::spawn({
        let addr = cluster.broker(1).local_addr();
        async move {
            let mut c = Client::connect_to(addr).await;
            produce(&mut c, -1, 10_000, values(4)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!produced.is_finished(), "acks=all waits for the follower");
    cluster.apply_to(2, &leading, leader_topic_id).await;
    assert_eq!(produced.await.unwrap(), (0, 5));
    assert!(ends(cluster.broker(2)).0 >= 9, "the follower had the batch when it was acknowledged");
    assert_eq!(ends(cluster.broker(1)).1, 9);
    assert_eq!(c.fetch(TOPIC, 0, 0, 0).await.2.len(), stored_log(cluster.broker(1)).await.len());
}

#[tokio::test]
async fn min_insync_replicas_is_enforced_on_a_single_node() {
    let dir = TempDir::new().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(create_topic(&mut c, TOPIC, &[("min.insync.replicas", "2")]).await, 0);
    assert_eq!(produce(&mut c, -1, 1000, values(2)).await, (code(ResponseError::NotEnoughReplicas), -1));
    assert_eq!(ends(&broker), (0, 0), "a refused batch is not appended");
    assert_eq!(produce(&mut c, 1, 1000, values(2)).await, (0, 0), "acks=1 does not need the ISR");
    assert_eq!(produce(&mut c, -1, 1000, values(1)).await.0, code(ResponseError::NotEnoughReplicas));
    broker.shutdown().await;
}

#[tokio::test]
async fn isr_shrinks_when_a_follower_stops_and_expands_when_it_returns() {
    let mut cluster = TestCluster::start(2, &[("min.insync.replicas", "2")]).await;
    let leading = state(1, 1, 1, &[1, 2], &[1, 2]);
    cluster.apply(&leading).await;
    let mut c = Client::connect(cluster.broker(1)).await;
    assert_eq!(produce(&mut c, -1, 5000, values(2)).await, (0, 0));

    cluster.stop(2).await;
    // Waits for the follower while the ISR still has it; the shrink leaves too few replicas.
    assert_eq!(produce(&mut c, -1, 10_000, values(2)).await, (code(ResponseError::NotEnoughReplicasAfterAppend), -1));
    assert_eq!(cluster.controller.isr_changes(), vec![vec![1]]);
    assert_eq!(metadata(cluster.broker(1)).await.2, vec![1]);
    assert_eq!(produce(&mut c, -1, 5000, values(1)).await, (code(ResponseError::NotEnoughReplicas), -1));
    assert_eq!(produce(&mut c, 1, 5000, values(1)).await, (0, 4));

    cluster.restart(2).await;
    let topic_id = topic_id(cluster.broker(1)).await;
    cluster.apply_to(2, &state(1, 1, 2, &[1, 2], &[1]), topic_id).await;
    let isr = || async { metadata(cluster.broker(1)).await.2 };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while isr().await != vec![1, 2] {
        assert!(tokio::time::Instant::now() < deadline, "the follower rejoins the ISR");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster.controller.isr_changes(), vec![vec![1], vec![1, 2]]);
    assert_eq!(produce(&mut c, -1, 5000, values(1)).await, (0, 5));
    assert_eq!(stored_log(cluster.broker(2)).await.len(), stored_log(cluster.broker(1)).await.len());
}

#[tokio::test]
async fn a_new_leader_makes_the_old_one_truncate_what_was_never_committed() {
    let cluster = TestCluster::start(2, &[]).await;
    let (id1, id2) = (topic_id(cluster.broker(1)).await, topic_id(cluster.broker(2)).await);
    let epoch1 = state(1, 1, 1, &[1, 2], &[1, 2]);
    cluster.apply_to(1, &epoch1, id1).await;
    cluster.apply_to(2, &epoch1, id1).await;
    let mut c1 = Client::connect(cluster.broker(1)).await;
    for base in [0, 2, 4] {
        assert_eq!(produce(&mut c1, -1, 5000, values(2)).await, (0, base));
    }
    // Broker 2 stops following (no leader known to it); broker 1 takes writes nobody copies.
    cluster.apply_to(2, &state(-1, 1, 2, &[1, 2], &[1, 2]), id1).await;
    assert_eq!(produce(&mut c1, 1, 5000, values(3)).await, (0, 6));
    assert_eq!(produce(&mut c1, 1, 5000, values(3)).await, (0, 9));
    assert_eq!(ends(cluster.broker(1)), (12, 6));
    assert_eq!(ends(cluster.broker(2)).0, 6);

    // Broker 2 is elected at epoch 2; broker 1 follows it and finds its batches at 6.. diverge.
    let epoch2 = state(2, 2, 3, &[1, 2], &[2]);
    cluster.apply_to(2, &epoch2, id2).await;
    let mut c2 = Client::connect(cluster.broker(2)).await;
    assert_eq!(produce(&mut c2, 1, 5000, values(1)).await, (0, 6));
    cluster.apply_to(1, &epoch2, id2).await;
    eventually("the old leader has truncated and caught up", || ends(cluster.broker(1)).0 == 7).await;
    let (old, new) = (stored_log(cluster.broker(1)).await, stored_log(cluster.broker(2)).await);
    assert_eq!(old, new, "the old leader's log is the new leader's, byte for byte");
    assert_eq!(batch_offsets(&new), vec![0, 2, 4, 6]);
    assert_eq!(batch_epochs(&new), vec![1, 1, 1, 2]);
    eventually("the follower rejoins the ISR", || cluster.controller.isr_changes().last() == Some(&vec![2, 1])).await;
}

#[tokio::test]
async fn a_follower_with_epochs_the_leader_lacks_truncates_through_offset_for_leader_epoch() {
    let cluster = TestCluster::start(2, &[]).await;
    let id1 = topic_id(cluster.broker(1)).await;
    let epoch1 = state(1, 1, 1, &[1, 2], &[1, 2]);
    cluster.apply_to(1, &epoch1, id1).await;
    let mut c1 = Client::connect(cluster.broker(1)).await;
    assert_eq!(produce(&mut c1, 1, 5000, values(3)).await, (0, 0));
    assert_eq!(produce(&mut c1, 1, 5000, values(3)).await, (0, 3));
    // Broker 2 holds 4 records of epoch 0, which the leader never had: its Fetch is refused
    // (OFFSET_OUT_OF_RANGE, the leader knows no epoch 0), and OffsetForLeaderEpoch tells it so.
    let (store, id) = cluster.broker(2).partition_log(TOPIC, 0).unwrap();
    let opts = AppendOptions { max_batch_bytes: 1 << 20, leader_epoch: 0, log_append_time: None, flush: FlushPolicy::NEVER, require_keys: false };
    store.append(id, &values(4), opts).await.unwrap();
    cluster.apply_to(2, &epoch1, id1).await;
    eventually("the follower has replaced its log with the leader's", || ends(cluster.broker(2)) == (6, 6)).await;
    assert_eq!(stored_log(cluster.broker(2)).await, stored_log(cluster.broker(1)).await);
    assert_eq!(batch_epochs(&stored_log(cluster.broker(2)).await), vec![1, 1]);
}

#[tokio::test]
async fn idempotent_retries_after_the_leader_moves_are_deduplicated() {
    let cluster = TestCluster::start(2, &[]).await;
    let (id1, id2) = (topic_id(cluster.broker(1)).await, topic_id(cluster.broker(2)).await);
    let epoch1 = state(1, 1, 1, &[1, 2], &[1, 2]);
    cluster.apply_to(1, &epoch1, id1).await;
    cluster.apply_to(2, &epoch1, id1).await;
    let mut c1 = Client::connect(cluster.broker(1)).await;
    let pid = c1.call(InitProducerIdRequest::default().with_transactional_id(None), 4).await.producer_id.0;
    let batch = |seq: i32| encode_batch(&BatchSpec { producer: Some((pid, 0, seq)), ..BatchSpec::values(5) });
    assert_eq!(produce(&mut c1, -1, 5000, batch(0)).await, (0, 0));
    assert_eq!(produce(&mut c1, -1, 5000, batch(5)).await, (0, 5));

    let epoch2 = state(2, 2, 2, &[1, 2], &[1, 2]);
    cluster.apply_to(2, &epoch2, id2).await;
    cluster.apply_to(1, &epoch2, id2).await;
    assert_eq!(produce(&mut c1, -1, 5000, batch(10)).await.0, code(ResponseError::NotLeaderOrFollower));
    let mut c2 = Client::connect(cluster.broker(2)).await;
    // The producer's retry of its last batch, now at the new leader: the same offset, once.
    assert_eq!(produce(&mut c2, -1, 5000, batch(5)).await, (0, 5));
    assert_eq!(ends(cluster.broker(2)).0, 10);
    assert_eq!(produce(&mut c2, -1, 5000, batch(20)).await.0, code(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(produce(&mut c2, -1, 5000, batch(10)).await, (0, 10));
    eventually("the old leader follows", || ends(cluster.broker(1)) == (15, 15)).await;
    assert_eq!(stored_log(cluster.broker(1)).await, stored_log(cluster.broker(2)).await);
}

/// A follower's Fetch: `replica_id` in v12, `replica_state` in v15.
fn replica_fetch(version: i16, replica: i32, current_epoch: i32, offset: i64, last_fetched_epoch: i32) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(current_epoch)
        .with_fetch_offset(offset)
        .with_last_fetched_epoch(last_fetched_epoch)
        .with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_session_epoch(-1).with_topics(vec![FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![partition])]);
    if version >= 15 {
        request.with_replica_state(ReplicaState::default().with_replica_id(BrokerId(replica)))
    } else {
        request.with_replica_id(BrokerId(replica))
    }
}

/// Sends a Fetch of the one partition (by topic id from v13 on); returns its answer.
async fn fetch_as(c: &mut Client, version: i16, topic_id: Uuid, mut request: FetchRequest) -> PartitionData {
    if version >= 13 {
        request.topics[0].topic_id = topic_id;
    }
    c.call(request, version).await.responses.remove(0).partitions.remove(0)
}

#[tokio::test]
async fn replica_fetches_are_checked_as_kafka_checks_them() {
    let dir = TempDir::new().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic(TOPIC, 1).await, 0);
    // Three records at epoch 0, before any state: the single-node default.
    assert_eq!(produce(&mut c, -1, 1000, values(3)).await, (0, 0));
    let id = topic_id(&broker).await;
    let partition = TopicPartition { topic: TOPIC.into(), topic_id: id, partition: 0 };
    broker.apply_partition_state(&partition, state(1, 3, 1, &[1, 2], &[1, 2]), &BrokerAddresses::new()).await.unwrap();
    assert_eq!(produce(&mut c, 1, 1000, values(2)).await, (0, 3));
    assert_eq!(ends(&broker), (5, 3), "the high watermark waits for replica 2");

    for version in [12, 15] {
        let unknown = fetch_as(&mut c, version, id, replica_fetch(version, 9, 3, 0, -1)).await;
        assert_eq!(unknown.error_code, code(ResponseError::UnknownLeaderEpoch), "v{version}: a replica the leader does not know, at its epoch");
        let unknown = fetch_as(&mut c, version, id, replica_fetch(version, 9, -1, 0, -1)).await;
        assert_eq!(unknown.error_code, code(ResponseError::NotLeaderOrFollower), "v{version}: a replica the leader does not know, without an epoch");
        let stale = fetch_as(&mut c, version, id, replica_fetch(version, 2, 2, 0, -1)).await;
        assert_eq!(stale.error_code, code(ResponseError::FencedLeaderEpoch), "v{version}: a follower behind the leader's epoch");
        let ahead = fetch_as(&mut c, version, id, replica_fetch(version, 2, 4, 0, -1)).await;
        assert_eq!(ahead.error_code, code(ResponseError::UnknownLeaderEpoch), "v{version}: a follower ahead of the leader's epoch");
    }
    // A consumer at an old epoch is fenced too.
    let consumer = fetch_as(&mut c, 12, id, replica_fetch(12, -1, 1, 0, -1)).await;
    assert_eq!(consumer.error_code, code(ResponseError::FencedLeaderEpoch));

    // The follower's log diverges: it has epoch 2 up to offset 4, the leader has no epoch 2.
    let diverging = fetch_as(&mut c, 12, id, replica_fetch(12, 2, 3, 4, 2)).await;
    assert_eq!((diverging.error_code, diverging.diverging_epoch.epoch, diverging.diverging_epoch.end_offset), (0, 0, 3));
    assert_eq!(diverging.records.unwrap_or_default().len(), 0);
    assert_eq!(ends(&broker), (5, 3), "a diverging follower's offset is not taken as its log end");

    // A follower reads past the high watermark, up to the log end; its offset moves the HW.
    let fetched = fetch_as(&mut c, 15, id, replica_fetch(15, 2, 3, 0, -1)).await;
    assert_eq!((fetched.error_code, fetched.high_watermark), (0, 3));
    assert_eq!(batch_offsets(&fetched.records.unwrap()), vec![0, 3]);
    let caught_up = fetch_as(&mut c, 15, id, replica_fetch(15, 2, 3, 5, 3)).await;
    assert_eq!((caught_up.error_code, caught_up.high_watermark), (0, 5));
    assert_eq!(ends(&broker), (5, 5));
    let beyond = fetch_as(&mut c, 15, id, replica_fetch(15, 2, 3, 6, 3)).await;
    assert_eq!(beyond.error_code, code(ResponseError::OffsetOutOfRange));
    broker.shutdown().await;
}
