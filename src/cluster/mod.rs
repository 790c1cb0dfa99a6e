//! Topics, partitions, their configs, and this node's identity.
//!
//! Topics live in the controller's metadata image: admin requests become controller calls,
//! and the metadata publisher (publisher.rs) makes the local topics follow the image, creating
//! and deleting partition logs. Locally a topic persists in the `meta` column family under
//! `t<name>` with the log ids of its partitions; counters under `c...`; dynamic broker configs
//! under `b/` (broker_config.rs).

mod broker_config;
pub mod broker_client;
pub mod controller;
pub mod identity;
pub mod lifecycle;
pub mod metadata;
pub mod publisher;
pub mod replication;
pub mod state_topic;
mod topic_config;
pub mod quotas;
pub mod users;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use uuid::Uuid;

pub use crate::config::ConfigChange;
use crate::config::{BrokerSettings, Config};
use crate::security::acl::{AclBinding, AclFilter};
use crate::log::{CleanerLimits, HighWatermark, LogStore, Meta, PartitionId, ReadOnlyStore};
use controller::{AlterTopicConfigs, Controller, ControllerClient, CreatePartitions, CreateTopic, WriteError};
pub use controller::{AlterReassignments, ElectLeaders, ElectionType, PartitionResults, QuorumDescription, Reassign, ReplicaProgress};
use metadata::MetadataImage;
pub use topic_config::TopicConfigs;

/// Milliseconds since the Unix epoch, as Kafka's timestamps count them.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Upper bound on a topic's partition count, so one request cannot exhaust the node.
pub const MAX_PARTITIONS: i32 = 10_000;

const TOPIC_PREFIX: &[u8] = b"t";
const CLUSTER_ID_KEY: &[u8] = b"c/cluster_id";
const NEXT_PARTITION_KEY: &[u8] = b"c/next_partition_id";
const NEXT_PRODUCER_KEY: &[u8] = b"c/next_producer_id";
/// Set once this node's topics are in the metadata log: from then on a local topic the image
/// lacks was deleted (a crash cut its local deletion short), never one to register.
const MIGRATED_KEY: &[u8] = b"c/topics_in_metadata_log";

/// Where clients reach this node: one advertised address per listener.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: i32,
    /// In `listeners` order; never empty.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// A broker as clients are told of it, at the address of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// The address clients that came in on `listener` are told to use.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl Node {
    /// The endpoint of `listener`, as Kafka answers a client with the address of the listener
    /// it connected to; the first listener's for a name this node does not have.
    pub fn endpoint(&self, listener: &str) -> &Endpoint {
        self.endpoints.iter().find(|e| e.listener == listener).unwrap_or(&self.endpoints[0])
    }
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Log ids of partitions 0..n, in order.
    pub partitions: Vec<PartitionId>,
    pub configs: TopicConfigs,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<PartitionId> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i).copied())
    }

    fn encode(&self) -> Vec<u8> {
        let mut text = format!("id={}\npartitions={}\n", self.id, join(&self.partitions));
        for (k, v) in self.configs.explicit() {
            text.push_str(&format!("config.{k}={v}\n"));
        }
        text.into_bytes()
    }

    fn decode(name: &str, bytes: &[u8], settings: &Arc<BrokerSettings>) -> Result<Topic> {
        let record = TopicRecord::parse(bytes)?;
        Ok(Topic { name: name.to_string(), id: record.id, partitions: record.partitions, configs: TopicConfigs::new(record.configs, settings.clone()) })
    }
}

/// A topic as its `meta` record holds it, before its configs meet the broker's settings.
struct TopicRecord {
    id: Uuid,
    partitions: Vec<PartitionId>,
    configs: BTreeMap<String, String>,
}

impl TopicRecord {
    fn parse(bytes: &[u8]) -> Result<TopicRecord> {
        let text = std::str::from_utf8(bytes).context("topic record is not UTF-8")?;
        let (mut id, mut partitions, mut configs) = (None, Vec::new(), BTreeMap::new());
        for line in text.lines() {
            let (k, v) = line.split_once('=').context("bad topic record line")?;
            match k {
                "id" => id = Some(Uuid::parse_str(v)?),
                "partitions" => {
                    partitions = v.split(',').filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?
                }
                _ => {
                    if let Some(key) = k.strip_prefix("config.") {
                        configs.insert(key.to_string(), v.to_string());
                    }
                }
            }
        }
        Ok(TopicRecord { id: id.context("topic record has no id")?, partitions, configs })
    }
}

/// The local log ids of a topic's partitions 0..n in a data directory opened read-only
/// (`gregor dump-log`); `None` when it holds no such topic.
pub fn stored_partitions(store: &ReadOnlyStore, topic: &str) -> Result<Option<Vec<PartitionId>>> {
    let Some(record) = store.meta(&topic_key(topic))? else { return Ok(None) };
    Ok(Some(TopicRecord::parse(&record).with_context(|| format!("topic {topic}"))?.partitions))
}

fn join(ids: &[PartitionId]) -> String {
    ids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
}

/// What a new topic should look like.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker default.
    pub num_partitions: i32,
    /// -1 means the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// The replicas of each partition, when the request names them (then the two above are
    /// taken from them).
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: Vec<(String, Option<String>)>,
}

/// An admin request's failure: the error code and message for the client.
pub type Failure = (ResponseError, String);

/// How long an admin request waits for the controller's change to reach this node's topics.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Cluster {
    node: Node,
    cluster_id: String,
    /// The broker settings in effect, which topic configs fall back to.
    settings: Arc<BrokerSettings>,
    pub auto_create_topics: bool,
    /// `default.replication.factor`: what a topic created without one (-1) asks for.
    default_replication_factor: i16,
    meta: Meta,
    log: Arc<LogStore>,
    topics: RwLock<IndexMap<String, Arc<Topic>>>,
    /// Serialises changes to local topics; held while they are written. Holds the next
    /// partition log id, as stored.
    admin: tokio::sync::Mutex<u32>,
    /// This node's member of the metadata quorum, once the broker started it.
    quorum: OnceLock<Quorum>,
    /// Counts the metadata images published into the local topics; admin requests wait on it.
    published: tokio::sync::watch::Sender<u64>,
    /// The producer ids this broker may still hand out, from its current block.
    producer_ids: tokio::sync::Mutex<Range<i64>>,
    /// Producer ids a data directory from before the metadata log handed out: blocks start
    /// above them.
    legacy_producer_ids: i64,
    /// How this node dials other brokers (replication, transaction markers).
    inter_broker: broker_client::InterBrokerClient,
}

struct Quorum {
    controller: Controller,
    client: Arc<ControllerClient>,
}

/// The log of partition `index` of `topic`, as every request that names a partition needs it.
pub fn partition_id(topic: Option<&Topic>, index: i32) -> Result<PartitionId, ResponseError> {
    topic.and_then(|t| t.partition(index)).ok_or(ResponseError::UnknownTopicOrPartition)
}

/// Topic names as Kafka allows them.
pub fn validate_topic_name(name: &str) -> Result<(), ResponseError> {
    let legal = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name == "." || name == ".." || name.len() > 249 || !legal {
        return Err(ResponseError::InvalidTopicException);
    }
    Ok(())
}

impl Cluster {
    /// Loads the node's topics and makes their partitions' logs available.
    pub fn open(config: &Config, node: Node, log: Arc<LogStore>) -> Result<Cluster> {
        let meta = log.meta();
        // A lone node formats itself: a data directory from before meta.properties keeps the
        // cluster id it had.
        let legacy_or_new = || -> Result<String> {
            match meta.get(CLUSTER_ID_KEY)? {
                Some(id) => String::from_utf8(id).context("stored cluster id is not UTF-8"),
                None => Ok(identity::random_uuid()),
            }
        };
        let auto_format: Option<&dyn Fn() -> Result<String>> = if config.quorum_voters.is_empty() { Some(&legacy_or_new) } else { None };
        let cluster_id = identity::check_at_start(&config.data_dir, node.id, auto_format)?.cluster_id;
        let settings = Arc::new(broker_config::load(config, &meta, node.id)?);
        let mut topics = IndexMap::new();
        // A cluster node's high watermarks are learned again from leaders and ISRs.
        let high_watermark = if config.quorum_voters.is_empty() { HighWatermark::LogEnd } else { HighWatermark::Caller };
        for (key, value) in meta.scan(TOPIC_PREFIX)? {
            let name = String::from_utf8_lossy(&key[TOPIC_PREFIX.len()..]).to_string();
            let topic = Topic::decode(&name, &value, &settings).with_context(|| format!("topic {name}"))?;
            for &p in &topic.partitions {
                log.load_partition_in(p, high_watermark)?;
            }
            topics.insert(name, Arc::new(topic));
        }
        let next_partition = meta.get(NEXT_PARTITION_KEY)?.map(|v| decode_u32(&v)).unwrap_or(0);
        let legacy_producer_ids = match meta.get(NEXT_PRODUCER_KEY)? {
            Some(v) => i64::from_be_bytes(v.as_slice().try_into().context("bad producer id counter")?),
            None => 0,
        };
        Ok(Cluster {
            node,
            cluster_id,
            settings,
            auto_create_topics: config.auto_create_topics,
            default_replication_factor: config.default_replication_factor,
            meta,
            log,
            topics: RwLock::new(topics),
            admin: tokio::sync::Mutex::new(next_partition),
            quorum: OnceLock::new(),
            published: tokio::sync::watch::Sender::new(0),
            producer_ids: tokio::sync::Mutex::new(0..0),
            legacy_producer_ids,
            inter_broker: broker_client::InterBrokerClient::new(config).map_err(|e| anyhow::anyhow!(e))?,
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The broker settings in effect now (dynamic changes included).
    pub fn broker_settings(&self) -> Arc<Config> {
        self.settings.current()
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Brokers and the controller are read from `controller`'s metadata image from now on,
    /// and admin changes go to the active controller through `client`.
    pub fn attach_quorum(&self, controller: Controller, client: Arc<ControllerClient>) {
        if self.quorum.set(Quorum { controller, client }).is_err() {
            tracing::warn!("a second metadata quorum attached; keeping the first");
        }
    }

    pub fn controller_client(&self) -> Option<Arc<ControllerClient>> {
        self.quorum.get().map(|q| q.client.clone())
    }

    fn client(&self) -> Result<&ControllerClient, Failure> {
        let quorum = self.quorum.get().ok_or_else(|| (ResponseError::NotController, "the controller quorum is not started yet".to_string()))?;
        Ok(&quorum.client)
    }

    /// The metadata image this node applied; empty before the quorum is attached.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.get().map(|q| q.controller.image().borrow().clone()).unwrap_or_default()
    }

    /// Runs `f` on the applied image without taking a share of it: the per-request quota
    /// checks, which must cost next to nothing when no quota is set.
    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        static EMPTY: std::sync::OnceLock<MetadataImage> = std::sync::OnceLock::new();
        match self.quorum.get() {
            Some(q) => f(&q.controller.image().borrow()),
            None => f(EMPTY.get_or_init(MetadataImage::default)),
        }
    }

    /// The replication factor of a topic, as its first partition has it.
    pub fn replication_factor(&self, name: &str) -> i16 {
        let image = self.image();
        image.topic(name).and_then(|t| t.partitions.values().next()).map_or(1, |p| p.replicas.len() as i16)
    }

    /// How this node dials other brokers.
    pub fn inter_broker(&self) -> &broker_client::InterBrokerClient {
        &self.inter_broker
    }

    /// Where this node reaches each broker (replication, markers): its endpoint on the
    /// inter-broker listener, which every broker of a cluster has, as in Kafka.
    pub fn broker_addresses(&self, image: &MetadataImage) -> replication::BrokerAddresses {
        let Some(listener) = self.inter_broker.listener() else { return replication::BrokerAddresses::new() };
        image
            .brokers()
            .filter_map(|b| {
                let r = &b.registration;
                match r.endpoints.iter().find(|e| e.listener == listener) {
                    Some(e) => Some((r.id, format!("{}:{}", e.host, e.port))),
                    None => {
                        tracing::debug!(broker = r.id, "broker {} registered no {listener} listener, this node's inter-broker listener: it cannot be reached", r.id);
                        None
                    }
                }
            })
            .collect()
    }

    /// The brokers clients may use, at their address on `listener` (or their first one): the
    /// unfenced brokers of the metadata image, and this one, which is serving.
    pub fn live_brokers(&self, listener: &str) -> Vec<BrokerAddress> {
        let me = self.node.endpoint(listener);
        let mut brokers = vec![BrokerAddress { id: self.node.id, host: me.host.clone(), port: me.port, rack: self.node.rack.clone() }];
        if let Some(Quorum { controller, .. }) = self.quorum.get() {
            let image = controller.image().borrow().clone();
            for broker in image.brokers().filter(|b| !b.fenced && b.registration.id != self.node.id) {
                let r = &broker.registration;
                let Some(endpoint) = r.endpoints.iter().find(|e| e.listener == listener).or(r.endpoints.first()) else { continue };
                brokers.push(BrokerAddress { id: r.id, host: endpoint.host.clone(), port: endpoint.port, rack: r.rack.clone() });
            }
            brokers.sort_by_key(|b| b.id);
        }
        brokers
    }

    /// The controller id clients are told: the active controller when it is also a live broker
    /// (they send it admin requests), else this node, as Kafka's brokers answer in KRaft mode.
    pub fn controller_id(&self) -> i32 {
        let Some(Quorum { controller, .. }) = self.quorum.get() else { return self.node.id };
        let image = controller.image().borrow().clone();
        controller
            .leader()
            .and_then(|l| i32::try_from(l).ok())
            .filter(|&l| image.broker(l).is_some_and(|b| !b.fenced))
            .unwrap_or(self.node.id)
    }

    /// This node leads the controller quorum (a node without a quorum counts as its own controller).
    /// This node's member of the controller quorum (none before the quorum is joined).
    pub fn controller(&self) -> Option<&Controller> {
        self.quorum.get().map(|q| &q.controller)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("lock").get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().expect("lock").values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().expect("lock").values().cloned().collect()
    }

    /// Checks what this broker can check of a new topic (name, partition count, configs);
    /// returns the partition count and the explicit configs.
    pub fn validate_new_topic(&self, new: &NewTopic) -> Result<(i32, TopicConfigs), Failure> {
        validate_topic_name(&new.name).map_err(|e| (e, format!("invalid topic name {:?}", new.name)))?;
        let partitions = match &new.assignments {
            Some(assignments) => assignments.len() as i32,
            None if new.num_partitions == -1 => self.settings.current().num_partitions,
            None => new.num_partitions,
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err((
                ResponseError::InvalidPartitions,
                format!("partition count must be between 1 and {MAX_PARTITIONS}, got {partitions}"),
            ));
        }
        let configs = TopicConfigs::from_request(&new.configs, self.settings.clone())
            .map_err(|msg| (ResponseError::InvalidConfig, msg))?;
        if self.topic(&new.name).is_some() {
            return Err((ResponseError::TopicAlreadyExists, format!("topic {:?} already exists", new.name)));
        }
        Ok((partitions, configs))
    }

    /// The controller's request for a new topic, and the configs it will have.
    fn create_request(&self, new: &NewTopic, validate_only: bool) -> Result<(CreateTopic, TopicConfigs), Failure> {
        let (partitions, configs) = self.validate_new_topic(new)?;
        let replication_factor = match &new.assignments {
            Some(a) => a.first().map_or(0, Vec::len) as i16,
            None if new.replication_factor == -1 => self.default_replication_factor,
            None => new.replication_factor,
        };
        let explicit = explicit_configs(&configs).into_iter().collect();
        let request = CreateTopic { name: new.name.clone(), id: None, partitions, replication_factor, assignments: new.assignments.clone(), configs: explicit, validate_only };
        Ok((request, configs))
    }

    /// Checks a new topic as creating it would, controller included, without creating it;
    /// returns its partition count, replication factor and configs.
    pub async fn check_new_topic(&self, new: &NewTopic) -> Result<(i32, i16, TopicConfigs), Failure> {
        let (request, configs) = self.create_request(new, true)?;
        let (partitions, replication_factor) = (request.partitions, request.replication_factor);
        self.client()?.create_topic(request).await.map_err(failure)?;
        Ok((partitions, replication_factor, configs))
    }

    /// Creates a topic through the controller; returns it once this node has it.
    pub async fn create_topic(&self, new: &NewTopic) -> Result<Arc<Topic>, Failure> {
        let (request, _) = self.create_request(new, false)?;
        let id = self.client()?.create_topic(request).await.map_err(failure)?;
        self.published(|c| c.topic(&new.name).filter(|t| t.id == id)).await
    }

    /// Waits until the published topics satisfy `check`; REQUEST_TIMED_OUT when they do not in
    /// time (the controller made the change; this node has not caught up).
    async fn published<T>(&self, check: impl Fn(&Self) -> Option<T>) -> Result<T, Failure> {
        let mut published = self.published.subscribe();
        let waited = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            loop {
                if let Some(found) = check(self) {
                    return Some(found);
                }
                if published.changed().await.is_err() {
                    return None;
                }
            }
        });
        match waited.await {
            Ok(Some(found)) => Ok(found),
            _ => Err((ResponseError::RequestTimedOut, "the controller made the change, but this broker has not caught up with it yet".into())),
        }
    }

    fn unknown_topic(name: &str) -> Failure {
        (ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist"))
    }

    /// IncrementalAlterConfigs / AlterConfigs on a topic; takes effect once published.
    pub async fn alter_topic_configs(&self, name: &str, changes: &[ConfigChange], replace_all: bool, validate_only: bool) -> Result<(), Failure> {
        let topic = self.topic(name).ok_or_else(|| Self::unknown_topic(name))?;
        let configs = topic.configs.altered(changes, replace_all).map_err(|m| (ResponseError::InvalidConfig, m))?;
        if validate_only {
            return Ok(());
        }
        let (before, after) = (explicit_configs(&topic.configs), explicit_configs(&configs));
        let mut changes: Vec<(String, Option<String>)> = before.keys().filter(|k| !after.contains_key(*k)).map(|k| (k.clone(), None)).collect();
        changes.extend(after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), Some(v.clone()))));
        if changes.is_empty() {
            return Ok(());
        }
        let request = AlterTopicConfigs { topic: name.to_string(), changes };
        self.client()?.alter_topic_configs(request).await.map_err(failure)?;
        self.published(|c| c.topic(name).filter(|t| explicit_configs(&t.configs) == after)).await?;
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// CreatePartitions: grows a topic to `count` partitions (never shrinks). `assignments`, if
    /// given, holds the replicas of each new partition, checked by the controller as Kafka's.
    pub async fn create_partitions(&self, name: &str, count: i32, assignments: Option<&[Vec<i32>]>, validate_only: bool) -> Result<(), Failure> {
        let topic = self.topic(name).ok_or_else(|| Self::unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err((ResponseError::InvalidPartitions, format!("topic {name:?} has {current} partitions; the new count must be larger, got {count}")));
        }
        if count > MAX_PARTITIONS {
            return Err((ResponseError::InvalidPartitions, format!("at most {MAX_PARTITIONS} partitions per topic")));
        }
        let request = CreatePartitions { topic: name.to_string(), count, assignments: assignments.map(<[_]>::to_vec), validate_only };
        self.client()?.create_partitions(request).await.map_err(failure)?;
        if !validate_only {
            self.published(|c| c.topic(name).filter(|t| t.partitions.len() as i32 >= count)).await?;
        }
        Ok(())
    }

    /// AlterPartitionReassignments: starts, replaces or cancels reassignments on the controller.
    pub async fn alter_reassignments(&self, request: AlterReassignments) -> Result<PartitionResults, Failure> {
        self.client()?.alter_reassignments(request).await.map_err(failure)
    }

    /// The controller quorum as the active controller describes it (DescribeQuorum).
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, Failure> {
        self.client()?.describe_quorum().await.map_err(failure)
    }

    /// ElectLeaders, on the controller.
    pub async fn elect_leaders(&self, request: ElectLeaders) -> Result<PartitionResults, Failure> {
        self.client()?.elect_leaders(request).await.map_err(failure)
    }

    /// CreateAcls, through the controller; returns once this node's image has the ACLs.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), Failure> {
        self.client()?.create_acls(acls.clone()).await.map_err(failure)?;
        self.published(|c| acls.iter().all(|a| c.image().acls().contains(a)).then_some(())).await
    }

    /// DeleteAcls, through the controller: what each filter matched (and removed), once this
    /// node's image no longer has them.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<Vec<AclBinding>>, Failure> {
        let matched = self.client()?.delete_acls(filters).await.map_err(failure)?;
        self.published(|c| matched.iter().flatten().all(|a| !c.image().acls().contains(a)).then_some(())).await?;
        Ok(matched)
    }

    /// Returns the topic, creating it with broker defaults when auto-creation allows it.
    pub async fn topic_or_create(&self, name: &str, allow_create: bool) -> Result<Arc<Topic>, ResponseError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        validate_topic_name(name)?;
        if !(allow_create && self.auto_create_topics) {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let new = NewTopic { name: name.to_string(), num_partitions: -1, replication_factor: -1, assignments: None, configs: vec![] };
        self.topic_or_create_as(&new).await.map_err(|(e, _)| e)
    }

    /// Returns the topic, creating it as `new` says when it does not exist.
    pub async fn topic_or_create_as(&self, new: &NewTopic) -> Result<Arc<Topic>, Failure> {
        if let Some(t) = self.topic(&new.name) {
            return Ok(t);
        }
        match self.create_topic(new).await {
            Ok(t) => Ok(t),
            // Another request created it in between.
            Err((ResponseError::TopicAlreadyExists, _)) => self.published(|c| c.topic(&new.name)).await,
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic through the controller; returns once this node has deleted its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Failure> {
        let topic = self.topic(name).ok_or_else(|| Self::unknown_topic(name))?;
        self.client()?.delete_topic(name.to_string()).await.map_err(failure)?;
        self.published(|c| c.topic(name).is_none_or(|t| t.id != topic.id).then_some(())).await
    }

    /// A fresh producer id for InitProducerId, from this broker's block of ids (a new block
    /// from the controller when it is used up), so ids are never handed out twice.
    pub async fn next_producer_id(&self) -> Result<i64, Failure> {
        let mut ids = self.producer_ids.lock().await;
        if ids.is_empty() {
            let block = self.client()?.allocate_producer_ids(self.node.id, self.legacy_producer_ids).await.map_err(failure)?;
            *ids = block.first..block.first + block.size;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// Local topics the metadata image does not have: topics of a data directory from before
    /// the metadata log, which [`publisher`] registers with this node as their only replica.
    /// `None` once they are all registered (see [`Self::mark_migrated`]).
    pub fn unregistered_topics(&self, image: &MetadataImage) -> Result<Option<Vec<CreateTopic>>> {
        if self.meta.get(MIGRATED_KEY)?.is_some() {
            return Ok(None);
        }
        Ok(Some(self
            .topics()
            .into_iter()
            .filter(|t| image.topic(&t.name).is_none() && image.topic_by_id(t.id).is_none())
            .map(|t| CreateTopic {
                name: t.name.clone(),
                id: Some(t.id),
                partitions: t.partitions.len() as i32,
                replication_factor: 1,
                assignments: Some(vec![vec![self.node.id]; t.partitions.len()]),
                configs: explicit_configs(&t.configs).into_iter().collect(),
                validate_only: false,
            })
            .collect()))
    }

    /// Records that this node's topics are in the metadata log (see [`Self::unregistered_topics`]).
    pub async fn mark_migrated(&self) -> Result<()> {
        self.meta.write(&[(MIGRATED_KEY, Some(b"1".as_slice()))]).await
    }

    /// Makes the local topics what `image` says: creates the logs of new topics and partitions
    /// (every broker keeps a log id for every partition; only replicas write to theirs), takes
    /// config changes, and deletes the topics the image no longer has, each in one atomic write.
    /// Returns the topics deleted, with their partitions' log ids.
    pub async fn publish(&self, image: &MetadataImage) -> Vec<(String, Vec<PartitionId>)> {
        let mut next_partition = self.admin.lock().await;
        let mut removed = Vec::new();
        for topic in self.topics() {
            if image.topic_by_id(topic.id).is_some_and(|t| t.name == topic.name) {
                continue;
            }
            match self.log.delete_partitions(&topic.partitions, &[(&topic_key(&topic.name), None)]).await {
                Ok(()) => {
                    self.topics.write().expect("lock").shift_remove(&topic.name);
                    removed.push((topic.name.clone(), topic.partitions.clone()));
                    tracing::info!(topic = topic.name, "deleted topic");
                }
                Err(e) => tracing::error!(topic = topic.name, "deleting topic: {e:?}; retrying with the next metadata change"),
            }
        }
        for wanted in image.topics() {
            let local = self.topic(&wanted.name);
            let mut partitions = local.as_ref().map(|t| t.partitions.clone()).unwrap_or_default();
            let explicit = local.as_ref().map(|t| explicit_configs(&t.configs)).unwrap_or_default();
            let grow = wanted.partitions.len().saturating_sub(partitions.len()) as u32;
            if local.is_some() && grow == 0 && explicit == wanted.configs {
                continue;
            }
            let Some(next) = next_partition.checked_add(grow) else {
                tracing::error!(topic = wanted.name, "partition log ids exhausted");
                continue;
            };
            partitions.extend(*next_partition..next);
            let configs = TopicConfigs::new(wanted.configs.clone(), self.settings.clone());
            let topic = Topic { name: wanted.name.clone(), id: wanted.id, partitions, configs };
            let written = self.meta.write(&[(&topic_key(&topic.name), Some(&topic.encode())), (NEXT_PARTITION_KEY, Some(&next.to_be_bytes()))]).await;
            if let Err(e) = written {
                tracing::error!(topic = wanted.name, "storing topic: {e:#}; retrying with the next metadata change");
                continue;
            }
            for &p in &topic.partitions[topic.partitions.len() - grow as usize..] {
                self.log.create_partition(p);
            }
            *next_partition = next;
            match &local {
                None => tracing::info!(topic = wanted.name, partitions = topic.partitions.len(), "created topic"),
                Some(_) if grow > 0 => tracing::info!(topic = wanted.name, partitions = topic.partitions.len(), "added partitions"),
                Some(_) => {}
            }
            self.topics.write().expect("lock").insert(topic.name.clone(), Arc::new(topic));
        }
        removed
    }

    /// The publisher has applied an image whole (topics, committed offsets of deleted ones,
    /// partition states): admin requests waiting for their change look again.
    pub fn published_image(&self) {
        self.published.send_modify(|n| *n += 1);
    }

    /// Waits until the publisher has applied an image at least once, so the local topics are
    /// the metadata log's (a deletion a crash cut short is finished); false after `timeout`.
    pub async fn first_published(&self, timeout: Duration) -> bool {
        let mut published = self.published.subscribe();
        tokio::time::timeout(timeout, published.wait_for(|&n| n > 0)).await.is_ok_and(|r| r.is_ok())
    }

    /// Runs retention over every partition of every topic.
    pub async fn apply_retention(&self, now_ms: i64) {
        for topic in self.topics() {
            let (ms, bytes) = (topic.configs.retention_ms(), topic.configs.retention_bytes());
            if ms < 0 && bytes < 0 {
                continue;
            }
            for &p in &topic.partitions {
                if let Err(e) = self.log.apply_retention(p, ms, bytes, now_ms).await {
                    tracing::warn!(topic = %topic.name, "retention failed: {e:?}");
                }
            }
        }
    }

    /// One round of the log cleaner over the partitions of compacted topics; returns how many
    /// it compacted.
    pub async fn clean(&self, now_ms: i64) -> usize {
        let broker = self.settings.current();
        let limits = CleanerLimits {
            io_max_bytes_per_second: broker.cleaner_io_max_bytes_per_second,
            dedupe_buffer_bytes: broker.cleaner_dedupe_buffer_size,
            io_buffer_bytes: broker.cleaner_io_buffer_size,
        };
        let mut cleaned = 0;
        for topic in self.topics() {
            let Some(policy) = topic.configs.compaction() else { continue };
            for (index, &p) in topic.partitions.iter().enumerate() {
                match self.log.clean(p, policy, limits, now_ms).await {
                    Ok(Some(pass)) => {
                        cleaned += 1;
                        tracing::info!(topic = %topic.name, partition = index, ?pass, "compacted");
                    }
                    Ok(None) => {}
                    // Deleted meanwhile.
                    Err(ResponseError::UnknownTopicOrPartition) => {}
                    Err(e) => tracing::warn!(topic = %topic.name, partition = index, "compaction failed: {e:?}"),
                }
            }
        }
        cleaned
    }
}

fn topic_key(name: &str) -> Vec<u8> {
    [TOPIC_PREFIX, name.as_bytes()].concat()
}

fn explicit_configs(configs: &TopicConfigs) -> BTreeMap<String, String> {
    configs.explicit().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// What the controller's refusal means to a client.
fn failure(e: WriteError) -> Failure {
    (e.response_error(), e.to_string())
}

fn decode_u32(bytes: &[u8]) -> u32 {
    bytes.try_into().map(u32::from_be_bytes).unwrap_or(0)
}
