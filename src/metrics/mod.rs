//! Prometheus metrics (`metrics.listener`): counters the request path bumps as it goes, and
//! gauges read from the broker's state when scraped (group lag, log sizes, RocksDB, ISR).
//!
//! Names are Kafka's JMX names as the Prometheus JMX exporter maps them
//! (`kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=t` becomes
//! `kafka_server_brokertopicmetrics_bytesin_total{topic="t"}`); what Kafka has no name for is
//! `gregor_*`. Latencies are in seconds, as Prometheus prefers.

mod console;
mod http;
mod scrape;

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use http::{bind, serve, Source};

/// Request latency buckets, in seconds: from a cached Metadata answer to a long poll.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// One broker's counters. Cheap to bump: an atomic add, after at most one label lookup.
pub struct Metrics {
    registry: Registry,
    bytes_in: IntCounterVec,
    messages_in: IntCounterVec,
    bytes_out: IntCounterVec,
    messages_out: IntCounterVec,
    /// Count and latency per API key, made up front so a lookup takes no lock.
    requests: HashMap<i16, (IntCounter, Histogram)>,
    errors: IntCounterVec,
    /// Throttles given by quotas, by API; a series appears with its API's first throttle.
    throttle_time: prometheus::HistogramVec,
    connections: IntGaugeVec,
    connections_created: IntCounterVec,
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(vec.clone())).expect("unique metric");
    vec
}

impl Metrics {
    /// Counters for the given API keys (those the broker answers).
    pub fn new(api_keys: impl IntoIterator<Item = ApiKey>) -> Metrics {
        let registry = Registry::new();
        let requests_total = counters(&registry, "kafka_network_requestmetrics_requests_total", "Requests answered, by API.", &["request"]);
        let latency = prometheus::HistogramVec::new(
            HistogramOpts::new("kafka_network_requestmetrics_totaltime_seconds", "Time from a request's arrival to its response, by API (Kafka's TotalTimeMs, in seconds).").buckets(LATENCY_BUCKETS.to_vec()),
            &["request"],
        )
        .expect("valid metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        let throttle_time = prometheus::HistogramVec::new(
            HistogramOpts::new("kafka_network_requestmetrics_throttletime_seconds", "Throttle time a quota gave throttled responses, by API (Kafka's ThrottleTimeMs, in seconds, of the throttled ones).").buckets(LATENCY_BUCKETS.to_vec()),
            &["request"],
        )
        .expect("valid metric");
        registry.register(Box::new(throttle_time.clone())).expect("unique metric");
        let requests = api_keys
            .into_iter()
            .map(|key| {
                let name = request_name(key);
                (key as i16, (requests_total.with_label_values(&[&name]), latency.with_label_values(&[&name])))
            })
            .collect();
        let topic = &["topic"];
        Metrics {
            bytes_in: counters(&registry, "kafka_server_brokertopicmetrics_bytesin_total", "Record batch bytes produced to the topic.", topic),
            messages_in: counters(&registry, "kafka_server_brokertopicmetrics_messagesin_total", "Records produced to the topic.", topic),
            bytes_out: counters(&registry, "kafka_server_brokertopicmetrics_bytesout_total", "Record batch bytes fetched from the topic by consumers (not followers).", topic),
            messages_out: counters(&registry, "gregor_brokertopicmetrics_messagesout_total", "Records fetched from the topic by consumers, counted from batch headers.", topic),
            throttle_time,
            errors: counters(&registry, "kafka_network_requestmetrics_errors_total", "Error codes in responses, by API and error (NONE included, as in Kafka).", &["request", "error"]),
            connections: {
                let vec = IntGaugeVec::new(Opts::new("kafka_server_socketservermetrics_connection_count", "Open client connections, by listener."), &["listener"]).expect("valid metric");
                registry.register(Box::new(vec.clone())).expect("unique metric");
                vec
            },
            connections_created: counters(&registry, "kafka_server_socketservermetrics_connection_creation_total", "Client connections accepted, by listener.", &["listener"]),
            requests,
            registry,
        }
    }

    /// A produce of `records` records in `bytes` batch bytes was written.
    pub fn produced(&self, topic: &str, records: u64, bytes: u64) {
        self.messages_in.with_label_values(&[topic]).inc_by(records);
        self.bytes_in.with_label_values(&[topic]).inc_by(bytes);
    }

    /// A consumer's fetch returned `records` records in `bytes` batch bytes.
    pub fn fetched(&self, topic: &str, records: u64, bytes: u64) {
        if bytes > 0 {
            self.messages_out.with_label_values(&[topic]).inc_by(records);
            self.bytes_out.with_label_values(&[topic]).inc_by(bytes);
        }
    }

    /// A request of `api` was answered (or ended its connection) after `elapsed`.
    pub fn request(&self, api: ApiKey, elapsed: Duration) {
        if let Some((count, latency)) = self.requests.get(&(api as i16)) {
            count.inc();
            latency.observe(elapsed.as_secs_f64());
        }
    }

    /// A response of `api` throttled its client for `throttle` (a client quota).
    pub fn throttled(&self, api: ApiKey, throttle: Duration) {
        self.throttle_time.with_label_values(&[&request_name(api)]).observe(throttle.as_secs_f64());
    }

    /// The error codes a response of `api` carries, one per partition, topic or group.
    pub fn errors(&self, api: ApiKey, codes: impl IntoIterator<Item = i16>) {
        // Most responses repeat one code: one label lookup per distinct code.
        let mut seen: Vec<(i16, u64)> = Vec::new();
        for code in codes {
            match seen.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => seen.push((code, 1)),
            }
        }
        if seen.is_empty() {
            return;
        }
        let request = request_name(api);
        for (code, n) in seen {
            self.errors.with_label_values(&[request.as_str(), &error_name(code)]).inc_by(n);
        }
    }

    /// Bytes and records in and out since the start, all topics together.
    pub fn throughput(&self) -> Throughput {
        use prometheus::core::Collector;
        let total = |vec: &IntCounterVec| vec.collect().iter().flat_map(|family| family.get_metric()).map(|metric| metric.get_counter().get_value() as u64).sum();
        Throughput { bytes_in: total(&self.bytes_in), records_in: total(&self.messages_in), bytes_out: total(&self.bytes_out), records_out: total(&self.messages_out) }
    }

    /// Drops the per-topic series of topics that `exists` no longer knows, as Kafka drops a
    /// deleted topic's metrics (checked at scrape time, whichever way the topic went).
    fn forget_deleted_topics(&self, exists: impl Fn(&str) -> bool) {
        use prometheus::core::Collector;
        for vec in [&self.bytes_in, &self.messages_in, &self.bytes_out, &self.messages_out] {
            let gone: Vec<String> = vec
                .collect()
                .iter()
                .flat_map(|family| family.get_metric())
                .flat_map(|metric| metric.get_label())
                .filter(|label| label.name() == "topic" && !exists(label.value()))
                .map(|label| label.value().to_string())
                .collect();
            for topic in gone {
                let _ = vec.remove_label_values(&[&topic]);
            }
        }
    }

    /// Counts an accepted connection on `listener` until the returned value is dropped.
    pub fn connection(&self, listener: &str) -> OpenConnection {
        self.connections_created.with_label_values(&[listener]).inc();
        let gauge = self.connections.with_label_values(&[listener]);
        gauge.inc();
        OpenConnection(gauge)
    }
}

/// Counter totals since the broker started; the console charts their rates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throughput {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

/// Uncounts its connection when dropped.
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Kafka's request names are the API keys' (`Produce`, `ApiVersions`).
fn request_name(api: ApiKey) -> String {
    format!("{api:?}")
}

/// As Kafka's `Errors` enum names the code: `NONE`, `NOT_LEADER_OR_FOLLOWER`.
fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".into();
    }
    let Some(error) = ResponseError::try_from_code(code) else { return format!("UNKNOWN_{code}") };
    let mut name = String::new();
    for (i, c) in format!("{error:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(ResponseError::NotLeaderOrFollower.code()), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(ResponseError::UnknownTopicOrPartition.code()), "UNKNOWN_TOPIC_OR_PARTITION");
    }

    #[test]
    fn counts_show_in_the_exposition() {
        let metrics = Metrics::new([ApiKey::Produce, ApiKey::Fetch]);
        metrics.produced("t", 3, 100);
        metrics.request(ApiKey::Produce, Duration::from_millis(2));
        metrics.errors(ApiKey::Produce, [0, 0, ResponseError::NotLeaderOrFollower.code()]);
        metrics.throttled(ApiKey::Fetch, Duration::from_millis(800));
        let open = metrics.connection("PLAINTEXT");
        let text = prometheus::TextEncoder::new().encode_to_string(&metrics.registry.gather()).unwrap();
        for line in [
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"t\"} 3",
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"t\"} 100",
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"} 1",
            "kafka_network_requestmetrics_requests_total{request=\"Fetch\"} 0",
            "kafka_network_requestmetrics_totaltime_seconds_bucket{request=\"Produce\",le=\"0.0025\"} 1",
            "kafka_network_requestmetrics_errors_total{error=\"NONE\",request=\"Produce\"} 2",
            "kafka_network_requestmetrics_errors_total{error=\"NOT_LEADER_OR_FOLLOWER\",request=\"Produce\"} 1",
            "kafka_network_requestmetrics_throttletime_seconds_bucket{request=\"Fetch\",le=\"1\"} 1",
            "kafka_network_requestmetrics_throttletime_seconds_bucket{request=\"Fetch\",le=\"0.5\"} 0",
            "kafka_server_socketservermetrics_connection_count{listener=\"PLAINTEXT\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        metrics.forget_deleted_topics(|t| t != "t");
        let text = prometheus::TextEncoder::new().encode_to_string(&metrics.registry.gather()).unwrap();
        assert!(!text.contains("topic=\"t\""), "a deleted topic's series go:\n{text}");
        drop(open);
        let text = prometheus::TextEncoder::new().encode_to_string(&metrics.registry.gather()).unwrap();
        assert!(text.contains("kafka_server_socketservermetrics_connection_count{listener=\"PLAINTEXT\"} 0"));
    }
}
