//! The `gregor` command: parse flags, start the broker, wait for Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gregor::{Broker, Config};

/// A Kafka-compatible broker that keeps its logs in RocksDB.
///
/// Settings use Kafka's names. Precedence: flag, then GREGOR_* environment variable, then the
/// --config file, then the default.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A server.properties-style file (key=value lines)
    #[arg(long, env = "GREGOR_CONFIG")]
    config: Option<PathBuf>,
    /// listeners: address to listen on, e.g. PLAINTEXT://127.0.0.1:9092 [default: 127.0.0.1:9092]
    #[arg(long, env = "GREGOR_LISTENERS")]
    listeners: Option<String>,
    /// advertised.listeners: address clients are told to connect to [default: the listen address]
    #[arg(long, env = "GREGOR_ADVERTISED_LISTENERS")]
    advertised_listeners: Option<String>,
    /// log.dirs: data directory [default: ./data]
    #[arg(long, env = "GREGOR_LOG_DIRS")]
    log_dirs: Option<String>,
    /// node.id (also broker.id) [default: 1]
    #[arg(long, env = "GREGOR_NODE_ID")]
    node_id: Option<String>,
    /// num.partitions: partitions of auto-created topics [default: 1]
    #[arg(long, env = "GREGOR_NUM_PARTITIONS")]
    num_partitions: Option<String>,
    /// auto.create.topics.enable [default: true]
    #[arg(long, env = "GREGOR_AUTO_CREATE_TOPICS_ENABLE")]
    auto_create_topics_enable: Option<String>,
    /// message.max.bytes: largest record batch [default: 1048588]
    #[arg(long, env = "GREGOR_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<String>,
    /// socket.request.max.bytes: largest request [default: 104857600]
    #[arg(long, env = "GREGOR_SOCKET_REQUEST_MAX_BYTES")]
    socket_request_max_bytes: Option<String>,
    /// connections.max.idle.ms: close connections with no complete request for this long [default: 600000]
    #[arg(long, env = "GREGOR_CONNECTIONS_MAX_IDLE_MS")]
    connections_max_idle_ms: Option<String>,
    /// max.connections [default: 2147483647]
    #[arg(long, env = "GREGOR_MAX_CONNECTIONS")]
    max_connections: Option<String>,
    /// max.connections.per.ip [default: 2147483647]
    #[arg(long, env = "GREGOR_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<String>,
    /// queued.max.requests: most requests handled at once; long polls and rebalance waits do not count [default: 500]
    #[arg(long, env = "GREGOR_QUEUED_MAX_REQUESTS")]
    queued_max_requests: Option<String>,
    /// log.retention.ms, -1 for no limit [default: 604800000]
    #[arg(long, env = "GREGOR_LOG_RETENTION_MS")]
    log_retention_ms: Option<String>,
    /// log.retention.bytes per partition, -1 for no limit [default: -1]
    #[arg(long, env = "GREGOR_LOG_RETENTION_BYTES")]
    log_retention_bytes: Option<String>,
    /// log.flush.interval.messages: 1 syncs every append to disk before acknowledging it [default: never]
    #[arg(long, env = "GREGOR_LOG_FLUSH_INTERVAL_MESSAGES")]
    log_flush_interval_messages: Option<String>,
    /// log.retention.check.interval.ms [default: 300000]
    #[arg(long, env = "GREGOR_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<String>,
    /// group.initial.rebalance.delay.ms: wait for more members before a new group's first rebalance [default: 0]
    #[arg(long, env = "GREGOR_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<String>,
    /// group.min.session.timeout.ms [default: 6000]
    #[arg(long, env = "GREGOR_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<String>,
    /// group.max.session.timeout.ms [default: 1800000]
    #[arg(long, env = "GREGOR_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<String>,
    /// zookeeper.listener: also serve the ZooKeeper protocol here (e.g. 127.0.0.1:2181), for tools that manage Kafka 2.x through ZooKeeper [default: off]
    #[arg(long, env = "GREGOR_ZOOKEEPER_LISTENER")]
    zookeeper_listener: Option<String>,
    /// rocksdb.memtable.bytes: memory for all memtables together [default: 67108864]
    #[arg(long, env = "GREGOR_ROCKSDB_MEMTABLE_BYTES")]
    rocksdb_memtable_bytes: Option<String>,
    /// rocksdb.block.cache.bytes: memory for the block cache [default: 16777216]
    #[arg(long, env = "GREGOR_ROCKSDB_BLOCK_CACHE_BYTES")]
    rocksdb_block_cache_bytes: Option<String>,
}

impl Cli {
    fn settings(&self) -> [(&'static str, &Option<String>); 22] {
        [
            ("listeners", &self.listeners),
            ("advertised.listeners", &self.advertised_listeners),
            ("log.dirs", &self.log_dirs),
            ("node.id", &self.node_id),
            ("num.partitions", &self.num_partitions),
            ("auto.create.topics.enable", &self.auto_create_topics_enable),
            ("message.max.bytes", &self.message_max_bytes),
            ("socket.request.max.bytes", &self.socket_request_max_bytes),
            ("connections.max.idle.ms", &self.connections_max_idle_ms),
            ("max.connections", &self.max_connections),
            ("max.connections.per.ip", &self.max_connections_per_ip),
            ("queued.max.requests", &self.queued_max_requests),
            ("log.retention.ms", &self.log_retention_ms),
            ("log.retention.bytes", &self.log_retention_bytes),
            ("log.flush.interval.messages", &self.log_flush_interval_messages),
            ("log.retention.check.interval.ms", &self.log_retention_check_interval_ms),
            ("group.initial.rebalance.delay.ms", &self.group_initial_rebalance_delay_ms),
            ("group.min.session.timeout.ms", &self.group_min_session_timeout_ms),
            ("group.max.session.timeout.ms", &self.group_max_session_timeout_ms),
            ("zookeeper.listener", &self.zookeeper_listener),
            ("rocksdb.memtable.bytes", &self.rocksdb_memtable_bytes),
            ("rocksdb.block.cache.bytes", &self.rocksdb_block_cache_bytes),
        ]
    }

    fn to_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(path) = &self.config {
            for key in config.load_file(path)? {
                tracing::warn!("{}: ignoring unknown key {key:?}", path.display());
            }
        }
        for (key, value) in self.settings() {
            if let Some(value) = value {
                config.set(key, value).map_err(|e| anyhow::anyhow!("--{}: {e}", key.replace('.', "-")))?;
            }
        }
        Ok(config)
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Every connection is a file descriptor: lift the soft limit to the hard one, as Kafka's
/// packaging does, so thousands of clients can connect.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open-files limit: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    raise_open_files_limit();
    let started = match cli.to_config() {
        Ok(config) => Broker::start(config).await,
        Err(e) => Err(e),
    };
    let broker = match started {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    broker.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
