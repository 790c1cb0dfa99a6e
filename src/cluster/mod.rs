//! Topics, partitions, their configs, and this node's identity.
//!
//! Topics persist in the `meta` column family under `t<name>`; counters under `c...`;
//! dynamic broker configs under `b/` (broker_config.rs).
//! Creating or deleting a topic also creates or deletes its partitions' logs.

mod broker_config;
pub mod controller;
pub mod identity;
pub mod lifecycle;
pub mod metadata;
pub mod replication;
mod topic_config;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use uuid::Uuid;

pub use crate::config::ConfigChange;
use crate::config::{BrokerSettings, Config};
use crate::log::{CleanerLimits, LogStore, Meta, PartitionId};
use controller::Controller;
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
        Ok(Topic {
            name: name.to_string(),
            id: id.context("topic record has no id")?,
            partitions,
            configs: TopicConfigs::new(configs, settings.clone()),
        })
    }
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
    /// -1 means the broker default (1).
    pub replication_factor: i16,
    pub configs: Vec<(String, Option<String>)>,
}

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
    /// Serialises changes to topics; held while they are written.
    admin: tokio::sync::Mutex<Counters>,
    /// This node's member of the metadata quorum, once the broker started it.
    quorum: OnceLock<Controller>,
}

/// The next ids to hand out, as stored.
struct Counters {
    partition: u32,
    producer: i64,
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

/// A CreatePartitions replica assignment, checked in the order and with the messages of Kafka's
/// controller: one list per added partition, each non-empty, naming registered brokers (only
/// `node` here) once each.
fn check_assignments(added: i32, assignments: &[Vec<i32>], node: i32) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| Err((ResponseError::InvalidReplicaAssignment, message));
    if assignments.len() as i64 != added as i64 {
        return invalid(format!("Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.", assignments.len()));
    }
    for replicas in assignments {
        if replicas.is_empty() {
            return invalid("The manual partition assignment includes an empty replica list.".into());
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (i, &broker) in sorted.iter().enumerate() {
            if broker != node {
                return invalid(format!("The manual partition assignment includes broker {broker}, but no such broker is registered."));
            }
            if i > 0 && sorted[i - 1] == broker {
                return invalid(format!("The manual partition assignment includes the broker {broker} more than once."));
            }
        }
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
        for (key, value) in meta.scan(TOPIC_PREFIX)? {
            let name = String::from_utf8_lossy(&key[TOPIC_PREFIX.len()..]).to_string();
            let topic = Topic::decode(&name, &value, &settings).with_context(|| format!("topic {name}"))?;
            for &p in &topic.partitions {
                log.load_partition(p)?;
            }
            topics.insert(name, Arc::new(topic));
        }
        let counters = Counters {
            partition: meta.get(NEXT_PARTITION_KEY)?.map(|v| decode_u32(&v)).unwrap_or(0),
            producer: match meta.get(NEXT_PRODUCER_KEY)? {
                Some(v) => i64::from_be_bytes(v.as_slice().try_into().context("bad producer id counter")?),
                None => 0,
            },
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
            admin: tokio::sync::Mutex::new(counters),
            quorum: OnceLock::new(),
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Brokers and the controller are read from `controller`'s metadata image from now on.
    pub fn attach_quorum(&self, controller: Controller) {
        if self.quorum.set(controller).is_err() {
            tracing::warn!("a second metadata quorum attached; keeping the first");
        }
    }

    /// The brokers clients may use, at their address on `listener` (or their first one): the
    /// unfenced brokers of the metadata image, and this one, which is serving.
    pub fn live_brokers(&self, listener: &str) -> Vec<BrokerAddress> {
        let me = self.node.endpoint(listener);
        let mut brokers = vec![BrokerAddress { id: self.node.id, host: me.host.clone(), port: me.port, rack: self.node.rack.clone() }];
        if let Some(controller) = self.quorum.get() {
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
        let Some(controller) = self.quorum.get() else { return self.node.id };
        let image = controller.image().borrow().clone();
        controller
            .leader()
            .and_then(|l| i32::try_from(l).ok())
            .filter(|&l| image.broker(l).is_some_and(|b| !b.fenced))
            .unwrap_or(self.node.id)
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

    /// Checks a topic request without creating anything; returns the partition count.
    pub fn validate_new_topic(&self, new: &NewTopic) -> Result<(i32, TopicConfigs), (ResponseError, String)> {
        validate_topic_name(&new.name).map_err(|e| (e, format!("invalid topic name {:?}", new.name)))?;
        let partitions = if new.num_partitions == -1 { self.settings.current().num_partitions } else { new.num_partitions };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err((
                ResponseError::InvalidPartitions,
                format!("partition count must be between 1 and {MAX_PARTITIONS}, got {partitions}"),
            ));
        }
        let replication_factor = if new.replication_factor == -1 { self.default_replication_factor } else { new.replication_factor };
        // Until topics live in the metadata image, each node keeps its own: one replica.
        if replication_factor != 1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {replication_factor} is larger than the 1 available broker"),
            ));
        }
        let configs = TopicConfigs::from_request(&new.configs, self.settings.clone())
            .map_err(|msg| (ResponseError::InvalidConfig, msg))?;
        if self.topic(&new.name).is_some() {
            return Err((ResponseError::TopicAlreadyExists, format!("topic {:?} already exists", new.name)));
        }
        Ok((partitions, configs))
    }

    /// Creates a topic and its partition logs.
    pub async fn create_topic(&self, new: &NewTopic) -> Result<Arc<Topic>, (ResponseError, String)> {
        let mut counters = self.admin.lock().await;
        let (count, configs) = self.validate_new_topic(new)?;
        let first = counters.partition;
        let next = first.checked_add(count as u32).ok_or_else(|| storage_failure("create", &new.name, anyhow::anyhow!("partition ids exhausted")))?;
        let topic = Topic { name: new.name.clone(), id: Uuid::new_v4(), partitions: (first..next).collect(), configs };
        let key = topic_key(&new.name);
        self.meta
            .write(&[(&key, Some(&topic.encode())), (NEXT_PARTITION_KEY, Some(&next.to_be_bytes()))])
            .await
            .map_err(|e| storage_failure("create", &new.name, e))?;
        counters.partition = next;
        for &p in &topic.partitions {
            self.log.create_partition(p);
        }
        let topic = Arc::new(topic);
        self.topics.write().expect("lock").insert(new.name.clone(), topic.clone());
        tracing::info!(topic = new.name, partitions = count, "created topic");
        Ok(topic)
    }

    /// Replaces a topic's record (configs or partitions changed), keeping its id.
    async fn replace(&self, topic: Topic, changes: &[(&[u8], Option<&[u8]>)]) -> Result<(), (ResponseError, String)> {
        let key = topic_key(&topic.name);
        let record = topic.encode();
        let mut writes = vec![(key.as_slice(), Some(record.as_slice()))];
        writes.extend_from_slice(changes);
        self.meta.write(&writes).await.map_err(|e| storage_failure("store", &topic.name, e))?;
        self.topics.write().expect("lock").insert(topic.name.clone(), Arc::new(topic));
        Ok(())
    }

    fn unknown_topic(name: &str) -> (ResponseError, String) {
        (ResponseError::UnknownTopicOrPartition, format!("topic {name:?} does not exist"))
    }

    /// IncrementalAlterConfigs / AlterConfigs on a topic; takes effect at once.
    pub async fn alter_topic_configs(&self, name: &str, changes: &[ConfigChange], replace_all: bool, validate_only: bool) -> Result<(), (ResponseError, String)> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| Self::unknown_topic(name))?;
        let configs = topic.configs.altered(changes, replace_all).map_err(|m| (ResponseError::InvalidConfig, m))?;
        if validate_only {
            return Ok(());
        }
        self.replace(Topic { name: topic.name.clone(), id: topic.id, partitions: topic.partitions.clone(), configs }, &[]).await?;
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// CreatePartitions: grows a topic to `count` partitions (never shrinks). `assignments`, if
    /// given, holds the replicas of each new partition, checked as Kafka checks them.
    pub async fn create_partitions(&self, name: &str, count: i32, assignments: Option<&[Vec<i32>]>, validate_only: bool) -> Result<(), (ResponseError, String)> {
        let mut counters = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| Self::unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err((ResponseError::InvalidPartitions, format!("topic {name:?} has {current} partitions; the new count must be larger, got {count}")));
        }
        if count > MAX_PARTITIONS {
            return Err((ResponseError::InvalidPartitions, format!("at most {MAX_PARTITIONS} partitions per topic")));
        }
        if let Some(assignments) = assignments {
            check_assignments(count - current, assignments, self.node.id)?;
        }
        if validate_only {
            return Ok(());
        }
        let first = counters.partition;
        let next = first.checked_add((count - current) as u32).ok_or_else(|| storage_failure("grow", name, anyhow::anyhow!("partition ids exhausted")))?;
        let mut partitions = topic.partitions.clone();
        partitions.extend(first..next);
        for p in first..next {
            self.log.create_partition(p);
        }
        let grown = Topic { name: topic.name.clone(), id: topic.id, partitions, configs: topic.configs.clone() };
        self.replace(grown, &[(NEXT_PARTITION_KEY, Some(&next.to_be_bytes()))]).await?;
        counters.partition = next;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
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
        let new = NewTopic { name: name.to_string(), num_partitions: -1, replication_factor: -1, configs: vec![] };
        match self.create_topic(&new).await {
            Ok(t) => Ok(t),
            // Another request created it in between.
            Err((ResponseError::TopicAlreadyExists, _)) => self.topic(name).ok_or(ResponseError::UnknownTopicOrPartition),
            Err((e, _)) => Err(e),
        }
    }

    /// Deletes a topic and all its data, in one atomic write: a crash leaves either the whole
    /// topic or nothing of it.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ResponseError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or(ResponseError::UnknownTopicOrPartition)?;
        self.log.delete_partitions(&topic.partitions, &[(&topic_key(name), None)]).await.inspect_err(|e| {
            tracing::error!("deleting topic {name}: {e:?}");
        })?;
        self.topics.write().expect("lock").shift_remove(name);
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// A fresh producer id for InitProducerId; persisted so ids are never handed out twice.
    pub async fn next_producer_id(&self) -> Result<i64> {
        let mut counters = self.admin.lock().await;
        let id = counters.producer;
        self.meta.write(&[(NEXT_PRODUCER_KEY, Some(&(id + 1).to_be_bytes()))]).await?;
        counters.producer = id + 1;
        Ok(id)
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

fn storage_failure(action: &str, topic: &str, e: anyhow::Error) -> (ResponseError, String) {
    tracing::error!("{action} topic {topic}: {e:#}");
    (ResponseError::KafkaStorageError, format!("could not {action} topic: {e}"))
}

fn decode_u32(bytes: &[u8]) -> u32 {
    bytes.try_into().map(u32::from_be_bytes).unwrap_or(0)
}
