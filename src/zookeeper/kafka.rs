//! Gregor's metadata as the znodes Kafka 2.x kept in ZooKeeper, and client writes to those
//! znodes turned into topic operations.
//!
//! The view's nodes live in the tree marked `managed`. [`KafkaView::sync`] keeps them equal to
//! what the cluster holds: it runs before every request and on a timer, so topics made or
//! deleted through the Kafka protocol show up (and fire watches) here too. Live brokers, the
//! active controller and each partition's replicas, leader and ISR come from the metadata image,
//! so in a cluster the view shows the cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;

use serde_json::{json, Map, Value};
use super::jute::ErrorCode;
use super::tree::Txn;
use crate::cluster::metadata::MetadataImage;
use crate::cluster::{Cluster, ConfigChange, NewTopic, Topic};
use crate::config::SecurityProtocol;

pub const TOPICS: &str = "/brokers/topics";
pub const TOPIC_CONFIGS: &str = "/config/topics";
pub const DELETE_TOPICS: &str = "/admin/delete_topics";

/// (listener, host, port)
type Endpoint = (String, String, u16);

/// What a path means to the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A plain znode (possibly one of the view's fixed nodes, which are read-only).
    Generic,
    /// `/brokers/topics/<t>`: the partition assignment; creating it creates the topic.
    Topic(&'a str),
    /// Below `/brokers/topics/<t>`: partitions and their state, read-only.
    TopicDetail,
    /// `/config/topics/<t>`: the topic's configs, or configs waiting for the topic's creation.
    TopicConfig(&'a str),
    /// `/admin/delete_topics/<t>`: creating it deletes the topic.
    DeleteMarker(&'a str),
}

pub fn classify(path: &str) -> Kind<'_> {
    let child = |parent: &str| path.strip_prefix(parent).and_then(|rest| rest.strip_prefix('/'));
    if let Some(rest) = child(TOPICS) {
        return if rest.contains('/') { Kind::TopicDetail } else { Kind::Topic(rest) };
    }
    if let Some(rest) = child(TOPIC_CONFIGS) {
        // Nothing lives below a config node, so a deeper path is as read-only as a detail.
        return if rest.contains('/') { Kind::TopicDetail } else { Kind::TopicConfig(rest) };
    }
    match child(DELETE_TOPICS) {
        Some(rest) if !rest.contains('/') => Kind::DeleteMarker(rest),
        _ => Kind::Generic,
    }
}

pub struct KafkaView {
    /// The fixed nodes: the parents Kafka creates, the cluster id and so on.
    fixed: Vec<(String, Vec<u8>)>,
    /// When the view was made: the registration time its broker znodes show.
    started_ms: i64,
    /// The metadata image last rendered; a new one renders everything again.
    image: Option<Arc<MetadataImage>>,
    /// The topics as last rendered; a topic is re-rendered when the cluster's `Arc` changes.
    seen: HashMap<String, Arc<Topic>>,
    /// Set when the tree may no longer match `seen` (a rolled-back transaction).
    stale: bool,
}

impl KafkaView {
    pub fn new(cluster: &Cluster) -> KafkaView {
        let now = crate::api::now_ms();
        let cluster_id = json!({"version": "1", "id": cluster.cluster_id()}).to_string();
        let plain = |p: &str| (p.to_string(), Vec::new());
        let fixed = vec![
            plain("/"),
            plain("/admin"),
            plain(DELETE_TOPICS),
            plain("/brokers"),
            plain("/brokers/ids"),
            plain("/brokers/seqid"),
            plain(TOPICS),
            plain("/cluster"),
            ("/cluster/id".to_string(), cluster_id.into_bytes()),
            plain("/config"),
            plain("/config/brokers"),
            plain("/config/changes"),
            plain("/config/clients"),
            plain(TOPIC_CONFIGS),
            plain("/config/users"),
            ("/controller_epoch".to_string(), b"1".to_vec()),
            plain("/zookeeper"),
            plain("/zookeeper/quota"),
        ];
        KafkaView { fixed, started_ms: now, image: None, seen: HashMap::new(), stale: true }
    }

    /// `/brokers/ids/<id>` of every live broker (as Kafka's ephemeral registrations), and
    /// `/controller`.
    fn render_brokers(&self, cluster: &Cluster) -> Vec<(String, Vec<u8>)> {
        let node = cluster.node();
        let image = cluster.image();
        let mut brokers: Vec<(i32, Vec<Endpoint>)> = vec![(node.id, node.endpoints.iter().map(|e| (e.listener.clone(), e.host.clone(), e.port)).collect())];
        for b in image.brokers().filter(|b| !b.fenced && b.registration.id != node.id) {
            brokers.push((b.registration.id, b.registration.endpoints.iter().map(|e| (e.listener.clone(), e.host.clone(), e.port)).collect()));
        }
        // Other brokers' listener names are taken to map as this node's do (Kafka's inter-broker
        // rule too); a name this node lacks is its protocol's own, else PLAINTEXT.
        let settings = cluster.broker_settings();
        let protocol = |listener: &str| {
            settings.listeners.iter().find(|l| l.name == listener).map(|l| l.protocol).or_else(|| SecurityProtocol::parse(listener)).unwrap_or(SecurityProtocol::Plaintext)
        };
        let mut nodes: Vec<(String, Vec<u8>)> = brokers
            .into_iter()
            .filter(|(_, endpoints)| !endpoints.is_empty())
            .map(|(id, endpoints)| {
                let protocols: Map<String, Value> = endpoints.iter().map(|(l, _, _)| (l.clone(), json!(protocol(l).name()))).collect();
                // As Kafka registers them: host and port are the PLAINTEXT endpoint's, if any.
                let plaintext = endpoints.iter().find(|(l, _, _)| protocol(l) == SecurityProtocol::Plaintext);
                let broker = json!({
                    "listener_security_protocol_map": protocols,
                    "endpoints": endpoints.iter().map(|(l, h, p)| format!("{l}://{h}:{p}")).collect::<Vec<_>>(),
                    "jmx_port": -1,
                    "host": plaintext.map(|(_, h, _)| h),
                    "timestamp": self.started_ms.to_string(),
                    "port": plaintext.map_or(-1, |(_, _, p)| i32::from(*p)),
                    "version": 4,
                });
                (format!("/brokers/ids/{id}"), broker.to_string().into_bytes())
            })
            .collect();
        let controller = json!({"version": 1, "brokerid": cluster.controller_id(), "timestamp": self.started_ms.to_string()});
        nodes.push(("/controller".to_string(), controller.to_string().into_bytes()));
        nodes
    }

    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Brings the view's nodes in line with the cluster. Cheap when nothing changed: topics
    /// are compared by pointer.
    pub fn sync(&mut self, txn: &mut Txn, cluster: &Cluster) {
        if self.stale || !self.image.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &cluster.image())) {
            return self.sync_all(txn, cluster);
        }
        let topics = cluster.topics();
        for topic in &topics {
            if !self.seen.get(&topic.name).is_some_and(|seen| Arc::ptr_eq(seen, topic)) {
                let nodes = render_topic(topic, &cluster.image(), cluster.node().id);
                for (path, data) in &nodes {
                    upsert(txn, path, data);
                }
                // A topic deleted and re-created in between may have had more partitions.
                let topic_path = format!("{TOPICS}/{}", topic.name);
                let wanted: BTreeSet<&str> = nodes.iter().map(|(p, _)| p.as_str()).collect();
                for path in txn.tree().descendants(&topic_path) {
                    if !wanted.contains(path.as_str()) {
                        txn.delete_subtree(&path);
                    }
                }
            }
        }
        let live: HashMap<String, Arc<Topic>> = topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        for name in self.seen.keys().filter(|name| !live.contains_key(*name)) {
            txn.delete_subtree(&format!("{TOPICS}/{name}"));
            let config = format!("{TOPIC_CONFIGS}/{name}");
            if txn.tree().node(&config).is_some_and(|n| n.managed) {
                txn.delete(&config);
            }
        }
        self.seen = live;
    }

    /// Renders everything and removes managed nodes that are no longer wanted (at startup,
    /// where the stored tree may predate topic changes or a new node id).
    fn sync_all(&mut self, txn: &mut Txn, cluster: &Cluster) {
        let topics = cluster.topics();
        let node_id = cluster.node().id;
        let image = cluster.image();
        let mut wanted = BTreeSet::new();
        let rendered = self.fixed.iter().cloned().chain(self.render_brokers(cluster)).chain(topics.iter().flat_map(|t| render_topic(t, &image, node_id)));
        for (path, data) in rendered.collect::<Vec<_>>() {
            upsert(txn, &path, &data);
            wanted.insert(path);
        }
        let mut unwanted: Vec<String> = txn.tree().managed_paths().into_iter().filter(|p| !wanted.contains(p)).collect();
        unwanted.sort();
        for path in unwanted {
            if txn.tree().node(&path).is_some() {
                txn.delete_subtree(&path);
            }
        }
        self.seen = topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.image = Some(image);
        self.stale = false;
    }

    /// Creating `/brokers/topics/<name>`: creates the topic with the configs waiting at
    /// `/config/topics/<name>`, as Kafka 2.x writes them first.
    pub async fn create_topic(&mut self, txn: &mut Txn<'_>, cluster: &Cluster, name: &str, data: &[u8]) -> Result<(), ErrorCode> {
        let partitions = parse_assignment(data, cluster.node().id)?;
        let configs = match txn.tree().node(&format!("{TOPIC_CONFIGS}/{name}")) {
            Some(pending) => parse_configs(&pending.data)?,
            None => Vec::new(),
        };
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: 1,
            assignments: None,
            configs: configs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        };
        cluster.create_topic(&new).await.map_err(|(e, msg)| refused("create topic", name, e, &msg))?;
        self.sync(txn, cluster);
        Ok(())
    }

    /// setData on `/brokers/topics/<name>`: Kafka 2.x adds partitions this way.
    pub async fn set_assignment(&mut self, txn: &mut Txn<'_>, cluster: &Cluster, name: &str, data: &[u8]) -> Result<(), ErrorCode> {
        let partitions = parse_assignment(data, cluster.node().id)?;
        let current = cluster.topic(name).ok_or(ErrorCode::NoNode)?.partitions.len() as i32;
        if partitions < current {
            tracing::info!("refusing to shrink topic {name} from {current} to {partitions} partitions");
            return Err(ErrorCode::BadArguments);
        }
        if partitions > current {
            cluster.create_partitions(name, partitions, None, false).await.map_err(|(e, msg)| refused("add partitions to", name, e, &msg))?;
            self.sync(txn, cluster);
        }
        Ok(())
    }

    /// setData on an existing topic's `/config/topics/<name>`: replaces its configs.
    pub async fn set_configs(&mut self, txn: &mut Txn<'_>, cluster: &Cluster, name: &str, data: &[u8]) -> Result<(), ErrorCode> {
        let changes: Vec<ConfigChange> = parse_configs(data)?.into_iter().map(|(k, v)| ConfigChange::Set(k, v)).collect();
        cluster.alter_topic_configs(name, &changes, true, false).await.map_err(|(e, msg)| refused("alter configs of", name, e, &msg))?;
        self.sync(txn, cluster);
        Ok(())
    }

    /// Creating `/admin/delete_topics/<name>`: Gregor deletes at once, so the marker never
    /// stays.
    pub async fn delete_topic(&mut self, txn: &mut Txn<'_>, cluster: &Cluster, name: &str) -> Result<(), ErrorCode> {
        cluster.delete_topic(name).await.map_err(|(e, msg)| refused("delete topic", name, e, &msg))?;
        self.sync(txn, cluster);
        Ok(())
    }
}

/// Checks configs written to `/config/topics/<name>` before the topic exists.
pub fn check_pending_configs(cluster: &Cluster, name: &str, data: &[u8]) -> Result<(), ErrorCode> {
    let configs = parse_configs(data)?.into_iter().map(|(k, v)| (k, Some(v))).collect();
    let new = NewTopic { name: name.to_string(), num_partitions: -1, replication_factor: -1, assignments: None, configs };
    cluster.validate_new_topic(&new).map(|_| ()).map_err(|(e, msg)| refused("store configs for", name, e, &msg))
}

/// Creates or updates one of the view's nodes; unchanged data keeps its version.
fn upsert(txn: &mut Txn, path: &str, data: &[u8]) {
    match txn.tree().node(path) {
        None => txn.create(path, data.to_vec(), 0, true),
        Some(node) => {
            let (managed, same) = (node.managed, node.data == data);
            if !managed {
                txn.set_managed(path);
            }
            if !same {
                txn.set_data(path, data.to_vec());
            }
        }
    }
}

fn refused(action: &str, name: &str, error: ResponseError, msg: &str) -> ErrorCode {
    tracing::info!("cannot {action} {name}: {error:?} {msg}");
    match error {
        ResponseError::TopicAlreadyExists => ErrorCode::NodeExists,
        ResponseError::UnknownTopicOrPartition => ErrorCode::NoNode,
        ResponseError::KafkaStorageError => ErrorCode::SystemError,
        _ => ErrorCode::BadArguments,
    }
}

/// The topic's znodes, parents first: replicas, leader and ISR as the image has them (this
/// node alone for a topic the image does not hold yet).
fn render_topic(topic: &Topic, image: &MetadataImage, node_id: i32) -> Vec<(String, Vec<u8>)> {
    let base = format!("{TOPICS}/{}", topic.name);
    let count = topic.partitions.len();
    let published = image.topic(&topic.name).filter(|t| t.id == topic.id);
    let state_of = |p: usize| match published.and_then(|t| t.partitions.get(&(p as i32))) {
        Some(r) => (r.replicas.clone(), r.leader, r.leader_epoch, r.isr.clone()),
        None => (vec![node_id], node_id, crate::cluster::replication::INITIAL_LEADER_EPOCH, vec![node_id]),
    };
    let states: Vec<_> = (0..count).map(state_of).collect();
    let assignment: Map<String, Value> = states.iter().enumerate().map(|(p, (replicas, ..))| (p.to_string(), json!(replicas))).collect();
    let configs: Map<String, Value> = topic.configs.explicit().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut nodes = Vec::with_capacity(3 * count + 3);
    nodes.push((base.clone(), json!({"version": 1, "partitions": assignment}).to_string().into_bytes()));
    nodes.push((format!("{base}/partitions"), Vec::new()));
    for (p, (_, leader, leader_epoch, isr)) in states.iter().enumerate() {
        let state = json!({"controller_epoch": 1, "leader": leader, "version": 1, "leader_epoch": leader_epoch, "isr": isr});
        nodes.push((format!("{base}/partitions/{p}"), Vec::new()));
        nodes.push((format!("{base}/partitions/{p}/state"), state.to_string().into_bytes()));
    }
    nodes.push((format!("{TOPIC_CONFIGS}/{}", topic.name), json!({"version": 1, "config": configs}).to_string().into_bytes()));
    nodes
}

fn malformed(what: &str, why: &str) -> ErrorCode {
    tracing::info!("malformed {what}: {why}");
    ErrorCode::BadArguments
}

/// `{"version":1,"partitions":{"0":[<id>],...}}` (later versions add fields, which are
/// ignored): returns the partition count. Every partition must be on this broker alone.
fn parse_assignment(data: &[u8], node_id: i32) -> Result<i32, ErrorCode> {
    let what = "partition assignment";
    let json: Value = serde_json::from_slice(data).map_err(|e| malformed(what, &e.to_string()))?;
    let Some(Value::Object(partitions)) = json.get("partitions") else {
        return Err(malformed(what, "no \"partitions\" object"));
    };
    let mut seen = BTreeSet::new();
    for (key, replicas) in partitions {
        let index: u32 = key.parse().map_err(|_| malformed(what, &format!("partition {key:?} is not a number")))?;
        let Value::Array(replicas) = replicas else {
            return Err(malformed(what, &format!("partition {key}: replicas are not a list")));
        };
        if replicas.len() != 1 || replicas[0].as_i64() != Some(node_id as i64) {
            return Err(malformed(what, &format!("partition {key}: replicas must be [{node_id}], this broker")));
        }
        if !seen.insert(index) {
            return Err(malformed(what, &format!("partition {key} is listed twice")));
        }
    }
    let count = seen.len();
    if count == 0 || seen.last().is_some_and(|&last| last as usize != count - 1) {
        return Err(malformed(what, "partitions must be numbered 0..n"));
    }
    i32::try_from(count).map_err(|_| malformed(what, "too many partitions"))
}

/// `{"version":1,"config":{"key":"value",...}}`.
fn parse_configs(data: &[u8]) -> Result<Vec<(String, String)>, ErrorCode> {
    let what = "topic config";
    let json: Value = serde_json::from_slice(data).map_err(|e| malformed(what, &e.to_string()))?;
    let Some(Value::Object(members)) = json.get("config") else {
        return Err(malformed(what, "no \"config\" object"));
    };
    members
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(malformed(what, &format!("value of {k:?} is not a string"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        assert_eq!(classify("/brokers/topics/t"), Kind::Topic("t"));
        assert_eq!(classify("/brokers/topics/t/partitions"), Kind::TopicDetail);
        assert_eq!(classify("/brokers/topicsx"), Kind::Generic);
        assert_eq!(classify("/brokers/topics"), Kind::Generic);
        assert_eq!(classify("/config/topics/t"), Kind::TopicConfig("t"));
        assert_eq!(classify("/admin/delete_topics/t"), Kind::DeleteMarker("t"));
        assert_eq!(classify("/admin/delete_topics/t/x"), Kind::Generic);
        assert_eq!(classify("/config/changes/config_change_0000000001"), Kind::Generic);
    }

    #[test]
    fn assignments() {
        assert_eq!(parse_assignment(br#"{"version":1,"partitions":{"1":[3],"0":[3]}}"#, 3), Ok(2));
        let v3 = br#"{"version":3,"topic_id":"x","partitions":{"0":[3]},"adding_replicas":{},"removing_replicas":{}}"#;
        assert_eq!(parse_assignment(v3, 3), Ok(1));
        for bad in [
            &br#"{"version":1,"partitions":{"0":[1]}}"#[..],
            br#"{"version":1,"partitions":{"0":[3,3]}}"#,
            br#"{"version":1,"partitions":{"1":[3]}}"#,
            br#"{"version":1,"partitions":{}}"#,
            br#"{"version":1,"partitions":{"x":[3]}}"#,
            br#"{"version":1}"#,
            b"not json",
        ] {
            assert_eq!(parse_assignment(bad, 3), Err(ErrorCode::BadArguments), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn configs() {
        let parsed = parse_configs(br#"{"version":1,"config":{"retention.ms":"1000"}}"#).unwrap();
        assert_eq!(parsed, vec![("retention.ms".to_string(), "1000".to_string())]);
        assert!(parse_configs(br#"{"version":1,"config":{"retention.ms":1000}}"#).is_err());
        assert!(parse_configs(br#"{"version":1}"#).is_err());
    }
}
