//! The controller quorum on its own (not yet wired into the broker): a lone voter leads at
//! once and keeps its records across a restart; three voters elect one leader, replicate to
//! every image, fail over when the leader stops and let a restarted voter catch up; a learner
//! receives the image from a snapshot.

mod ports;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor::cluster::controller::{Controller, ControllerConfig, NodeId, WriteError};
use gregor::cluster::metadata::{MetadataImage, MetadataRecord, PartitionRecord, TopicRecord};
use gregor::log::LogStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Every wait in these tests gives up after this long.
const PATIENCE: Duration = Duration::from_secs(15);

/// One node: its store, its controller, and how to stop it.
struct Node {
    id: NodeId,
    dir: PathBuf,
    config: ControllerConfig,
    store: Arc<LogStore>,
    controller: Controller,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Node {
    async fn start(dir: &Path, config: ControllerConfig) -> Node {
        let path = dir.to_path_buf();
        let store = Arc::new(tokio::task::spawn_blocking(move || LogStore::open(&path)).await.unwrap().expect("store opens"));
        let (shutdown, rx) = watch::channel(false);
        let (controller, task) = Controller::start(config.clone(), &store, rx).await.expect("controller starts");
        Node { id: config.node_id, dir: dir.to_path_buf(), config, store, controller, shutdown, task }
    }

    /// Stops the controller and closes the store, so the directory can be opened again.
    async fn stop(self) -> (PathBuf, ControllerConfig) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(PATIENCE, self.task).await.expect("controller stops in time").unwrap();
        drop(self.controller);
        let store = self.store;
        tokio::task::spawn_blocking(move || {
            // The controller's tasks have ended; nothing else holds the store.
            let store = Arc::into_inner(store).expect("the stopped controller released the store");
            drop(store);
        })
        .await
        .unwrap();
        (self.dir, self.config)
    }

    async fn restart(self) -> Node {
        let (dir, config) = self.stop().await;
        Node::start(&dir, config).await
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.controller.image().borrow().clone()
    }
}

fn free_address() -> String {
    format!("127.0.0.1:{}", ports::free_port())
}

fn fast(mut config: ControllerConfig) -> ControllerConfig {
    config.heartbeat_interval_ms = 100;
    config.election_timeout_ms = 500;
    config
}

fn topic(name: &str) -> (Uuid, MetadataRecord) {
    let id = Uuid::new_v4();
    (id, MetadataRecord::Topic(TopicRecord { name: name.into(), id, configs: vec![] }))
}

fn partition(topic_id: Uuid, index: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord { topic_id, index, replicas: vec![1, 2, 3], isr: vec![1, 2, 3], leader: 1, leader_epoch: 0, partition_epoch: 0 })
}

/// Waits until `check` holds for the node's image.
async fn wait_image(node: &Node, what: &str, check: impl Fn(&MetadataImage) -> bool) {
    let mut image = node.controller.image();
    let waited = tokio::time::timeout(PATIENCE, image.wait_for(|i| check(i))).await;
    assert!(matches!(waited, Ok(Ok(_))), "node {}: {what} not seen within {PATIENCE:?}", node.id);
}

/// Waits until one of `nodes` leads and the others know it; returns its index in `nodes`.
async fn wait_leader(nodes: &[&Node]) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let leaders: Vec<Option<NodeId>> = nodes.iter().map(|n| n.controller.leader()).collect();
        if let Some(i) = nodes.iter().position(|n| leaders.iter().all(|l| *l == Some(n.id))) {
            return i;
        }
        assert!(Instant::now() < deadline, "no agreed leader within {PATIENCE:?}: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_voter_leads_at_once_and_keeps_records_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let node = Node::start(dir.path(), ControllerConfig::new(1, vec![], None)).await;
    let (id, record) = topic("orders");
    // The first write succeeds only once the node leads.
    let first = loop {
        match node.controller.write(record.clone()).await {
            Ok(log_id) => break log_id,
            Err(WriteError::NotLeader { .. }) if began.elapsed() < PATIENCE => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("first write: {e}"),
        }
    };
    let elapsed = began.elapsed();
    println!("lone voter: store opened, leader and first record committed in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "a lone voter took {elapsed:?} to serve");
    assert_eq!(node.controller.leader(), Some(1));
    let second = node.controller.write(partition(id, 0)).await.unwrap();
    assert!(second.index > first.index);
    assert!(node.image().topic("orders").is_some_and(|t| t.partitions.contains_key(&0)));
    // The image refuses what does not fit it, and says why.
    let refused = node.controller.write(partition(Uuid::new_v4(), 0)).await;
    assert!(matches!(refused, Err(WriteError::Refused(_))), "{refused:?}");

    let before = node.image();
    let began = Instant::now();
    let node = node.restart().await;
    assert_eq!(*node.image(), *before, "the image survives a restart");
    let third = loop {
        match node.controller.write(partition(id, 1)).await {
            Ok(log_id) => break log_id,
            Err(WriteError::NotLeader { .. }) if began.elapsed() < PATIENCE => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("write after restart: {e}"),
        }
    };
    println!("lone voter: restarted and wrote again in {:?}", began.elapsed());
    assert!(third.index > second.index, "{third} after {second}");
    assert_eq!(node.image().topic("orders").unwrap().partitions.len(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let voters: Vec<(NodeId, String)> = (1..=3).map(|id| (id, free_address())).collect();
    let started = futures_util::future::join_all(voters.iter().map(|(id, addr)| {
        let dir = root.path().join(format!("node-{id}"));
        let config = fast(ControllerConfig::new(*id, voters.clone(), Some(addr.clone())));
        async move { Node::start(&dir, config).await }
    }))
    .await;
    let mut nodes: Vec<Option<Node>> = started.into_iter().map(Some).collect();
    let live = |nodes: &[Option<Node>]| -> Vec<usize> { (0..nodes.len()).filter(|&i| nodes[i].is_some()).collect() };

    let began = Instant::now();
    let leader = {
        let all: Vec<&Node> = nodes.iter().flatten().collect();
        wait_leader(&all).await
    };
    println!("three voters: leader {} elected {:?} after start", leader + 1, began.elapsed());

    // A follower refuses writes and names the leader.
    let follower = (leader + 1) % 3;
    let refused = nodes[follower].as_ref().unwrap().controller.write(topic("nope").1).await;
    assert_eq!(refused, Err(WriteError::NotLeader { leader: Some(leader as u64 + 1), address: Some(voters[leader].1.clone()) }));

    let mut topics = BTreeMap::new();
    for i in 0..5 {
        let (id, record) = topic(&format!("t{i}"));
        nodes[leader].as_ref().unwrap().controller.write(record).await.unwrap();
        nodes[leader].as_ref().unwrap().controller.write(partition(id, 0)).await.unwrap();
        topics.insert(format!("t{i}"), id);
    }
    for node in nodes.iter().flatten() {
        wait_image(node, "the first five topics", |image| topics.keys().all(|t| image.topic(t).is_some_and(|t| t.partitions.len() == 1))).await;
    }

    // The leader stops: the other two elect a new one that has every committed record.
    let old = nodes[leader].take().unwrap();
    let stopped_at = Instant::now();
    let (old_dir, old_config) = old.stop().await;
    let new_leader = {
        let rest: Vec<&Node> = nodes.iter().flatten().collect();
        let i = wait_leader(&rest).await;
        live(&nodes)[i]
    };
    println!("three voters: node {} took over {:?} after the leader stopped", new_leader + 1, stopped_at.elapsed());
    let new = nodes[new_leader].as_ref().unwrap();
    assert!(topics.keys().all(|t| new.image().topic(t).is_some()), "the new leader has every committed record");
    for i in 5..10 {
        let (id, record) = topic(&format!("t{i}"));
        new.controller.write(record).await.unwrap();
        topics.insert(format!("t{i}"), id);
    }

    // The old leader comes back as a follower and catches up.
    let expected = new.image();
    nodes[leader] = Some(Node::start(&old_dir, old_config).await);
    for node in nodes.iter().flatten() {
        wait_image(node, "the leader's image", |image| *image == *expected).await;
    }
    let all: Vec<&Node> = nodes.iter().flatten().collect();
    let agreed = wait_leader(&all).await;
    assert_eq!(agreed, new_leader, "the returning node follows the new leader");

    // A restarted follower catches up with what was written while it was away.
    let follower = (0..3).find(|&i| i != new_leader).unwrap();
    let (dir, config) = nodes[follower].take().unwrap().stop().await;
    let (id, record) = topic("while-away");
    nodes[new_leader].as_ref().unwrap().controller.write(record).await.unwrap();
    nodes[follower] = Some(Node::start(&dir, config).await);
    wait_image(nodes[follower].as_ref().unwrap(), "the record written while it was away", |image| image.topic_by_id(id).is_some()).await;

    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_receives_the_image_from_a_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let (voter_addr, learner_addr) = (free_address(), free_address());
    let mut config = fast(ControllerConfig::new(1, vec![(1, voter_addr.clone())], None));
    config.snapshot_after_entries = 10;
    let voter = Node::start(&root.path().join("voter"), config).await;
    wait_leader(&[&voter]).await;
    for i in 0..30 {
        voter.controller.write(topic(&format!("t{i}")).1).await.unwrap();
    }
    // The log the learner would need is gone: only a snapshot can bring it up to date.
    let deadline = Instant::now() + PATIENCE;
    while voter.controller.status().purged_index.is_none_or(|p| p < 10) {
        assert!(Instant::now() < deadline, "no snapshot and purge: {:?}", voter.controller.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let learner = Node::start(&root.path().join("learner"), fast(ControllerConfig::new(2, vec![(1, voter_addr)], Some(learner_addr.clone())))).await;
    // Not a voter: it neither initializes nor elects.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(learner.image().topics().next().is_none());
    assert_eq!(learner.controller.write(topic("nope").1).await, Err(WriteError::NotLeader { leader: None, address: None }));

    voter.controller.add_learner(2, learner_addr).await.unwrap();
    let expected = voter.image();
    wait_image(&learner, "the voter's image", |image| *image == *expected).await;
    // Metrics follow the image closely, not at once.
    let deadline = Instant::now() + PATIENCE;
    while learner.controller.status().snapshot_index.is_none() {
        assert!(Instant::now() < deadline, "not caught up from a snapshot: {:?}", learner.controller.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(learner.controller.leader(), Some(1));
    // Later records follow as log entries.
    let (id, record) = topic("after");
    voter.controller.write(record).await.unwrap();
    wait_image(&learner, "a record after the snapshot", |image| image.topic_by_id(id).is_some()).await;

    learner.stop().await;
    voter.stop().await;
}
