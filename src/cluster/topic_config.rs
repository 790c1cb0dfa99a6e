//! Per-topic configs: the explicit ones a user set, over the broker defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{edit_list, BrokerSettings, ConfigChange, ConfigEntry, ConfigSource, ConfigType, Synonym};
use crate::log::{Compaction, FlushPolicy};

fn config_type(kind: Kind) -> ConfigType {
    match kind {
        Kind::Long(_) => ConfigType::Long,
        Kind::OneOf(_) => ConfigType::String,
        Kind::ListOf(_) => ConfigType::List,
        Kind::Bool => ConfigType::Boolean,
        Kind::Ratio => ConfigType::Double,
        Kind::Replicas => ConfigType::List,
    }
}

/// How a config value is checked.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number at least this large.
    Long(i64),
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these words.
    ListOf(&'static [&'static str]),
    Bool,
    /// A fraction from 0 to 1.
    Ratio,
    /// `*`, or a comma-separated list of `partition:broker` pairs (Kafka's throttled replicas).
    Replicas,
}

/// A topic config Gregor accepts: how it is checked, its default (a fixed value, or the
/// broker setting named as its synonym, whose value comes from the broker's key table and
/// dynamic configs), and its documentation.
struct Def {
    name: &'static str,
    kind: Kind,
    /// `None`: the default comes from the broker config `synonym`.
    default: Option<&'static str>,
    synonym: Option<&'static str>,
    doc: &'static str,
}

const fn def(name: &'static str, kind: Kind, default: Option<&'static str>, synonym: Option<&'static str>, doc: &'static str) -> Def {
    Def { name, kind, default, synonym, doc }
}

const MAX: Option<&str> = Some("9223372036854775807");

/// Topic configs Gregor accepts. Those it acts on: retention, max.message.bytes,
/// message.timestamp.type, cleanup.policy with the compaction settings, flush.messages,
/// flush.ms and min.insync.replicas. The rest describe Kafka's segment files and unclean
/// elections, which this broker does not have; they are kept so tools that set them work, and
/// reported back as set.
const KNOWN: &[Def] = &[
    def("retention.ms", Kind::Long(-1), None, Some("log.retention.ms"), "Delete batches older than this; -1 keeps them."),
    def("retention.bytes", Kind::Long(-1), None, Some("log.retention.bytes"), "Delete the oldest batches while a partition is larger than this; -1 is no limit."),
    def("max.message.bytes", Kind::Long(0), None, Some("message.max.bytes"), "Largest record batch accepted."),
    def("message.timestamp.type", Kind::OneOf(&["CreateTime", "LogAppendTime"]), Some("CreateTime"), None, "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."),
    def("cleanup.policy", Kind::ListOf(&["delete", "compact"]), None, Some("log.cleanup.policy"), "delete: retention removes old batches. compact: the log cleaner keeps the latest record of each key (records need keys). compact,delete: both."),
    def("compression.type", Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]), Some("producer"), None, "Batches are stored as the producer compressed them."),
    def("segment.bytes", Kind::Long(14), Some("1073741824"), None, "Kafka segment size; no effect on RocksDB storage."),
    def("segment.ms", Kind::Long(1), Some("604800000"), None, "Kafka segment roll time; no effect on RocksDB storage."),
    def("segment.index.bytes", Kind::Long(4), Some("10485760"), None, "Kafka index size; no effect on RocksDB storage."),
    def("segment.jitter.ms", Kind::Long(0), Some("0"), None, "Kafka segment roll jitter; no effect on RocksDB storage."),
    def("min.insync.replicas", Kind::Long(1), None, Some("min.insync.replicas"), "Fewest ISR members for an acks=all produce (NOT_ENOUGH_REPLICAS with fewer)."),
    def("unclean.leader.election.enable", Kind::Bool, Some("false"), None, "Gregor elects no out-of-sync replica leader."),
    def("min.compaction.lag.ms", Kind::Long(0), None, Some("log.cleaner.min.compaction.lag.ms"), "Records younger than this are never compacted."),
    def("max.compaction.lag.ms", Kind::Long(1), None, Some("log.cleaner.max.compaction.lag.ms"), "A record stays uncompacted at most this long, whatever the dirty ratio."),
    def("min.cleanable.dirty.ratio", Kind::Ratio, None, Some("log.cleaner.min.cleanable.ratio"), "Compact once this fraction of the cleanable bytes is not yet compacted."),
    def("delete.retention.ms", Kind::Long(0), None, Some("log.cleaner.delete.retention.ms"), "How long a tombstone (a null value) stays readable before compaction removes it."),
    def("file.delete.delay.ms", Kind::Long(0), Some("60000"), None, "Kafka file deletion delay; no effect on RocksDB storage."),
    def("flush.messages", Kind::Long(1), None, Some("log.flush.interval.messages"), "Sync a partition's data to disk every this many records; the append that reaches the count is acknowledged after the sync (at 1, every append, and consumers see it only then; concurrent producers share one sync)."),
    def("flush.ms", Kind::Long(0), None, Some("log.flush.interval.ms"), "Sync data to disk at most this many milliseconds after it is written, in the background."),
    def("index.interval.bytes", Kind::Long(0), Some("4096"), None, "Kafka index density; no effect on RocksDB storage."),
    def("preallocate", Kind::Bool, Some("false"), None, "Kafka segment preallocation; no effect on RocksDB storage."),
    def("message.timestamp.before.max.ms", Kind::Long(0), MAX, None, "Accepted timestamp skew into the past; not checked."),
    def("message.timestamp.after.max.ms", Kind::Long(0), MAX, None, "Accepted timestamp skew into the future; not checked."),
    def("leader.replication.throttled.replicas", Kind::Replicas, Some(""), None, "Replicas (partition:broker pairs, or * for all) whose fetches from this topic's leaders count against the leader's leader.replication.throttled.rate while they are out of the ISR (as kafka-reassign-partitions --throttle sets it)."),
    def("follower.replication.throttled.replicas", Kind::Replicas, Some(""), None, "Replicas (partition:broker pairs, or * for all) that fetch this topic within their broker's follower.replication.throttled.rate while they are out of the ISR."),
    def("message.timestamp.difference.max.ms", Kind::Long(0), MAX, None, "Accepted timestamp skew; not checked."),
];

#[derive(Debug, Clone)]
pub struct TopicConfigs {
    explicit: BTreeMap<String, String>,
    /// Shared, not copied: a dynamic change of a broker default applies to the topic at once.
    broker: Arc<BrokerSettings>,
}

fn check_known(key: &str) -> Result<Kind, String> {
    KNOWN.iter().find(|d| d.name == key).map(|d| d.kind).ok_or_else(|| format!("unknown topic config {key:?}"))
}

fn check(key: &str, value: &str) -> Result<(), String> {
    let kind = check_known(key)?;
    let ok = match kind {
        Kind::Long(min) => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
        Kind::OneOf(words) => words.contains(&value.trim()),
        Kind::ListOf(words) => value.split(',').all(|w| words.contains(&w.trim())),
        Kind::Bool => matches!(value.trim(), "true" | "false"),
        Kind::Ratio => value.trim().parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
        Kind::Replicas => replicas_listed(value).is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for topic config {key:?}"))
    }
}

impl TopicConfigs {
    pub fn new(explicit: BTreeMap<String, String>, broker: Arc<BrokerSettings>) -> TopicConfigs {
        TopicConfigs { explicit, broker }
    }

    /// Validates configs from a CreateTopics request; a `None` value means "use the default".
    pub fn from_request(pairs: &[(String, Option<String>)], broker: Arc<BrokerSettings>) -> Result<TopicConfigs, String> {
        let mut explicit = BTreeMap::new();
        for (key, value) in pairs {
            let Some(value) = value else { continue };
            check(key, value)?;
            explicit.insert(key.clone(), value.trim().to_string());
        }
        Ok(TopicConfigs { explicit, broker })
    }

    /// Applies changes to the explicit configs, validating each value. With `replace_all`
    /// (AlterConfigs, a ZooKeeper config write) the result holds only what `changes` sets.
    pub fn altered(&self, changes: &[ConfigChange], replace_all: bool) -> Result<TopicConfigs, String> {
        let mut explicit = if replace_all { BTreeMap::new() } else { self.explicit.clone() };
        for change in changes {
            match change {
                ConfigChange::Set(key, value) => {
                    check(key, value)?;
                    explicit.insert(key.clone(), value.trim().to_string());
                }
                ConfigChange::Delete(key) => {
                    check_known(key)?;
                    explicit.remove(key);
                }
                ConfigChange::Append(key, value) | ConfigChange::Subtract(key, value) => {
                    let Ok(Kind::ListOf(_) | Kind::Replicas) = check_known(key) else {
                        return Err(format!("{key:?} is not a list config; APPEND and SUBTRACT apply only to lists"));
                    };
                    // Kafka appends to (or subtracts from) the value in effect, default included.
                    let current = explicit.get(key).cloned().unwrap_or_else(|| self.default_value(key));
                    match edit_list(&current, value, matches!(change, ConfigChange::Append(..))) {
                        Some(list) => {
                            check(key, &list)?;
                            explicit.insert(key.clone(), list);
                        }
                        None => {
                            explicit.remove(key);
                        }
                    }
                }
            }
        }
        Ok(TopicConfigs { explicit, broker: self.broker.clone() })
    }

    /// The value a config has when the topic does not set it.
    fn default_value(&self, key: &str) -> String {
        let def = KNOWN.iter().find(|d| d.name == key);
        match def.and_then(|d| d.synonym) {
            Some(broker_key) => self.broker.value(broker_key).unwrap_or_default(),
            None => def.and_then(|d| d.default).unwrap_or_default().to_string(),
        }
    }

    /// Every topic config with its value and where it comes from (DescribeConfigs).
    pub fn describe(&self) -> Vec<ConfigEntry> {
        KNOWN
            .iter()
            .map(|d| {
                let mut synonyms = Vec::new();
                if let Some(v) = self.explicit.get(d.name) {
                    synonyms.push(Synonym::new(d.name, v, ConfigSource::TopicConfig));
                }
                match d.synonym {
                    Some(broker_key) => synonyms.extend(self.broker.synonyms(broker_key)),
                    None => synonyms.push(Synonym::new(d.name, d.default.unwrap_or_default(), ConfigSource::Default)),
                }
                let (value, source) = match synonyms.first() {
                    Some(s) if s.source == ConfigSource::TopicConfig => (s.value.clone(), s.source),
                    first => (self.default_value(d.name), first.map_or(ConfigSource::Default, |s| s.source)),
                };
                ConfigEntry {
                    name: d.name.to_string(),
                    value: Some(value),
                    source,
                    config_type: config_type(d.kind),
                    doc: Some(d.doc),
                    read_only: false,
                    synonyms,
                }
            })
            .collect()
    }

    /// The configs a user set on this topic.
    pub fn explicit(&self) -> impl Iterator<Item = (&String, &String)> {
        self.explicit.iter()
    }

    fn long(&self, key: &str, default: i64) -> i64 {
        self.explicit.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// -1 when time retention is off, including for compact-only topics.
    pub fn retention_ms(&self) -> i64 {
        if self.deletes() {
            self.long("retention.ms", self.broker.current().retention_ms)
        } else {
            -1
        }
    }

    pub fn retention_bytes(&self) -> i64 {
        if self.deletes() {
            self.long("retention.bytes", self.broker.current().retention_bytes)
        } else {
            -1
        }
    }

    /// The value in effect: the topic's own, or the broker default.
    fn value(&self, key: &str) -> String {
        self.explicit.get(key).cloned().unwrap_or_else(|| self.default_value(key))
    }

    fn policy_has(&self, word: &str) -> bool {
        self.value("cleanup.policy").split(',').any(|w| w.trim() == word)
    }

    fn deletes(&self) -> bool {
        self.policy_has("delete")
    }

    /// How the cleaner compacts this topic; `None` unless cleanup.policy includes compact.
    pub fn compaction(&self) -> Option<Compaction> {
        let long = |key| self.value(key).parse().unwrap_or(i64::MAX);
        self.policy_has("compact").then(|| Compaction {
            min_lag_ms: long("min.compaction.lag.ms"),
            max_lag_ms: long("max.compaction.lag.ms"),
            min_dirty_ratio: self.value("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            delete_retention_ms: long("delete.retention.ms"),
        })
    }

    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes", self.broker.current().message_max_bytes as i64).max(0) as usize
    }

    /// When appends must reach the disk (`flush.messages`, `flush.ms`).
    pub fn flush_policy(&self) -> FlushPolicy {
        let broker = self.broker.current();
        FlushPolicy { messages: self.long("flush.messages", broker.flush_messages), ms: self.long("flush.ms", broker.flush_ms) }
    }

    /// Fewest ISR members for an acks=all produce.
    pub fn min_insync_replicas(&self) -> usize {
        self.long("min.insync.replicas", self.broker.current().min_insync_replicas).max(1) as usize
    }

    pub fn log_append_time(&self) -> bool {
        self.explicit.get("message.timestamp.type").is_some_and(|t| t == "LogAppendTime")
    }

    /// Whether `leader.replication.throttled.replicas` lists broker `broker`'s replica of `partition`.
    pub fn leader_throttled(&self, partition: i32, broker: i32) -> bool {
        self.throttled("leader.replication.throttled.replicas", partition, broker)
    }

    /// Whether `follower.replication.throttled.replicas` lists broker `broker`'s replica of `partition`.
    pub fn follower_throttled(&self, partition: i32, broker: i32) -> bool {
        self.throttled("follower.replication.throttled.replicas", partition, broker)
    }

    fn throttled(&self, key: &str, partition: i32, broker: i32) -> bool {
        self.explicit.get(key).and_then(|v| replicas_listed(v)).is_some_and(|listed| listed.is_none_or(|pairs| pairs.contains(&(partition, broker))))
    }
}

/// A throttled-replicas value: `Some(None)` for `*` (every replica), `Some(Some(pairs))` for a
/// list of `partition:broker` pairs (empty for ""), `None` when it is neither.
fn replicas_listed(value: &str) -> Option<Option<Vec<(i32, i32)>>> {
    let value = value.trim();
    if value == "*" {
        return Some(None);
    }
    if value.is_empty() {
        return Some(Some(vec![]));
    }
    let pair = |p: &str| {
        let (partition, broker) = p.trim().split_once(':')?;
        Some((partition.trim().parse().ok()?, broker.trim().parse().ok()?))
    };
    value.split(',').map(pair).collect::<Option<Vec<_>>>().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Arc<BrokerSettings> {
        let mut config = crate::config::Config::default();
        config.set_all([("log.retention.ms", "1000"), ("message.max.bytes", "100")]).unwrap();
        Arc::new(BrokerSettings::new(&config, Default::default(), Default::default()))
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        items.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect()
    }

    #[test]
    fn explicit_values_override_defaults() {
        let c = TopicConfigs::from_request(&pairs(&[("retention.ms", "5"), ("max.message.bytes", "7")]), defaults()).unwrap();
        assert_eq!(c.retention_ms(), 5);
        assert_eq!(c.max_message_bytes(), 7);
        assert_eq!(c.retention_bytes(), -1);
        let compact = TopicConfigs::from_request(&pairs(&[("cleanup.policy", "compact")]), defaults()).unwrap();
        assert_eq!(compact.retention_ms(), -1);
    }

    #[test]
    fn unknown_and_invalid_configs_are_rejected() {
        assert!(TopicConfigs::from_request(&pairs(&[("no.such", "1")]), defaults()).is_err());
        assert!(TopicConfigs::from_request(&pairs(&[("retention.ms", "-5")]), defaults()).is_err());
        assert!(TopicConfigs::from_request(&pairs(&[("message.timestamp.type", "Now")]), defaults()).is_err());
        assert!(TopicConfigs::from_request(&pairs(&[("min.cleanable.dirty.ratio", "0.5")]), defaults()).is_ok());
    }

    #[test]
    fn throttled_replicas_are_a_list_of_pairs_or_every_one() {
        let c = TopicConfigs::from_request(&pairs(&[("leader.replication.throttled.replicas", "0:2, 1:3"), ("follower.replication.throttled.replicas", "*")]), defaults()).unwrap();
        assert!(c.leader_throttled(0, 2) && c.leader_throttled(1, 3));
        assert!(!c.leader_throttled(0, 3) && !c.leader_throttled(2, 2));
        assert!(c.follower_throttled(7, 9));
        let none = TopicConfigs::from_request(&pairs(&[]), defaults()).unwrap();
        assert!(!none.leader_throttled(0, 1) && !none.follower_throttled(0, 1));
        for bad in ["0", "0:x", "0:1,", "**"] {
            assert!(TopicConfigs::from_request(&pairs(&[("leader.replication.throttled.replicas", bad)]), defaults()).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_defaults_come_from_the_broker_table() {
        for d in KNOWN {
            if let Some(broker_key) = d.synonym {
                assert!(crate::config::find(broker_key).is_some(), "{} falls back to {broker_key}, which the broker table must have", d.name);
            }
        }
        let c = TopicConfigs::from_request(&[], defaults()).unwrap();
        let retention = c.describe().into_iter().find(|e| e.name == "retention.ms").unwrap();
        assert_eq!((retention.value.as_deref(), retention.source), (Some("1000"), ConfigSource::StaticBrokerConfig));
        assert_eq!(retention.synonyms.len(), 2, "the static log.retention.ms, then its default");
    }
}
