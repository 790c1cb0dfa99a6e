//! The web console on the metrics listener: one page with its script and style, built into the
//! binary, and `GET /api/overview`, a JSON snapshot of this node's view that the page polls:
//! brokers, topics and their partitions, consumer groups with their lag, and the throughput
//! counters (totals, whose rates the page charts).

use serde::Serialize;

use super::Throughput;
use crate::api::Api;
use crate::group::TopicPartition;

pub const PAGE: &str = include_str!("console/index.html");
pub const SCRIPT: &str = include_str!("console/console.js");
pub const STYLE: &str = include_str!("console/console.css");

#[derive(Debug, Serialize)]
pub struct Overview {
    pub cluster_id: String,
    /// The node answering: sizes and offsets are of the partitions it has a replica of.
    pub node_id: i32,
    pub controller_id: i32,
    pub time_ms: i64,
    pub brokers: Vec<Broker>,
    pub topics: Vec<Topic>,
    pub groups: Vec<Group>,
    pub throughput: Throughput,
}

#[derive(Debug, Serialize)]
pub struct Broker {
    pub id: i32,
    /// `LISTENER://host:port`, in `listeners` order.
    pub endpoints: Vec<String>,
    pub rack: Option<String>,
    /// Registered but not allowed to serve (stopped, or not caught up yet).
    pub fenced: bool,
}

#[derive(Debug, Serialize)]
pub struct Topic {
    pub name: String,
    /// Kafka's own topics (group offsets, transaction state).
    pub internal: bool,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Serialize)]
pub struct Partition {
    pub partition: i32,
    /// -1 without one.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The log figures are `None` where this node has no replica.
    pub size_bytes: Option<u64>,
    pub log_start_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub high_watermark: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub members: Vec<Member>,
    pub offsets: Vec<GroupOffset>,
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) of a consumer's assignment; empty for other protocols.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's committed offset in one partition and its lag behind the high watermark.
#[derive(Debug, Serialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// `None` where this node has no replica of the partition to read it from.
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
}

/// What this node knows now.
pub fn overview(api: &Api) -> Overview {
    let mut groups = Vec::new();
    for (group_id, protocol_type, state) in api.groups.list() {
        // A group this node does not coordinate (any more) is described by its coordinator.
        let (Ok(Some(description)), Some(offsets)) = (api.groups.describe(&group_id), group_offsets(api, &group_id)) else { continue };
        let members = description
            .members
            .into_iter()
            .map(|(member_id, _, client_id, client_host, _, assignment)| Member { member_id, client_id, client_host, assignment: crate::group::assigned_partitions(assignment).unwrap_or_default() })
            .collect();
        groups.push(Group { group_id, state: state.name(), protocol_type, members, offsets });
    }
    Overview {
        cluster_id: api.cluster.cluster_id().to_string(),
        node_id: api.cluster.node().id,
        controller_id: api.cluster.controller_id(),
        time_ms: crate::cluster::now_ms(),
        brokers: brokers(api),
        topics: topics(api),
        groups,
        throughput: api.metrics.throughput(),
    }
}

/// The brokers of the metadata image, and this one, which is serving even before it is there.
fn brokers(api: &Api) -> Vec<Broker> {
    let me = api.cluster.node();
    let mut brokers: Vec<Broker> = api
        .cluster
        .image()
        .brokers()
        .map(|b| {
            let r = &b.registration;
            let endpoints = r.endpoints.iter().map(|e| format!("{}://{}:{}", e.listener, e.host, e.port)).collect();
            Broker { id: r.id, endpoints, rack: r.rack.clone(), fenced: b.fenced && r.id != me.id }
        })
        .collect();
    if !brokers.iter().any(|b| b.id == me.id) {
        let endpoints = me.endpoints.iter().map(|e| format!("{}://{}", e.listener, e.host_port())).collect();
        brokers.push(Broker { id: me.id, endpoints, rack: me.rack.clone(), fenced: false });
    }
    brokers.sort_by_key(|b| b.id);
    brokers
}

fn topics(api: &Api) -> Vec<Topic> {
    let mut topics: Vec<Topic> = api
        .cluster
        .topics()
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(index, &id)| {
                    let state = api.replicas.describe(id);
                    let offsets = api.log.offsets(id).ok();
                    Partition {
                        partition: index as i32,
                        leader: state.leader,
                        replicas: state.replicas,
                        isr: state.isr,
                        size_bytes: api.log.size(id).ok(),
                        log_start_offset: offsets.map(|(start, _)| start),
                        log_end_offset: api.log.log_end_offset(id).ok(),
                        high_watermark: offsets.map(|(_, high_watermark)| high_watermark),
                    }
                })
                .collect();
            Topic { name: topic.name.clone(), internal: topic.name == crate::group::OFFSETS_TOPIC || topic.name == crate::txn::TXN_STATE_TOPIC, partitions }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

/// The group's committed offsets and their lag, in partition order; `None` for a group this
/// node does not coordinate. The metrics scrape reads lag from here too.
pub(super) fn group_offsets(api: &Api, group_id: &str) -> Option<Vec<GroupOffset>> {
    let mut offsets: Vec<GroupOffset> = api
        .groups
        .committed(group_id, None)
        .ok()?
        .into_iter()
        .filter_map(|((topic, partition), committed): (TopicPartition, _)| {
            let committed = committed?.offset;
            let id = crate::cluster::partition_id(api.cluster.topic(&topic).as_deref(), partition);
            let high_watermark = id.and_then(|id| api.log.offsets(id)).ok().map(|(_, high_watermark)| high_watermark);
            Some(GroupOffset { topic, partition, committed, high_watermark, lag: high_watermark.map(|h| (h - committed).max(0)) })
        })
        .collect();
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Some(offsets)
}

/// The overview as the page reads it.
pub fn overview_json(api: &Api) -> String {
    serde_json::to_string(&overview(api)).expect("the overview serializes")
}
