//! Per-topic configs: the explicit ones a user set, over the broker defaults.

use std::collections::BTreeMap;

use super::TopicDefaults;

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
}

/// Topic configs Gregor accepts. Those it acts on: retention.ms, retention.bytes,
/// max.message.bytes, message.timestamp.type, cleanup.policy. The rest describe Kafka's segment
/// files and replication, which this store does not have; they are kept so tools that set them
/// work, and reported back as set.
const KNOWN: &[(&str, Kind)] = &[
    ("retention.ms", Kind::Long(-1)),
    ("retention.bytes", Kind::Long(-1)),
    ("max.message.bytes", Kind::Long(0)),
    ("message.timestamp.type", Kind::OneOf(&["CreateTime", "LogAppendTime"])),
    ("cleanup.policy", Kind::ListOf(&["delete", "compact"])),
    ("compression.type", Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])),
    ("segment.bytes", Kind::Long(14)),
    ("segment.ms", Kind::Long(1)),
    ("segment.index.bytes", Kind::Long(4)),
    ("segment.jitter.ms", Kind::Long(0)),
    ("min.insync.replicas", Kind::Long(1)),
    ("unclean.leader.election.enable", Kind::Bool),
    ("min.compaction.lag.ms", Kind::Long(0)),
    ("max.compaction.lag.ms", Kind::Long(1)),
    ("min.cleanable.dirty.ratio", Kind::Ratio),
    ("delete.retention.ms", Kind::Long(0)),
    ("file.delete.delay.ms", Kind::Long(0)),
    ("flush.messages", Kind::Long(1)),
    ("flush.ms", Kind::Long(0)),
    ("index.interval.bytes", Kind::Long(0)),
    ("preallocate", Kind::Bool),
    ("message.timestamp.before.max.ms", Kind::Long(0)),
    ("message.timestamp.after.max.ms", Kind::Long(0)),
    ("message.timestamp.difference.max.ms", Kind::Long(0)),
];

#[derive(Debug, Clone)]
pub struct TopicConfigs {
    explicit: BTreeMap<String, String>,
    defaults: TopicDefaults,
}

fn check(key: &str, value: &str) -> Result<(), String> {
    let Some((_, kind)) = KNOWN.iter().find(|(k, _)| *k == key) else {
        return Err(format!("unknown topic config {key:?}"));
    };
    let ok = match *kind {
        Kind::Long(min) => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
        Kind::OneOf(words) => words.contains(&value.trim()),
        Kind::ListOf(words) => value.split(',').all(|w| words.contains(&w.trim())),
        Kind::Bool => matches!(value.trim(), "true" | "false"),
        Kind::Ratio => value.trim().parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for topic config {key:?}"))
    }
}

impl TopicConfigs {
    pub fn new(explicit: BTreeMap<String, String>, defaults: TopicDefaults) -> TopicConfigs {
        TopicConfigs { explicit, defaults }
    }

    /// Validates configs from a CreateTopics request; a `None` value means "use the default".
    pub fn from_request(pairs: &[(String, Option<String>)], defaults: TopicDefaults) -> Result<TopicConfigs, String> {
        let mut explicit = BTreeMap::new();
        for (key, value) in pairs {
            let Some(value) = value else { continue };
            check(key, value)?;
            explicit.insert(key.clone(), value.trim().to_string());
        }
        Ok(TopicConfigs { explicit, defaults })
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
            self.long("retention.ms", self.defaults.retention_ms)
        } else {
            -1
        }
    }

    pub fn retention_bytes(&self) -> i64 {
        if self.deletes() {
            self.long("retention.bytes", self.defaults.retention_bytes)
        } else {
            -1
        }
    }

    fn deletes(&self) -> bool {
        self.explicit.get("cleanup.policy").is_none_or(|p| p.split(',').any(|w| w.trim() == "delete"))
    }

    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes", self.defaults.max_message_bytes as i64).max(0) as usize
    }

    pub fn log_append_time(&self) -> bool {
        self.explicit.get("message.timestamp.type").is_some_and(|t| t == "LogAppendTime")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults { num_partitions: 1, retention_ms: 1000, retention_bytes: -1, max_message_bytes: 100 }
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
}
