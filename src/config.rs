//! Broker configuration under the key names Kafka users already know.
//!
//! Sources, lowest precedence first: defaults, a `server.properties`-style file, `GREGOR_*`
//! environment variables, command-line flags. All of them funnel through [`Config::set`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the broker binds.
    pub listen: SocketAddr,
    /// Host and port put in Metadata answers; `None` means the bound address.
    pub advertised: Option<(String, u16)>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    pub num_partitions: i32,
    pub auto_create_topics: bool,
    /// Largest record batch a producer may send (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest request frame; a bigger size field closes the connection.
    pub socket_request_max_bytes: usize,
    /// Close a connection that sends no complete request for this long.
    pub connections_max_idle_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Requests handled at once across the broker; more wait, each with its frame read.
    pub queued_max_requests: usize,
    /// Default topic retention; -1 keeps data forever.
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// 1 makes every append durable before it is acknowledged (`log.flush.interval.messages`).
    pub flush_messages: i64,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// How long a new group waits for more members before its first rebalance completes.
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Largest metadata string on a committed offset.
    pub offset_metadata_max_bytes: usize,
    /// Memory for RocksDB: all memtables together, and the block cache.
    pub memtable_bytes: usize,
    pub block_cache_bytes: usize,
    /// Where to serve the ZooKeeper protocol (`zookeeper.listener`); `None` serves none.
    pub zookeeper_listener: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".parse().expect("valid literal"),
            advertised: None,
            data_dir: PathBuf::from("./data"),
            node_id: 1,
            num_partitions: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            connections_max_idle_ms: 600_000,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            queued_max_requests: 500,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 300_000,
            flush_messages: i64::MAX,
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offset_metadata_max_bytes: 4096,
            zookeeper_listener: None,
            memtable_bytes: 64 << 20,
            block_cache_bytes: 16 << 20,
        }
    }
}


/// Where a config value comes from (Kafka's ConfigSource codes, as DescribeConfigs reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    StaticBrokerConfig = 4,
    Default = 5,
}

/// Kafka's ConfigType codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One config as DescribeConfigs shows it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub doc: &'static str,
    /// Where the value could come from, most specific first: (name, value, source).
    pub synonyms: Vec<(&'static str, String, ConfigSource)>,
}

impl ConfigEntry {
    fn broker(name: &'static str, value: String, default: String, config_type: ConfigType, doc: &'static str) -> ConfigEntry {
        let source = if value == default { ConfigSource::Default } else { ConfigSource::StaticBrokerConfig };
        ConfigEntry { name, synonyms: vec![(name, value.clone(), source)], value, source, config_type, doc }
    }
}

impl Config {
    /// The broker's settings as DescribeConfigs reports them for the broker resource.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        let d = Config::default();
        let listener = |a: &SocketAddr| format!("PLAINTEXT://{a}");
        let advertised = |c: &Config| c.advertised.as_ref().map(|(h, p)| format!("PLAINTEXT://{h}:{p}")).unwrap_or_default();
        use ConfigType::*;
        vec![
            ConfigEntry::broker("listeners", listener(&self.listen), listener(&d.listen), List, "Address the broker listens on."),
            ConfigEntry::broker("advertised.listeners", advertised(self), advertised(&d), List, "Address given to clients in Metadata; the listen address when empty."),
            ConfigEntry::broker("log.dirs", self.data_dir.display().to_string(), d.data_dir.display().to_string(), String, "Directory holding the RocksDB store."),
            ConfigEntry::broker("node.id", self.node_id.to_string(), d.node_id.to_string(), Int, "This broker's id."),
            ConfigEntry::broker("broker.id", self.node_id.to_string(), d.node_id.to_string(), Int, "Same as node.id."),
            ConfigEntry::broker("num.partitions", self.num_partitions.to_string(), d.num_partitions.to_string(), Int, "Partitions of auto-created topics."),
            ConfigEntry::broker("auto.create.topics.enable", self.auto_create_topics.to_string(), d.auto_create_topics.to_string(), Boolean, "Create unknown topics when a Metadata request allows it."),
            ConfigEntry::broker("message.max.bytes", self.message_max_bytes.to_string(), d.message_max_bytes.to_string(), Int, "Largest record batch accepted."),
            ConfigEntry::broker("socket.request.max.bytes", self.socket_request_max_bytes.to_string(), d.socket_request_max_bytes.to_string(), Int, "Largest request accepted."),
            ConfigEntry::broker("connections.max.idle.ms", self.connections_max_idle_ms.to_string(), d.connections_max_idle_ms.to_string(), Long, "Close a connection that sends no complete request for this long."),
            ConfigEntry::broker("max.connections", self.max_connections.to_string(), d.max_connections.to_string(), Int, "Most client connections the broker accepts."),
            ConfigEntry::broker("max.connections.per.ip", self.max_connections_per_ip.to_string(), d.max_connections_per_ip.to_string(), Int, "Most connections accepted from one address."),
            ConfigEntry::broker("queued.max.requests", self.queued_max_requests.to_string(), d.queued_max_requests.to_string(), Int, "Most requests handled at once; further requests wait before being read. Long polls and rebalance waits do not count."),
            ConfigEntry::broker("log.retention.ms", self.retention_ms.to_string(), d.retention_ms.to_string(), Long, "Delete batches older than this; -1 keeps them."),
            ConfigEntry::broker("log.retention.bytes", self.retention_bytes.to_string(), d.retention_bytes.to_string(), Long, "Largest size of a partition before old batches are deleted; -1 is no limit."),
            ConfigEntry::broker("log.flush.interval.messages", self.flush_messages.to_string(), d.flush_messages.to_string(), Long, "1 syncs every append to disk before acknowledging it (group commit across producers)."),
            ConfigEntry::broker("log.retention.check.interval.ms", self.retention_check_interval_ms.to_string(), d.retention_check_interval_ms.to_string(), Long, "How often retention runs."),
            ConfigEntry::broker("group.initial.rebalance.delay.ms", self.group_initial_rebalance_delay_ms.to_string(), d.group_initial_rebalance_delay_ms.to_string(), Int, "How long a new group waits for more members before its first assignment."),
            ConfigEntry::broker("group.min.session.timeout.ms", self.group_min_session_timeout_ms.to_string(), d.group_min_session_timeout_ms.to_string(), Int, "Shortest consumer session timeout accepted."),
            ConfigEntry::broker("group.max.session.timeout.ms", self.group_max_session_timeout_ms.to_string(), d.group_max_session_timeout_ms.to_string(), Int, "Longest consumer session timeout accepted."),
            ConfigEntry::broker("zookeeper.listener", self.zookeeper_listener.map(|a| a.to_string()).unwrap_or_default(), std::string::String::new(), String, "Where the ZooKeeper-protocol view of topics is served; empty for none."),
            ConfigEntry::broker("rocksdb.memtable.bytes", self.memtable_bytes.to_string(), d.memtable_bytes.to_string(), Long, "Memory for all RocksDB memtables together; writes are flushed to disk when they reach it."),
            ConfigEntry::broker("rocksdb.block.cache.bytes", self.block_cache_bytes.to_string(), d.block_cache_bytes.to_string(), Long, "Memory for RocksDB's cache: index blocks, small batches, and batches read back for fetches."),
            ConfigEntry::broker("offset.metadata.max.bytes", self.offset_metadata_max_bytes.to_string(), d.offset_metadata_max_bytes.to_string(), Int, "Largest metadata string on a committed offset."),
        ]
    }

    /// Applies one Kafka-style key. Unknown keys are reported back as `Ok(false)` so the caller
    /// can warn about them; bad values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let value = value.trim();
        match key {
            "listeners" => self.listen = parse_listener(value)?.to_socket_addr()?,
            "advertised.listeners" => {
                let l = parse_listener(value)?;
                self.advertised = Some((l.host, l.port));
            }
            // Kafka allows a comma-separated list; one data directory is all Gregor uses.
            "log.dirs" | "log.dir" => {
                let first = value.split(',').next().unwrap_or_default().trim();
                if first.is_empty() {
                    bail!("{key} is empty");
                }
                self.data_dir = PathBuf::from(first);
            }
            "node.id" | "broker.id" => self.node_id = parse_num(key, value)?,
            "num.partitions" => {
                self.num_partitions = parse_num(key, value)?;
                if self.num_partitions < 1 {
                    bail!("num.partitions must be at least 1, got {value}");
                }
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "message.max.bytes" => self.message_max_bytes = parse_num(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse_num(key, value)?,
            "connections.max.idle.ms" => self.connections_max_idle_ms = parse_num(key, value)?,
            "max.connections" => self.max_connections = parse_num(key, value)?,
            "max.connections.per.ip" => self.max_connections_per_ip = parse_num(key, value)?,
            "queued.max.requests" => {
                self.queued_max_requests = parse_num(key, value)?;
                if self.queued_max_requests < 1 {
                    bail!("queued.max.requests must be at least 1, got {value}");
                }
            }
            "log.retention.ms" => self.retention_ms = parse_num(key, value)?,
            "log.retention.minutes" => self.retention_ms = parse_num::<i64>(key, value)? * 60_000,
            "log.retention.hours" => self.retention_ms = parse_num::<i64>(key, value)? * 3_600_000,
            "log.retention.bytes" => self.retention_bytes = parse_num(key, value)?,
            "log.flush.interval.messages" => {
                self.flush_messages = parse_num(key, value)?;
                if self.flush_messages < 1 {
                    bail!("log.flush.interval.messages must be at least 1, got {value}");
                }
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = parse_num(key, value)?
            }
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = parse_num(key, value)?,
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = parse_num(key, value)?,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = parse_num(key, value)?,
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = parse_num(key, value)?,
            "rocksdb.memtable.bytes" => self.memtable_bytes = parse_num(key, value)?,
            "rocksdb.block.cache.bytes" => self.block_cache_bytes = parse_num(key, value)?,
            // Empty turns it off, so an environment variable can undo a config file's setting.
            "zookeeper.listener" if value.is_empty() => self.zookeeper_listener = None,
            "zookeeper.listener" => self.zookeeper_listener = Some(parse_listener(value)?.to_socket_addr()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads a `server.properties`-style file: `key=value` lines, `#` or `!` comments.
    /// Returns the keys it did not know.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut unknown = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                bail!("{}:{}: expected key=value, got {line:?}", path.display(), n + 1);
            };
            let key = key.trim();
            if !self
                .set(key, value)
                .with_context(|| format!("{}:{}", path.display(), n + 1))?
            {
                unknown.push(key.to_string());
            }
        }
        Ok(unknown)
    }

    /// The host and port clients are told to connect to.
    pub fn advertised_for(&self, bound: SocketAddr) -> (String, u16) {
        match &self.advertised {
            Some((host, port)) => (host.clone(), *port),
            None => (bound.ip().to_string(), bound.port()),
        }
    }
}

struct Listener {
    host: String,
    port: u16,
}

impl Listener {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        let host = if self.host.is_empty() { "0.0.0.0" } else { &self.host };
        (host, self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve listener host {host:?}"))?
            .next()
            .with_context(|| format!("listener host {host:?} has no address"))
    }
}

/// Accepts `PLAINTEXT://host:port`, `host:port`, and takes the first of a comma-separated list.
fn parse_listener(value: &str) -> Result<Listener> {
    let first = value.split(',').next().unwrap_or_default().trim();
    let addr = match first.split_once("://") {
        Some((proto, rest)) => {
            if !proto.eq_ignore_ascii_case("PLAINTEXT") {
                bail!("listener {first:?}: only PLAINTEXT is supported");
            }
            rest
        }
        None => first,
    };
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("listener {first:?} needs host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = port
        .parse()
        .with_context(|| format!("listener {first:?} has a bad port"))?;
    Ok(Listener { host, port })
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("{key} must be a number, got {value:?}"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("{key} must be true or false, got {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_forms() {
        let mut c = Config::default();
        c.set("listeners", "PLAINTEXT://127.0.0.1:1234").unwrap();
        assert_eq!(c.listen, "127.0.0.1:1234".parse().unwrap());
        c.set("listeners", "127.0.0.1:99").unwrap();
        assert_eq!(c.listen.port(), 99);
        assert!(c.set("listeners", "SSL://127.0.0.1:1").is_err());
        c.set("advertised.listeners", "PLAINTEXT://kafka.local:9093").unwrap();
        assert_eq!(
            c.advertised_for(c.listen),
            ("kafka.local".to_string(), 9093)
        );
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
}
