//! Gauges read from the broker's state at scrape time, so the hot paths keep nothing for them.

use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use crate::api::Api;
use crate::cluster::metadata::NO_LEADER;

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

/// The whole exposition: the counters, then the state read now.
pub async fn render(api: &Api) -> String {
    api.metrics.forget_deleted_topics(|topic| api.cluster.topic(topic).is_some());
    let mut families = api.metrics.registry.gather();
    families.extend(state(api).await);
    prometheus::TextEncoder::new().encode_to_string(&families).expect("text encoding of valid metrics")
}

async fn state(api: &Api) -> Vec<MetricFamily> {
    let scrape = Scrape(Registry::new());
    partitions(api, &scrape);
    group_lag(api, &scrape);
    match api.log.rocks_stats().await {
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

/// Per-partition log gauges, and the ISR and controller gauges Kafka alerts are written on.
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
    let active = api.cluster.is_active_controller();
    // As in Kafka, only the active controller reports offline partitions.
    let offline = if active { api.cluster.image().topics().flat_map(|t| t.partitions.values()).filter(|p| p.leader == NO_LEADER).count() as i64 } else { 0 };
    scrape.gauge("kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader (reported by the active controller).", offline);
    scrape.gauge("kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller, 0 elsewhere.", i64::from(active));
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
