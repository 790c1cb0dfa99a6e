//! Gauges read from the broker's state at scrape time, so the hot paths keep nothing for them.

use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use crate::api::Api;
use crate::cluster::controller::Controller;
use crate::cluster::metadata::{MetadataImage, NO_LEADER};
use crate::log::LogStore;

/// Gauges of one scrape, registered in a registry of their own.
struct Scrape(Registry);

impl Scrape {
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.0.register(Box::new(vec.clone())).expect("unique metric");
        vec
    }

    fn gauge(&self, name: &str, help: &str, value: i64) {
        let gauge = IntGauge::new(name, help).expect("valid metric");
        gauge.set(value);
        self.0.register(Box::new(gauge)).expect("unique metric");
    }
}

/// A broker's whole exposition: the counters, then the state read now.
pub async fn render(api: &Api) -> String {
    api.metrics.forget_deleted_topics(|topic| api.cluster.topic(topic).is_some());
    let mut families = api.metrics.registry.gather();
    let scrape = Scrape(Registry::new());
    partitions(api, &scrape);
    match api.cluster.controller() {
        Some(controller) => quorum(controller, &scrape),
        // Not yet in the quorum: its own controller, as a lone node is.
        None => cluster(true, &api.cluster.image(), &scrape),
    }
    group_lag(api, &scrape);
    families.extend(store(&api.log, scrape).await);
    encode(&families)
}

/// A controller-only node's exposition: the quorum, the cluster as the metadata log has it,
/// and the store.
pub async fn render_controller(controller: &Controller, log: &LogStore) -> String {
    let scrape = Scrape(Registry::new());
    quorum(controller, &scrape);
    encode(&store(log, scrape).await)
}

fn encode(families: &[MetricFamily]) -> String {
    prometheus::TextEncoder::new().encode_to_string(families).expect("text encoding of valid metrics")
}

/// The metadata quorum as this member sees it (Kafka's raft-metrics), and the cluster gauges.
fn quorum(controller: &Controller, scrape: &Scrape) {
    let status = controller.status();
    let active = status.leader == Some(controller.id());
    scrape.gauge("kafka_server_raft_metrics_current_leader", "The active controller's node id, -1 while there is none.", status.leader.map_or(-1, |id| id as i64));
    scrape.gauge("kafka_server_raft_metrics_current_epoch", "The metadata log's leader epoch (the Raft term).", status.term as i64);
    scrape.gauge("kafka_server_raft_metrics_log_end_offset", "The offset after this member's last metadata record.", status.last_log_index.map_or(0, |i| i as i64 + 1));
    scrape.gauge("kafka_server_raft_metrics_high_watermark", "The offset after the last metadata record this member applied.", status.last_applied_index.map_or(0, |i| i as i64 + 1));
    cluster(active, &controller.image().borrow(), scrape);
}

/// The controller gauges Kafka alerts are written on; as in Kafka, only the active controller
/// counts offline partitions and brokers.
fn cluster(active: bool, image: &MetadataImage, scrape: &Scrape) {
    let counted = |n: usize| if active { n as i64 } else { 0 };
    let offline = image.topics().flat_map(|t| t.partitions.values()).filter(|p| p.leader == NO_LEADER).count();
    scrape.gauge("kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader (reported by the active controller).", counted(offline));
    scrape.gauge("kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller, 0 elsewhere.", i64::from(active));
    let fenced = image.brokers().filter(|b| b.fenced).count();
    let registered = image.brokers().count();
    scrape.gauge("kafka_controller_kafkacontroller_activebrokercount", "Registered brokers not fenced (reported by the active controller).", counted(registered - fenced));
    scrape.gauge("kafka_controller_kafkacontroller_fencedbrokercount", "Registered brokers fenced (reported by the active controller).", counted(fenced));
}

/// RocksDB's gauges, added to the scrape's.
async fn store(log: &LogStore, scrape: Scrape) -> Vec<MetricFamily> {
    match log.rocks_stats().await {
        Ok(s) => {
            scrape.gauge("gregor_rocksdb_memtable_bytes", "Bytes in RocksDB's memtables, all column families.", s.memtable_bytes as i64);
            scrape.gauge("gregor_rocksdb_block_cache_usage_bytes", "Bytes in RocksDB's block cache (index blocks and batches read back).", s.block_cache_bytes as i64);
            scrape.gauge("gregor_rocksdb_live_data_size_bytes", "RocksDB's estimate of the live data on disk.", s.live_data_bytes as i64);
            scrape.gauge("gregor_rocksdb_sst_files_size_bytes", "Bytes of RocksDB's SST files.", s.sst_files_bytes as i64);
            scrape.gauge("gregor_rocksdb_blob_files_size_bytes", "Bytes of RocksDB's blob files (where record batches live).", s.blob_files_bytes as i64);
            scrape.gauge("gregor_rocksdb_write_stopped", "1 while RocksDB stops writes (memtables full, too many level-0 files).", i64::from(s.write_stopped));
            scrape.gauge("gregor_rocksdb_delayed_write_rate_bytes", "The rate RocksDB slows writes to, in bytes per second; 0 when it does not.", s.delayed_write_rate as i64);
            let stalls = prometheus::IntCounter::new("gregor_rocksdb_write_stalls_total", "Times RocksDB has slowed or stopped writes since the broker started.").expect("valid metric");
            stalls.inc_by(s.write_stalls);
            scrape.0.register(Box::new(stalls)).expect("unique metric");
        }
        Err(e) => tracing::debug!("metrics: cannot read RocksDB's properties: {e:?}"),
    }
    scrape.0.gather()
}

/// Per-partition log gauges, and under-replicated partitions.
fn partitions(api: &Api, scrape: &Scrape) {
    let end = scrape.gauges("kafka_log_log_logendoffset", "The offset after the partition's last record.", &["topic", "partition"]);
    let size = scrape.gauges("kafka_log_log_size", "Bytes the partition's batches take in the store.", &["topic", "partition"]);
    let me = api.cluster.node().id;
    let mut under_replicated = 0;
    for topic in api.cluster.topics() {
        for (index, &id) in topic.partitions.iter().enumerate() {
            let labels = [topic.name.as_str(), &index.to_string()];
            // Only partitions with a replica here have a log to read.
            if let (Ok(offset), Ok(bytes)) = (api.log.log_end_offset(id), api.log.size(id)) {
                end.with_label_values(&labels).set(offset);
                size.with_label_values(&labels).set(bytes as i64);
            }
            let state = api.replicas.describe(id);
            if state.leader == me && state.isr.len() < state.replicas.len() {
                under_replicated += 1;
            }
        }
    }
    scrape.gauge("kafka_server_replicamanager_underreplicatedpartitions", "Partitions this broker leads whose ISR is smaller than their replica set.", under_replicated);
}

/// Committed offsets and lag behind the high watermark, per group and partition, as
/// kafka_exporter names them.
fn group_lag(api: &Api, scrape: &Scrape) {
    let labels = &["group", "topic", "partition"];
    let committed = scrape.gauges("kafka_consumergroup_current_offset", "The group's committed offset for the partition.", labels);
    let lag = scrape.gauges("kafka_consumergroup_lag", "The partition's high watermark minus the group's committed offset.", labels);
    for (group, _, _) in api.groups.list() {
        let Some(offsets) = super::console::group_offsets(api, &group) else { continue };
        for offset in offsets {
            let labels = [group.as_str(), offset.topic.as_str(), &offset.partition.to_string()];
            committed.with_label_values(&labels).set(offset.committed);
            if let Some(lag_now) = offset.lag {
                lag.with_label_values(&labels).set(lag_now);
            }
        }
    }
}
