//! Broker configuration under the key names Kafka users already know.
//!
//! [`KEYS`] is the one table of settings. A setting's value comes from layers, most specific
//! first: the per-broker and the cluster-wide dynamic layers ([`BrokerSettings`], set with
//! AlterConfigs), the static layer (flags over `GREGOR_*` variables over the `--config` file,
//! merged in that order by whoever builds the [`Config`]), then the table's default. Within a
//! layer a setting's own name wins over its synonyms (`log.retention.ms` over `.minutes` over
//! `.hours`), as in Kafka.

mod keys;
mod listeners;
pub mod quorum;
mod settings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

pub use keys::{find, Alias, Key, Update, KEYS};
pub use listeners::{Listener, SecurityProtocol};
pub use quorum::{Roles, Voter};
use listeners::Endpoint;
pub use settings::{BrokerSettings, Level};

/// Settings by the name they were given under, as one source (the file, a dynamic level) holds them.
pub type Layer = BTreeMap<String, String>;

/// The settings in effect, typed, for the rest of the broker to read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect, in `listeners` order; the first one is the default.
    pub listeners: Vec<Listener>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// `process.roles`.
    pub process_roles: Roles,
    /// `controller.quorum.voters`; empty: this node is the lone voter.
    pub quorum_voters: Vec<Voter>,
    pub controller_listener_names: Vec<String>,
    /// The entry of `listeners` named in `controller.listener.names`, taken out of `listeners`
    /// (which keeps the Kafka API's).
    pub controller_listener: Option<Listener>,
    /// The entry of `listeners` other brokers reach this one on (replication, transaction
    /// markers), from `inter.broker.listener.name` or `security.inter.broker.protocol`; `None`
    /// on a controller-only node.
    pub inter_broker_listener: Option<Listener>,
    /// `sasl.mechanism.inter.broker.protocol`: how brokers log in to each other's SASL listener.
    pub inter_broker_sasl_mechanism: String,
    /// `inter.broker.listener.name` and `security.inter.broker.protocol` as given, until `resolve`
    /// checks them against the listeners.
    inter_broker_listener_name: Option<String>,
    inter_broker_protocol: Option<SecurityProtocol>,
    pub broker_session_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_rack: Option<String>,
    pub default_replication_factor: i16,
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub num_partitions: i32,
    pub auto_create_topics: bool,
    /// `authorizer.class.name` names Kafka's authorizer: requests are checked against ACLs.
    pub authorizer_enabled: bool,
    /// `super.users`: allowed everything when the authorizer is on.
    pub super_users: Vec<crate::security::Principal>,
    pub allow_everyone_if_no_acl_found: bool,
    /// Largest record batch a producer may send (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest request frame; a bigger size field closes the connection.
    pub socket_request_max_bytes: usize,
    /// Close a connection that sends no complete request, or takes no response bytes, for this long.
    pub connections_max_idle_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Requests handled at once across the broker; more wait, each with its frame read.
    pub queued_max_requests: usize,
    /// Most record bytes in one fetch response (`fetch.max.bytes`).
    pub fetch_max_bytes: usize,
    /// Most incremental fetch sessions kept (`max.incremental.fetch.session.cache.slots`).
    pub fetch_session_cache_slots: usize,
    /// Client quota rates: this many sample windows of `quota_window_size_seconds`.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    /// Default topic retention; -1 keeps data forever.
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// Sync every this many records of a partition (`log.flush.interval.messages`).
    pub flush_messages: i64,
    /// Sync within this many milliseconds of a write (`log.flush.interval.ms`).
    pub flush_ms: i64,
    /// Default `cleanup.policy` of topics: `delete`, `compact` or both.
    pub cleanup_policy: String,
    /// The log cleaner (`log.cleaner.*`): compaction of `cleanup.policy=compact` topics.
    pub cleaner_enable: bool,
    pub cleaner_backoff_ms: u64,
    pub cleaner_min_compaction_lag_ms: i64,
    pub cleaner_max_compaction_lag_ms: i64,
    pub cleaner_min_cleanable_ratio: f64,
    pub cleaner_delete_retention_ms: i64,
    pub cleaner_io_max_bytes_per_second: f64,
    pub cleaner_dedupe_buffer_size: u64,
    pub cleaner_io_buffer_size: usize,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// How long after its last batch's timestamp an idle producer's state is forgotten.
    pub producer_id_expiration_ms: i64,
    /// How often that is checked (`producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_check_interval_ms: u64,
    /// Largest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
    pub transaction_max_timeout_ms: i64,
    /// How long an idle transactional id is kept (`transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: i64,
    /// How often timed-out transactions are aborted.
    pub transaction_abort_interval_ms: u64,
    /// How often expired transactional ids are removed.
    pub transaction_expiry_interval_ms: u64,
    /// Produce checks transactional batches with the coordinator (KIP-890 part 1).
    pub transaction_partition_verification: bool,
    /// The finalized `transaction.version` feature level ApiVersions gives clients.
    pub transaction_version: i16,
    /// How long a new group waits for more members before its first rebalance completes.
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Largest metadata string on a committed offset.
    pub offset_metadata_max_bytes: usize,
    /// Most members of one group (`group.max.size`).
    pub group_max_size: usize,
    /// Committed offsets' retention (`offsets.retention.minutes`), and how often it runs.
    pub offsets_retention_minutes: u64,
    pub offsets_retention_check_interval_ms: u64,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    /// `__transaction_state`, where a cluster keeps transactions.
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub offsets_commit_timeout_ms: u64,
    /// Memory for RocksDB: all memtables together, and the block cache.
    pub memtable_bytes: usize,
    pub block_cache_bytes: usize,
    /// Fewest ISR members for acks=all (`min.insync.replicas`, the topic default).
    pub min_insync_replicas: i64,
    /// Followers not caught up for this long leave the ISR (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: i64,
    /// Bytes per second for throttled replicas (Kafka's replication quotas).
    pub leader_replication_throttled_rate: i64,
    pub follower_replication_throttled_rate: i64,
    /// How followers fetch: `replica.fetch.wait.max.ms`, `.max.bytes`, `.response.max.bytes`,
    /// `.backoff.ms`.
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    /// Where to serve the ZooKeeper protocol (`zookeeper.listener`); `None` serves none.
    pub zookeeper_listener: Option<SocketAddr>,
    /// Where to serve Prometheus metrics (`metrics.listener`); `None` serves none.
    pub metrics_listener: Option<SocketAddr>,
    /// The three listener settings as parsed, until `resolve` checks them together.
    bind: Vec<Endpoint>,
    advertise: Vec<Endpoint>,
    protocols: Vec<(String, SecurityProtocol)>,
    /// The TLS and SASL settings (`ssl.*`, `sasl.*`, `listener.name.<name>.*`), read when the
    /// listeners start: see [`crate::security::ListenerSecurity`].
    pub security: Layer,
    /// The static layer these values were resolved from.
    statics: Layer,
}

impl Default for Config {
    /// Every setting at the table's default.
    fn default() -> Self {
        Config::resolve(Layer::new(), &[]).expect("the table's defaults are valid")
    }
}

/// Where a config value comes from (Kafka's ConfigSource codes, as DescribeConfigs reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    Default = 5,
}

/// Kafka's ConfigType codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One value a config takes at one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

impl Synonym {
    pub fn new(name: &str, value: &str, source: ConfigSource) -> Synonym {
        Synonym { name: name.to_string(), value: value.to_string(), source }
    }
}

/// One config as DescribeConfigs shows it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for a setting that has no value (Kafka reports null).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub doc: Option<&'static str>,
    pub read_only: bool,
    /// Where the value could come from, most specific first.
    pub synonyms: Vec<Synonym>,
}

/// One change to a set of configs (IncrementalAlterConfigs' four operations).
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

/// APPEND or SUBTRACT on a comma-separated list value; `None` when the list ends up empty.
pub fn edit_list(current: &str, items: &str, append: bool) -> Option<String> {
    let mut list: Vec<&str> = current.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
    for item in items.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let present = list.contains(&item);
        if append && !present {
            list.push(item);
        } else if !append {
            list.retain(|i| *i != item);
        }
    }
    (!list.is_empty()).then(|| list.join(","))
}

/// Every value `key` has in `layers` (most specific first), then its default: (source, name, value).
fn layered<'a>(key: &'a Key, layers: &[(ConfigSource, &'a Layer)]) -> Vec<(ConfigSource, &'a str, &'a str)> {
    let mut found = Vec::new();
    for (source, layer) in layers {
        for name in key.names() {
            if let Some(value) = layer.get(name) {
                found.push((*source, name, value.as_str()));
            }
        }
    }
    if let Some(default) = key.default {
        found.push((ConfigSource::Default, key.name, default));
    }
    found
}

impl Config {
    /// The settings that `statics` under the dynamic layers (most specific first) give.
    fn resolve(statics: Layer, dynamic: &[&Layer]) -> Result<Config, String> {
        let mut config = Config::unset();
        {
            let sources = [ConfigSource::DynamicBrokerConfig, ConfigSource::DynamicDefaultBrokerConfig];
            let mut layers: Vec<(ConfigSource, &Layer)> = sources.into_iter().zip(dynamic.iter().copied()).collect();
            layers.push((ConfigSource::StaticBrokerConfig, &statics));
            for key in KEYS {
                if let Some(&(_, name, value)) = layered(key, &layers).first() {
                    key.apply(&mut config, &key.normalize(name, value)?)?;
                }
            }
        }
        // Controller listeners speak PLAINTEXT unless the map says otherwise, as in Kafka's
        // own examples, where CONTROLLER is rarely mapped.
        let mut protocols = config.protocols.clone();
        for name in &config.controller_listener_names {
            if !protocols.iter().any(|(n, _)| n == name) {
                protocols.push((name.clone(), SecurityProtocol::Plaintext));
            }
        }
        let all = listeners::combine(&config.bind, &config.advertise, &protocols)?;
        (config.listeners, config.controller_listener) =
            quorum::split_and_check(config.process_roles, config.node_id, &config.quorum_voters, &config.controller_listener_names, all)?;
        if let Some(l) = config.controller_listener.as_ref().filter(|l| l.protocol.sasl()) {
            return Err(format!("controller listener {} uses {}: the controller quorum speaks PLAINTEXT or SSL (with client certificates if asked), not SASL", l.name, l.protocol.name()));
        }
        config.inter_broker_listener = config.find_inter_broker_listener()?;
        // A lone node reaches no other broker; a cluster's brokers log in to each other.
        if let Some(l) = config.inter_broker_listener.as_ref().filter(|l| !config.quorum_voters.is_empty() && l.protocol.sasl()) {
            crate::security::sasl::inter_broker_mechanism(&config.inter_broker_sasl_mechanism).map_err(|e| format!("inter-broker listener {}: {e}", l.name))?;
        }
        config.security = statics.iter().filter(|(k, _)| crate::security::is_security_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        config.statics = statics;
        Ok(config)
    }

    /// The listener brokers reach each other on: the one `inter.broker.listener.name` names, or
    /// the one named after `security.inter.broker.protocol`, as in Kafka; with neither, the
    /// listener called PLAINTEXT (Kafka's default), else the first.
    fn find_inter_broker_listener(&self) -> Result<Option<Listener>, String> {
        if !self.process_roles.broker {
            return Ok(None);
        }
        let (key, name) = match (&self.inter_broker_listener_name, self.inter_broker_protocol) {
            (Some(_), Some(_)) => return Err("set only one of inter.broker.listener.name and security.inter.broker.protocol".into()),
            (Some(name), None) => ("inter.broker.listener.name", name.clone()),
            (None, Some(protocol)) => ("security.inter.broker.protocol", protocol.name().to_string()),
            (None, None) => return Ok(self.listeners.iter().find(|l| l.name == "PLAINTEXT").or(self.listeners.first()).cloned()),
        };
        match self.listeners.iter().find(|l| l.name == name) {
            Some(l) => Ok(Some(l.clone())),
            None => Err(format!("{key} names listener {name}, which is not in listeners (or is the controller's): every broker must have it, since brokers reach each other there")),
        }
    }

    /// Placeholders only: `resolve` sets every field from the table.
    fn unset() -> Config {
        Config {
            listeners: Vec::new(),
            data_dir: PathBuf::new(),
            node_id: 0,
            process_roles: Roles { broker: true, controller: true },
            quorum_voters: Vec::new(),
            controller_listener_names: Vec::new(),
            controller_listener: None,
            inter_broker_listener: None,
            inter_broker_sasl_mechanism: String::new(),
            inter_broker_listener_name: None,
            inter_broker_protocol: None,
            broker_session_timeout_ms: 0,
            broker_heartbeat_interval_ms: 0,
            broker_rack: None,
            default_replication_factor: 0,
            auto_leader_rebalance: false,
            leader_imbalance_check_interval_seconds: 0,
            num_partitions: 0,
            auto_create_topics: false,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            message_max_bytes: 0,
            socket_request_max_bytes: 0,
            connections_max_idle_ms: 0,
            max_connections: 0,
            max_connections_per_ip: 0,
            queued_max_requests: 0,
            fetch_max_bytes: 0,
            fetch_session_cache_slots: 0,
            quota_window_num: 0,
            quota_window_size_seconds: 0,
            retention_ms: 0,
            retention_bytes: 0,
            flush_messages: 0,
            flush_ms: 0,
            cleanup_policy: String::new(),
            cleaner_enable: false,
            cleaner_backoff_ms: 0,
            cleaner_min_compaction_lag_ms: 0,
            cleaner_max_compaction_lag_ms: 0,
            cleaner_min_cleanable_ratio: 0.0,
            cleaner_delete_retention_ms: 0,
            cleaner_io_max_bytes_per_second: 0.0,
            cleaner_dedupe_buffer_size: 0,
            cleaner_io_buffer_size: 0,
            retention_check_interval_ms: 0,
            producer_id_expiration_ms: 0,
            producer_id_expiration_check_interval_ms: 0,
            transaction_max_timeout_ms: 0,
            transactional_id_expiration_ms: 0,
            transaction_abort_interval_ms: 0,
            transaction_expiry_interval_ms: 0,
            transaction_partition_verification: false,
            transaction_version: 0,
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 0,
            group_max_session_timeout_ms: 0,
            offset_metadata_max_bytes: 0,
            group_max_size: 0,
            offsets_retention_minutes: 0,
            offsets_retention_check_interval_ms: 0,
            offsets_topic_num_partitions: 0,
            offsets_topic_replication_factor: 0,
            transaction_state_log_num_partitions: 0,
            transaction_state_log_replication_factor: 0,
            transaction_state_log_min_isr: 0,
            offsets_commit_timeout_ms: 0,
            memtable_bytes: 0,
            block_cache_bytes: 0,
            min_insync_replicas: 0,
            replica_lag_time_max_ms: 0,
            leader_replication_throttled_rate: 0,
            follower_replication_throttled_rate: 0,
            replica_fetch_wait_max_ms: 0,
            replica_fetch_max_bytes: 0,
            replica_fetch_response_max_bytes: 0,
            replica_fetch_backoff_ms: 0,
            zookeeper_listener: None,
            metrics_listener: None,
            bind: Vec::new(),
            advertise: Vec::new(),
            protocols: Vec::new(),
            security: Layer::new(),
            statics: Layer::new(),
        }
    }

    /// Sets static settings, later pairs over earlier ones and over what was set before.
    /// Returns the names it does not know; a bad value is an error naming its key.
    pub fn set_all<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<String>> {
        let mut statics = self.statics.clone();
        let mut unknown = Vec::new();
        for (name, value) in pairs {
            match keys::find(name) {
                Some(key) => {
                    key.normalize(name, value).map_err(|e| anyhow!(e))?;
                    statics.insert(name.to_string(), value.trim().to_string());
                }
                None if crate::security::is_security_key(name) => {
                    statics.insert(name.to_string(), value.trim().to_string());
                }
                None => unknown.push(name.to_string()),
            }
        }
        *self = Config::resolve(statics, &[]).map_err(|e| anyhow!(e))?;
        Ok(unknown)
    }

    /// Applies one Kafka-style key. Unknown keys are reported back as `Ok(false)` so the caller
    /// can warn about them; bad values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        Ok(self.set_all([(key, value)])?.is_empty())
    }

    /// Reads a `server.properties`-style file: `key=value` lines, `#` or `!` comments.
    /// Returns the keys it did not know.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<String>> {
        let pairs = read_file(path)?;
        self.set_all(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).with_context(|| path.display().to_string())
    }
}

/// The `key=value` pairs of a `server.properties`-style file (`#` or `!` comments), each known
/// key's value checked on its own; the settings are checked together when they are set (with
/// any flags over them, so a file may name a listener that only a flag defines).
pub fn read_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once(['=', ':'])
            .with_context(|| format!("{}:{}: expected key=value, got {line:?}", path.display(), n + 1))?;
        let key = key.trim();
        if let Some(known) = keys::find(key) {
            known.normalize(key, value).map_err(|e| anyhow!("{}:{}: {e}", path.display(), n + 1))?;
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// README's configuration table, generated from [`KEYS`] (`gregor --print-config-table`).
pub fn markdown_table() -> String {
    let mut table = String::from("| key | flag | default | dynamic | meaning |\n|---|---|---|---|---|\n");
    for key in KEYS {
        let names = match key.synonyms {
            [] => format!("`{}`", key.name),
            aliases => format!("`{}` ({})", key.name, aliases.iter().map(|a| format!("`{}`", a.name)).collect::<Vec<_>>().join(", ")),
        };
        let default = match (key.default, key.default_note) {
            (Some(value), Some(note)) => format!("`{value}` ({note})"),
            (Some(value), None) => format!("`{value}`"),
            (None, note) => note.unwrap_or("none").to_string(),
        };
        let dynamic = match (key.update, key.restart) {
            (Update::ReadOnly, _) => "no".to_string(),
            (update, Some(_)) => format!("no (Kafka: {})", update.describe()),
            (update, None) => update.describe().to_string(),
        };
        table.push_str(&format!("| {names} | `--{}` | {default} | {dynamic} | {} |\n", key.flag(), key.doc.replace('|', "\\|")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_forms() {
        let mut c = Config::default();
        c.set("listeners", "PLAINTEXT://127.0.0.1:1234").unwrap();
        assert_eq!((c.listeners[0].bind_host(), c.listeners[0].port), ("127.0.0.1", 1234));
        c.set("listeners", "127.0.0.1:99").unwrap();
        assert_eq!(c.listeners[0].port, 99);
        assert!(c.set("listeners", "TLS://127.0.0.1:1").is_err());
        c.set("advertised.listeners", "PLAINTEXT://kafka.local:9093").unwrap();
        assert_eq!(c.listeners[0].advertised_for("127.0.0.1:99".parse().unwrap()), ("kafka.local".to_string(), 9093));
    }

    #[test]
    fn file_with_unknown_keys_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# comment\nbroker.id=7\nlog.dirs=/tmp/x,/tmp/y\nzookeeper.connect=localhost:2181\nlog.retention.hours=2\nrocksdb.memtable.bytes=8388608\n",
        )
        .unwrap();
        let mut c = Config::default();
        let unknown = c.load_file(&path).unwrap();
        assert_eq!(unknown, vec!["zookeeper.connect".to_string()]);
        assert_eq!(c.node_id, 7);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.retention_ms, 7_200_000);
        assert_eq!(c.memtable_bytes, 8 << 20);
    }

    #[test]
    fn bad_values_are_errors() {
        let mut c = Config::default();
        assert!(c.set("num.partitions", "0").is_err());
        assert!(c.set("auto.create.topics.enable", "yes").is_err());
        assert!(c.set("message.max.bytes", "lots").is_err());
    }

    #[test]
    fn a_key_wins_over_its_synonyms_whatever_the_order() {
        let mut c = Config::default();
        c.set_all([("log.retention.ms", "5000"), ("log.retention.hours", "1")]).unwrap();
        assert_eq!(c.retention_ms, 5000);
        c.set_all([("node.id", "3"), ("broker.id", "4")]).unwrap();
        assert_eq!(c.node_id, 3);
        c.set("log.retention.minutes", "-1").unwrap();
        assert_eq!(c.retention_ms, 5000);
        let mut c = Config::default();
        c.set("log.retention.minutes", "-1").unwrap();
        assert_eq!(c.retention_ms, -1, "a negative coarse time is unlimited, as in Kafka");
    }

    #[test]
    fn listeners_checked_together_whatever_the_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(&path, "listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT\n").unwrap();
        let mut c = Config::default();
        c.load_file(&path).unwrap();
        assert_eq!(c.listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["PLAINTEXT", "INTERNAL"]);
        std::fs::write(&path, "listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0\n").unwrap();
        let err = Config::default().load_file(&path).unwrap_err();
        assert!(format!("{err:#}").contains("INTERNAL has no security protocol"), "{err:#}");
    }

    fn cluster_node(pairs: &[(&str, &str)]) -> Result<Config> {
        let mut c = Config::default();
        let base = [("controller.quorum.voters", "1@127.0.0.1:9093"), ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT")];
        c.set_all(base.into_iter().chain(pairs.iter().copied()))?;
        Ok(c)
    }

    #[test]
    fn the_inter_broker_listener_is_named_as_in_kafka() {
        let listeners = ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0,CONTROLLER://127.0.0.1:9093");
        let name = |c: Config| c.inter_broker_listener.unwrap().name;
        assert_eq!(name(cluster_node(&[listeners]).unwrap()), "PLAINTEXT", "Kafka's default: security.inter.broker.protocol=PLAINTEXT");
        assert_eq!(name(cluster_node(&[listeners, ("security.inter.broker.protocol", "SSL")]).unwrap()), "SSL");
        let internal = [listeners, ("inter.broker.listener.name", "internal"), ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512")];
        assert_eq!(name(cluster_node(&internal).unwrap()), "INTERNAL");
        // Without PLAINTEXT, the first listener, as Gregor did before the setting.
        assert_eq!(name(cluster_node(&[("listeners", "SSL://127.0.0.1:0,CONTROLLER://127.0.0.1:9093")]).unwrap()), "SSL");
        let refused = |pairs: &[(&str, &str)]| format!("{:#}", cluster_node(pairs).unwrap_err());
        assert!(refused(&[listeners, ("inter.broker.listener.name", "OTHER")]).contains("names listener OTHER, which is not in listeners"));
        assert!(refused(&[listeners, ("inter.broker.listener.name", "CONTROLLER")]).contains("not in listeners"));
        assert!(refused(&[listeners, ("inter.broker.listener.name", "SSL"), ("security.inter.broker.protocol", "SSL")]).contains("only one of"));
        assert!(refused(&[listeners, ("security.inter.broker.protocol", "SASL_PLAINTEXT")]).contains("not in listeners"));
        assert!(refused(&[listeners, ("inter.broker.listener.name", "INTERNAL")]).contains("GSSAPI"), "Kafka's default mechanism is refused");
        assert!(refused(&[listeners, ("inter.broker.listener.name", "INTERNAL"), ("sasl.mechanism.inter.broker.protocol", "OAUTHBEARER")]).contains("PLAIN, SCRAM-SHA-256"));
        assert!(Config::default().set("security.inter.broker.protocol", "TLS").is_err());
        let controller = |protocol: &str| cluster_node(&[listeners, ("listener.security.protocol.map", &format!("PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SASL_SSL,CONTROLLER:{protocol}"))]);
        assert_eq!(controller("SSL").unwrap().controller_listener.unwrap().protocol, SecurityProtocol::Ssl);
        assert!(format!("{:#}", controller("SASL_SSL").unwrap_err()).contains("PLAINTEXT or SSL"));
        // A lone node reaches no other broker: its SASL listener needs no inter-broker mechanism.
        let mut lone = Config::default();
        lone.set_all([("listeners", "SASL_SSL://127.0.0.1:0")]).unwrap();
        assert_eq!(lone.inter_broker_listener.unwrap().name, "SASL_SSL");
    }

    #[test]
    fn every_key_has_a_valid_default_flag_and_env() {
        let mut flags: Vec<String> = KEYS.iter().map(|k| k.flag()).collect();
        flags.sort();
        flags.dedup();
        assert_eq!(flags.len(), KEYS.len(), "flags are unique");
        for key in KEYS {
            assert!(key.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'), "{}", key.name);
            if let Some(default) = key.default {
                assert_eq!(key.normalize(key.name, default).as_deref(), Ok(default), "{}", key.name);
            }
        }
        assert_eq!(find("log.retention.hours").unwrap().env(), "GREGOR_LOG_RETENTION_MS");
    }

    #[test]
    fn readme_configuration_table_is_the_generated_one() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("| key | flag |").expect("README has the configuration table");
        let end = readme[start..].find("\n\n").map_or(readme.len(), |e| start + e + 1);
        assert!(
            readme[start..end] == markdown_table(),
            "README's configuration table is out of date: replace it with the output of `gregor --print-config-table`"
        );
    }
}
