//! A network partition: the leader of a partition cut off from the other two brokers, each
//! broker in a network namespace of its own (tests/cluster/netns.rs), with
//! min.insync.replicas=2. The cut-off leader acknowledges no acks=all write; the controller on
//! the majority side fences it once its session times out and another ISR member leads. After
//! the cut heals, the old leader truncates what only it took, follows and rejoins the ISR;
//! every replica's log is then the same batch for batch (`gregor dump-log`), and no
//! acknowledged record is lost.
//!
//! Needs root for the namespaces; elsewhere it says it was skipped and passes.

mod cluster;
mod common;
mod ports;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::{eventually, TestCluster, FAST};
use common::{name, produce_request};
use gregor::log::batch::{split_replicated, BatchHeader};
use gregor::log::describe_batch;
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::ResponseError;

const PATIENCE: Duration = Duration::from_secs(20);
const TOPIC: &str = "partitioned";
const EVERY_BROKER: [i32; 3] = [1, 2, 3];
const RECORDS_PER_BATCH: i64 = 2;

/// Partition 0 as one node's metadata has it.
#[derive(Debug, Clone, PartialEq)]
struct View {
    leader: i32,
    leader_epoch: i32,
    isr: Vec<i32>,
}

async fn view(cluster: &TestCluster, id: i32) -> Option<View> {
    let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]));
    let topic = cluster.client(id).await?.call(request, 12).await.topics.into_iter().next()?;
    let p = topic.partitions.into_iter().find(|p| p.partition_index == 0).filter(|_| topic.error_code == 0)?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort_unstable();
    Some(View { leader: p.leader_id.0, leader_epoch: p.leader_epoch, isr })
}

/// The one of `nodes` that says it leads partition 0.
async fn leader_among(cluster: &TestCluster, nodes: &[i32]) -> Option<i32> {
    for &id in nodes {
        if view(cluster, id).await.is_some_and(|v| v.leader == id) {
            return Some(id);
        }
    }
    None
}

/// A batch told apart from the others by its first timestamp.
fn batch(stamp: i64) -> Vec<u8> {
    encode_batch(&BatchSpec { base_ts: stamp, ..BatchSpec::values(RECORDS_PER_BATCH) })
}

/// Produces to partition 0 at node `id`: (error code, base offset).
async fn produce(cluster: &TestCluster, id: i32, batch: Vec<u8>, acks: i16, timeout_ms: i32) -> Option<(i16, i64)> {
    let r = cluster.client(id).await?.call(produce_request(TOPIC, 0, batch, acks).with_timeout_ms(timeout_ms), 9).await;
    let p = &r.responses[0].partition_responses[0];
    Some((p.error_code, p.base_offset))
}

/// Acknowledged batches (base offset -> first timestamp), and the last timestamp handed out.
#[derive(Default)]
struct Writes {
    acked: BTreeMap<i64, i64>,
    stamp: i64,
}

impl Writes {
    fn next_stamp(&mut self) -> i64 {
        self.stamp = self.stamp.max(1_700_000_000_000) + 1000;
        self.stamp
    }

    /// `count` acks=all batches through whichever of `nodes` leads, again after an error
    /// while leadership moves, as a client does.
    async fn acked(&mut self, cluster: &TestCluster, nodes: &[i32], count: usize, when: &str) {
        for _ in 0..count {
            let stamp = self.next_stamp();
            let offset = eventually(PATIENCE, &format!("{when}: an acks=all write"), || async {
                let leader = leader_among(cluster, nodes).await?;
                let (code, offset) = produce(cluster, leader, batch(stamp), -1, 5_000).await?;
                (code == 0).then_some(offset)
            })
            .await;
            self.acked.insert(offset, stamp);
        }
    }
}

/// `gregor dump-log` of node `id`'s data directory, one line per batch.
fn dump_log(cluster: &TestCluster, id: i32) -> Vec<String> {
    let out = cluster.command(id, &["dump-log", "--topic", TOPIC], &[]).output().expect("dump-log runs");
    assert!(out.status.success(), "dump-log of node {id}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_majority_loses_only_what_was_never_acknowledged() {
    let settings = [FAST, &[("replica.lag.time.max.ms", "2000"), ("min.insync.replicas", "2")]].concat();
    let Some(mut cluster) = TestCluster::start_in_namespaces(3, 0, &settings) else { return };
    let started = Instant::now();
    // Refused (INVALID_REPLICATION_FACTOR) until all three brokers are registered.
    eventually(PATIENCE, "the topic on three brokers", || async {
        let topic = CreatableTopic::default().with_name(name(TOPIC)).with_num_partitions(1).with_replication_factor(3);
        let r = cluster.client(1).await?.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
        // A try that timed out waiting for its publication may have created it.
        [0, ResponseError::TopicAlreadyExists.code()].contains(&r.topics[0].error_code).then_some(())
    })
    .await;
    let before = eventually(PATIENCE, "every node to show all three replicas in sync", || async {
        let first = view(&cluster, 1).await?;
        for id in [2, 3] {
            if view(&cluster, id).await? != first {
                return None;
            }
        }
        (first.leader > 0 && first.isr == EVERY_BROKER).then_some(first)
    })
    .await;
    let mut writes = Writes::default();
    writes.acked(&cluster, &EVERY_BROKER, 10, "before the cut").await;

    let old = before.leader;
    let majority: Vec<i32> = EVERY_BROKER.into_iter().filter(|&id| id != old).collect();
    // Either way is a partition to survive; which one this run met is worth knowing.
    let controller = cluster.client(old).await.expect("the leader serves").call(MetadataRequest::default().with_topics(Some(vec![])), 12).await.controller_id.0;
    cluster.network().isolate(old);
    let cut_at = Instant::now();
    eprintln!("node {old}, the leader at epoch {}, cut off from nodes {majority:?}; node {controller} is the active controller", before.leader_epoch);

    // The old leader does not know yet: it takes acks=1 writes into its log alone...
    let mut divergent = Vec::new();
    for _ in 0..3 {
        let stamp = writes.next_stamp();
        let (code, _) = produce(&cluster, old, batch(stamp), 1, 5_000).await.expect("the cut-off leader still serves clients");
        assert_eq!(code, 0, "acks=1 at the cut-off leader");
        divergent.push(stamp);
    }
    // ...but cannot acknowledge acks=all: its followers no longer fetch.
    let stamp = writes.next_stamp();
    let (code, _) = produce(&cluster, old, batch(stamp), -1, 3_000).await.expect("the cut-off leader still serves clients");
    let refusals = [ResponseError::RequestTimedOut, ResponseError::NotEnoughReplicas, ResponseError::NotEnoughReplicasAfterAppend, ResponseError::NotLeaderOrFollower];
    let refusal = refusals.into_iter().find(|e| e.code() == code);
    assert!(refusal.is_some(), "acks=all at the cut-off leader answered {code}");
    eprintln!("acks=all at the cut-off leader: {refusal:?}");
    divergent.push(stamp);
    // Nor does it show consumers any of it: its high watermark stays where its followers left it.
    let acked_end = writes.acked.keys().last().expect("writes") + RECORDS_PER_BATCH;
    let (code, high_watermark, _) = cluster.client(old).await.expect("the cut-off leader still serves clients").fetch(TOPIC, 0, 0, 0).await;
    assert_eq!((code, high_watermark), (0, acked_end), "a consumer at the cut-off leader");

    // The majority's controller fences it; another ISR member leads at a later epoch.
    let after = eventually(PATIENCE, "a new leader on the majority side", || async {
        let v = view(&cluster, majority[0]).await?;
        (v.leader > 0 && v.leader != old && v.leader_epoch > before.leader_epoch).then_some(v)
    })
    .await;
    eprintln!("node {} leads at epoch {} (seen {:?} after the cut), ISR {:?}", after.leader, after.leader_epoch, cut_at.elapsed(), after.isr);
    assert!(!after.isr.contains(&old), "the fenced broker left the ISR: {after:?}");
    assert_eq!(view(&cluster, old).await.map(|v| v.leader), Some(old), "the cut-off broker cannot hear that it no longer leads");
    writes.acked(&cluster, &majority, 10, "under the new leader").await;

    cluster.network().heal();
    let healed_at = Instant::now();
    eventually(PATIENCE, "the old leader to follow and rejoin the ISR", || async {
        let leader = leader_among(&cluster, &majority).await?;
        let (at_leader, at_old) = (view(&cluster, leader).await?, view(&cluster, old).await?);
        (at_leader.isr == EVERY_BROKER && at_old.leader == leader).then_some(())
    })
    .await;
    eprintln!("node {old} back in the ISR {:?} after healing", healed_at.elapsed());
    // Acknowledged by the whole ISR, so on every replica; checked again after it, as an ISR
    // member that left and came back caught up to the end first.
    writes.acked(&cluster, &EVERY_BROKER, 1, "after healing").await;
    let leader = eventually(PATIENCE, "the full ISR after the last write", || async {
        let leader = leader_among(&cluster, &EVERY_BROKER).await?;
        (view(&cluster, leader).await?.isr == EVERY_BROKER).then_some(leader)
    })
    .await;

    // Every acknowledged batch, read by a client from the leader; nothing of the old leader's own.
    let (code, high_watermark, records) = cluster.client(leader).await.expect("the leader serves").fetch(TOPIC, 0, 0, 0).await;
    assert_eq!(code, 0);
    let batches = split_replicated(&records).expect("well-formed batches");
    let logged: BTreeMap<i64, i64> = batches.iter().map(|b| BatchHeader::new(b).expect("a header")).map(|h| (h.base_offset(), h.base_timestamp())).collect();
    assert!(high_watermark > *writes.acked.keys().last().expect("writes"), "high watermark {high_watermark}");
    for (offset, stamp) in &writes.acked {
        assert_eq!(logged.get(offset), Some(stamp), "acknowledged batch at offset {offset}: {logged:?}");
    }
    for stamp in &divergent {
        assert!(!logged.values().any(|s| s == stamp), "the old leader's own batch {stamp} survived: {logged:?}");
    }
    assert!(cluster.log(old).contains("truncated"), "the old leader truncated its log");

    // Batch for batch the same on every replica, and that is what the leader serves.
    for id in EVERY_BROKER {
        cluster.stop(id);
    }
    let dumps: Vec<Vec<String>> = EVERY_BROKER.into_iter().map(|id| dump_log(&cluster, id)).collect();
    for (id, dump) in EVERY_BROKER.into_iter().zip(&dumps) {
        assert_eq!(dump, &dumps[0], "node {id}'s log differs from node 1's");
    }
    let served: Vec<String> = batches.iter().map(|b| format!("partition: 0 {}", describe_batch(b))).collect();
    assert_eq!(dumps[0], served, "the replicas store what the leader served");
    eprintln!("{} batches identical on all three replicas; the test took {:?}", dumps[0].len(), started.elapsed());
}
