//! The one table of broker settings. The command-line flags and `GREGOR_*` variables, the
//! `server.properties` parser, DescribeConfigs and AlterConfigs on the broker, and README's
//! configuration table are all derived from [`KEYS`]; a new setting is one row here plus the
//! `Config` field it fills.

use super::{listeners, quorum, Config, ConfigType};
use crate::security::authorizer::AUTHORIZER_CLASSES;
use crate::security::Principal;

/// Whether a setting may change while the broker runs, in Kafka's classification
/// (`DynamicBrokerConfig.AllDynamicConfigs` and its per-broker subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Set by the file, the environment or a flag; DescribeConfigs reports it read-only.
    ReadOnly,
    /// Dynamic for one broker (resource name = node id) or as the cluster-wide default (empty name).
    ClusterWide,
    /// Dynamic for one broker only.
    PerBroker,
}

impl Update {
    /// As Kafka's documentation names the update mode.
    pub fn describe(self) -> &'static str {
        match self {
            Update::ReadOnly => "read-only",
            Update::ClusterWide => "cluster-wide",
            Update::PerBroker => "per-broker",
        }
    }
}

/// Another name for a setting, and the factor that turns its values into the setting's unit.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    pub name: &'static str,
    pub factor: i64,
}

/// One broker setting.
pub struct Key {
    /// Kafka's name; also the flag (`--log-retention-ms`) and variable (`GREGOR_LOG_RETENTION_MS`).
    pub name: &'static str,
    /// Older or coarser names, in Kafka's precedence after `name` (set in the file only).
    pub synonyms: &'static [Alias],
    pub config_type: ConfigType,
    /// Smallest accepted number, for INT and LONG settings.
    pub min: Option<i64>,
    /// `None`: unset unless configured (DescribeConfigs reports a null value).
    pub default: Option<&'static str>,
    /// What the default means, for README when the raw value says little.
    pub default_note: Option<&'static str>,
    pub update: Update,
    /// Why Gregor needs a restart for a setting Kafka changes at run time; such changes are
    /// refused rather than accepted and ignored.
    pub restart: Option<&'static str>,
    pub doc: &'static str,
    /// Stores a value, already checked against `config_type` and `min`, in its `Config` field.
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

impl Key {
    const fn new(name: &'static str, config_type: ConfigType, default: Option<&'static str>, doc: &'static str, apply: fn(&mut Config, &str) -> Result<(), String>) -> Key {
        Key { name, synonyms: &[], config_type, min: None, default, default_note: None, update: Update::ReadOnly, restart: None, doc, apply }
    }

    const fn min(mut self, min: i64) -> Key {
        self.min = Some(min);
        self
    }

    const fn synonyms(mut self, synonyms: &'static [Alias]) -> Key {
        self.synonyms = synonyms;
        self
    }

    const fn note(mut self, note: &'static str) -> Key {
        self.default_note = Some(note);
        self
    }

    const fn dynamic(mut self, update: Update) -> Key {
        self.update = update;
        self
    }

    const fn restart(mut self, why: &'static str) -> Key {
        self.restart = Some(why);
        self
    }

    /// Every name of the setting, in precedence order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.synonyms.iter().map(|s| s.name))
    }

    pub fn flag(&self) -> String {
        self.name.replace('.', "-")
    }

    pub fn env(&self) -> String {
        format!("GREGOR_{}", self.name.replace('.', "_").to_ascii_uppercase())
    }

    /// Gregor applies run-time changes of this setting.
    pub fn is_live(&self) -> bool {
        self.update != Update::ReadOnly && self.restart.is_none()
    }

    /// Checks `value` given under `name` (this key or a synonym) and returns it in this key's unit.
    pub fn normalize(&self, name: &str, value: &str) -> Result<String, String> {
        let value = value.trim();
        let bad = |why: String| format!("invalid value {value:?} for {name}: {why}");
        let factor = self.synonyms.iter().find(|s| s.name == name).map_or(1, |s| s.factor);
        match self.config_type {
            ConfigType::Int | ConfigType::Long => {
                let (low, high) = if self.config_type == ConfigType::Int && factor == 1 { (i32::MIN as i64, i32::MAX as i64) } else { (i64::MIN, i64::MAX) };
                let n: i64 = value.parse().ok().filter(|n| (low..=high).contains(n)).ok_or_else(|| bad("not a whole number in range".into()))?;
                // Kafka reads a negative time in coarser units as "unlimited" (-1).
                let n = if factor == 1 { n } else if n < 0 { -1 } else { n.checked_mul(factor).ok_or_else(|| bad("too large".into()))? };
                match self.min {
                    Some(min) if n < min => Err(bad(format!("must be at least {min}"))),
                    _ => Ok(n.to_string()),
                }
            }
            ConfigType::Boolean => match value.to_ascii_lowercase().as_str() {
                b @ ("true" | "false") => Ok(b.to_string()),
                _ => Err(bad("must be true or false".into())),
            },
            _ => Ok(value.to_string()),
        }
    }

    /// Stores a value (already normalized) in `config`.
    pub(super) fn apply(&self, config: &mut Config, value: &str) -> Result<(), String> {
        (self.apply)(config, value).map_err(|why| format!("invalid value {value:?} for {}: {why}", self.name))
    }
}

/// The setting called `name`, by its own name or a synonym.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.names().any(|n| n == name))
}

/// A cleanup policy: `delete`, `compact`, or both, comma-separated.
pub fn cleanup_policy(value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split(',').map(str::trim).collect();
    if words.is_empty() || !words.iter().all(|w| matches!(*w, "delete" | "compact")) {
        return Err("must be delete, compact or compact,delete".into());
    }
    Ok(words.join(","))
}

fn ratio(value: &str) -> Result<f64, String> {
    value.trim().parse().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| "must be a number from 0 to 1".into())
}

/// Writes a parsed value into one `Config` field; `normalize` has checked it already.
macro_rules! field {
    ($field:ident) => {
        |c: &mut Config, v: &str| {
            c.$field = v.parse().map_err(|_| "not a valid number".to_string())?;
            Ok(())
        }
    };
}

const REBIND: &str = "Gregor cannot rebind or re-advertise a listener while it runs";

/// Every broker setting, in README order.
pub const KEYS: &[Key] = &[
    Key::new("listeners", ConfigType::String, Some("PLAINTEXT://127.0.0.1:9092"),
        "Comma-separated NAME://host:port addresses to bind, one per listener; each name must have a security protocol in listener.security.protocol.map. An empty host binds all interfaces.",
        |c, v| listeners::parse_endpoints(v).map(|e| c.bind = e))
        .dynamic(Update::PerBroker).restart(REBIND),
    Key::new("advertised.listeners", ConfigType::String, None,
        "NAME://host:port per listener: what Metadata, FindCoordinator and DescribeCluster tell clients that came in on that listener.",
        |c, v| listeners::parse_endpoints(v).map(|e| c.advertise = e))
        .note("each listener's bound address").dynamic(Update::PerBroker).restart(REBIND),
    Key::new("listener.security.protocol.map", ConfigType::String, Some(listeners::DEFAULT_PROTOCOL_MAP),
        "NAME:PROTOCOL pairs giving each listener's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (see Security).",
        |c, v| listeners::parse_protocol_map(v).map(|m| c.protocols = m))
        .dynamic(Update::PerBroker).restart(REBIND),
    Key::new("inter.broker.listener.name", ConfigType::String, None,
        "The listener brokers reach each other on (replication, transaction markers): every broker of a cluster must have it, and advertises its address there. Exclusive with security.inter.broker.protocol.",
        |c, v| {
            c.inter_broker_listener_name = Some(v.trim().to_ascii_uppercase()).filter(|n| !n.is_empty());
            Ok(())
        })
        .note("the listener named by security.inter.broker.protocol"),
    Key::new("security.inter.broker.protocol", ConfigType::String, None,
        "The inter-broker listener by its security protocol (the listener of that name): PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. Exclusive with inter.broker.listener.name.",
        |c, v| {
            c.inter_broker_protocol = match v.trim().to_ascii_uppercase().as_str() {
                "" => None,
                v => Some(listeners::SecurityProtocol::parse(v).ok_or_else(|| format!("unknown security protocol {v} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"))?),
            };
            Ok(())
        })
        .note("PLAINTEXT (the PLAINTEXT listener, else Gregor's first)"),
    Key::new("sasl.mechanism.inter.broker.protocol", ConfigType::String, Some("GSSAPI"),
        "How brokers log in to each other's SASL inter-broker listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's default, GSSAPI, is refused), with the username and password of listener.name.<listener>.<mechanism>.sasl.jaas.config.",
        |c, v| {
            c.inter_broker_sasl_mechanism = v.trim().to_string();
            Ok(())
        }),
    Key::new("log.dirs", ConfigType::String, Some("./data"),
        "Data directory holding the RocksDB store (the first one, if several are listed).",
        |c, v| v.split(',').next().map(str::trim).filter(|d| !d.is_empty()).map(|dir| c.data_dir = dir.into()).ok_or_else(|| "empty".into()))
        .synonyms(&[Alias { name: "log.dir", factor: 1 }]),
    Key::new("node.id", ConfigType::Int, Some("1"), "This node's id, unique in the cluster and fixed once the data directory is formatted.", field!(node_id)).min(0)
        .synonyms(&[Alias { name: "broker.id", factor: 1 }]),
    Key::new("process.roles", ConfigType::List, Some("broker,controller"),
        "What this node does: broker (serves clients), controller (a voter of the metadata quorum), or both.",
        |c, v| quorum::Roles::parse(v).map(|r| c.process_roles = r)),
    Key::new("controller.quorum.voters", ConfigType::List, Some(""),
        "The controller quorum as id@host:port entries (each voter's controller listener); empty: this node is the one voter of its own cluster.",
        |c, v| quorum::parse_voters(v).map(|voters| c.quorum_voters = voters))
        .note("this node alone"),
    Key::new("controller.listener.names", ConfigType::List, Some("CONTROLLER"),
        "The listener in listeners that serves the controller quorum's RPC (Gregor's own protocol): PLAINTEXT unless listener.security.protocol.map makes it SSL (SASL is refused).",
        |c, v| quorum::parse_names(v).map(|names| c.controller_listener_names = names)),
    Key::new("broker.session.timeout.ms", ConfigType::Int, Some("9000"),
        "The controller fences a broker whose heartbeats stop for this long, and moves its partition leaderships to other ISR members.",
        field!(broker_session_timeout_ms)).min(1),
    Key::new("broker.heartbeat.interval.ms", ConfigType::Int, Some("2000"),
        "How often a broker sends the controller a heartbeat.", field!(broker_heartbeat_interval_ms)).min(1),
    Key::new("broker.rack", ConfigType::String, None,
        "This broker's rack: reported to clients in Metadata and DescribeCluster, and replicas of a new partition go to different racks when there are enough.",
        |c, v| {
            c.broker_rack = Some(v.to_string()).filter(|r| !r.is_empty());
            Ok(())
        })
        .note("none"),
    Key::new("default.replication.factor", ConfigType::Int, Some("1"),
        "Replicas of each partition of a topic created without a replication factor (or with -1), auto-created topics included.",
        field!(default_replication_factor)).min(1),
    Key::new("auto.leader.rebalance.enable", ConfigType::Boolean, Some("true"),
        "The active controller moves each partition's leadership back to its preferred (first) replica when that one is live and in sync, checking every leader.imbalance.check.interval.seconds.",
        field!(auto_leader_rebalance)),
    Key::new("leader.imbalance.check.interval.seconds", ConfigType::Long, Some("300"),
        "How often the active controller looks for partitions not led by their preferred replica.",
        field!(leader_imbalance_check_interval_seconds)).min(1),
    Key::new("num.partitions", ConfigType::Int, Some("1"), "Partitions of auto-created topics.", field!(num_partitions)).min(1),
    Key::new("auto.create.topics.enable", ConfigType::Boolean, Some("true"),
        "Create unknown topics when a Metadata request allows it.", field!(auto_create_topics)),
    Key::new("message.max.bytes", ConfigType::Int, Some("1048588"),
        "Largest record batch accepted (topic override: max.message.bytes).", field!(message_max_bytes))
        .min(0).dynamic(Update::ClusterWide),
    Key::new("socket.request.max.bytes", ConfigType::Int, Some("104857600"),
        "Largest request; a bigger one closes the connection.", field!(socket_request_max_bytes)).min(1),
    Key::new("log.retention.ms", ConfigType::Long, Some("604800000"),
        "Delete batches older than this; -1 keeps them (topic override: retention.ms).", field!(retention_ms))
        .synonyms(&[Alias { name: "log.retention.minutes", factor: 60_000 }, Alias { name: "log.retention.hours", factor: 3_600_000 }])
        .min(-1).note("7 days").dynamic(Update::ClusterWide),
    Key::new("log.retention.bytes", ConfigType::Long, Some("-1"),
        "Per-partition size cap; -1 is none (topic override: retention.bytes).", field!(retention_bytes))
        .dynamic(Update::ClusterWide),
    Key::new("log.retention.check.interval.ms", ConfigType::Long, Some("300000"),
        "How often retention runs.", field!(retention_check_interval_ms)).min(1),
    Key::new("log.flush.interval.messages", ConfigType::Long, Some("9223372036854775807"),
        "Sync a partition's data to disk every this many records; the append that reaches the count is acknowledged after the sync. At 1 every append is, and consumers see it only then; concurrent producers share one sync (topic override: flush.messages).",
        field!(flush_messages))
        .min(1).note("never").dynamic(Update::ClusterWide),
    Key::new("log.flush.interval.ms", ConfigType::Long, Some("9223372036854775807"),
        "Sync data to disk at most this many milliseconds after it is written, in the background (topic override: flush.ms).",
        field!(flush_ms))
        .min(0).note("never").dynamic(Update::ClusterWide),
    Key::new("log.cleanup.policy", ConfigType::List, Some("delete"),
        "Default cleanup.policy of topics: delete (retention removes old batches), compact (the log cleaner keeps the latest record per key), or compact,delete.",
        |c, v| cleanup_policy(v).map(|p| c.cleanup_policy = p))
        .dynamic(Update::ClusterWide),
    Key::new("log.cleaner.enable", ConfigType::Boolean, Some("true"),
        "Run the log cleaner, which compacts topics whose cleanup.policy includes compact.", field!(cleaner_enable)),
    Key::new("log.cleaner.backoff.ms", ConfigType::Long, Some("15000"),
        "How long the cleaner sleeps when no partition needs cleaning.", field!(cleaner_backoff_ms))
        .min(0).dynamic(Update::ClusterWide),
    Key::new("log.cleaner.min.compaction.lag.ms", ConfigType::Long, Some("0"),
        "Records younger than this are never compacted (topic override: min.compaction.lag.ms).", field!(cleaner_min_compaction_lag_ms))
        .min(0).dynamic(Update::ClusterWide),
    Key::new("log.cleaner.max.compaction.lag.ms", ConfigType::Long, Some("9223372036854775807"),
        "A record stays uncompacted at most this long, whatever the dirty ratio (topic override: max.compaction.lag.ms).", field!(cleaner_max_compaction_lag_ms))
        .min(1).note("unlimited").dynamic(Update::ClusterWide),
    Key::new("log.cleaner.min.cleanable.ratio", ConfigType::Double, Some("0.5"),
        "A partition is compacted once this fraction of its cleanable bytes is not yet compacted (topic override: min.cleanable.dirty.ratio).",
        |c, v| ratio(v).map(|r| c.cleaner_min_cleanable_ratio = r))
        .dynamic(Update::ClusterWide),
    Key::new("log.cleaner.delete.retention.ms", ConfigType::Long, Some("86400000"),
        "How long a tombstone (a null value) stays readable before compaction removes it (topic override: delete.retention.ms).", field!(cleaner_delete_retention_ms))
        .min(0).note("1 day").dynamic(Update::ClusterWide),
    Key::new("log.cleaner.io.max.bytes.per.second", ConfigType::Double, Some("1.7976931348623157E308"),
        "Most bytes per second the cleaner reads and writes together.", |c, v| {
            c.cleaner_io_max_bytes_per_second = v.parse().ok().filter(|r: &f64| *r > 0.0).ok_or("must be a positive number")?;
            Ok(())
        })
        .note("unlimited").dynamic(Update::ClusterWide),
    Key::new("log.cleaner.dedupe.buffer.size", ConfigType::Long, Some("134217728"),
        "Memory one compaction pass may use for the keys it has seen; a partition with more keys is compacted in several passes.", field!(cleaner_dedupe_buffer_size))
        .min(1 << 20).dynamic(Update::ClusterWide),
    Key::new("log.cleaner.io.buffer.size", ConfigType::Int, Some("524288"),
        "Bytes of rewritten batches the cleaner writes at once; each write is atomic, so a crash mid-pass keeps every write before it.", field!(cleaner_io_buffer_size))
        .min(1).dynamic(Update::ClusterWide),
    Key::new("producer.id.expiration.ms", ConfigType::Int, Some("86400000"),
        "Forget an idempotent producer's state on a partition (its last five batches, for duplicate detection) once its last batch's timestamp is this old; its next batch is then taken at any sequence, as in Kafka.",
        field!(producer_id_expiration_ms))
        .min(1).note("1 day").dynamic(Update::ClusterWide),
    Key::new("producer.id.expiration.check.interval.ms", ConfigType::Int, Some("600000"),
        "How often expired producer states are removed.", field!(producer_id_expiration_check_interval_ms)).min(1),
    Key::new("transaction.max.timeout.ms", ConfigType::Int, Some("900000"),
        "Largest transaction.timeout.ms a transactional producer may ask for; InitProducerId with more gets INVALID_TRANSACTION_TIMEOUT.",
        field!(transaction_max_timeout_ms)).min(1).note("15 minutes"),
    Key::new("transactional.id.expiration.ms", ConfigType::Int, Some("604800000"),
        "Forget a transactional id (its producer id and epoch) once it has had no transaction for this long.",
        field!(transactional_id_expiration_ms)).min(1).note("7 days"),
    Key::new("transaction.abort.timed.out.transaction.cleanup.interval.ms", ConfigType::Int, Some("10000"),
        "How often transactions open longer than their timeout are aborted (their producer's epoch is bumped, fencing it).",
        field!(transaction_abort_interval_ms)).min(1),
    Key::new("transaction.remove.expired.transaction.cleanup.interval.ms", ConfigType::Int, Some("3600000"),
        "How often transactional ids past transactional.id.expiration.ms are removed.",
        field!(transaction_expiry_interval_ms)).min(1),
    Key::new("transaction.partition.verification.enable", ConfigType::Boolean, Some("true"),
        "A transactional batch is written only if the coordinator has its partition in the producer's open transaction (KIP-890); off, any is written, and one the coordinator never ends hangs until `kafka-transactions abort`.",
        field!(transaction_partition_verification)),
    Key::new("transaction.version", ConfigType::Int, Some("2"),
        "The transaction protocol clients are told to use, as the finalized feature level Kafka sets with `kafka-storage format --feature` or `kafka-features upgrade`: 2 is KIP-890 part 2 (Produce adds partitions, EndTxn bumps the epoch), which Kafka 4 clients and franz-go then use; 1 keeps every client on the explicit AddPartitionsToTxn protocol.",
        |c: &mut Config, v: &str| match v {
            "1" | "2" => {
                c.transaction_version = v.parse().expect("a digit");
                Ok(())
            }
            _ => Err("must be 1 or 2".to_string()),
        }),
    Key::new("connections.max.idle.ms", ConfigType::Long, Some("600000"),
        "Close a connection that sends no complete request, or takes no response bytes, for this long (also stops clients that trickle bytes).",
        field!(connections_max_idle_ms)).min(0),
    Key::new("max.connections", ConfigType::Int, Some("2147483647"), "Most client connections at once.", field!(max_connections))
        .min(0).note("unlimited").dynamic(Update::ClusterWide),
    Key::new("max.connections.per.ip", ConfigType::Int, Some("2147483647"), "Most connections from one address.", field!(max_connections_per_ip))
        .min(0).note("unlimited").dynamic(Update::ClusterWide),
    Key::new("queued.max.requests", ConfigType::Int, Some("500"),
        "Most requests handled at once across the broker; the next request of each further connection waits, read but not handled. Fetch long polls and JoinGroup/SyncGroup waits do not count, as in Kafka's purgatory.",
        field!(queued_max_requests)).min(1),
    Key::new("fetch.max.bytes", ConfigType::Int, Some("57671680"),
        "Most record bytes in one fetch response, whatever the client asks; the first batch goes out whole even if it is larger (KIP-74).",
        field!(fetch_max_bytes)).min(1024).note("55 MiB"),
    Key::new("quota.window.num", ConfigType::Int, Some("11"),
        "Sample windows a client's produce and fetch byte rates are measured over, against its client quota (KIP-13).",
        field!(quota_window_num)).min(1),
    Key::new("quota.window.size.seconds", ConfigType::Int, Some("1"),
        "Length of one client quota sample window.",
        field!(quota_window_size_seconds)).min(1),
    Key::new("max.incremental.fetch.session.cache.slots", ConfigType::Int, Some("1000"),
        "Most incremental fetch sessions (KIP-227) kept at once; when all are taken, a new one takes the slot of an idle or less valuable one, as in Kafka. 0 turns sessions off.",
        field!(fetch_session_cache_slots)).min(0),
    Key::new("min.insync.replicas", ConfigType::Int, Some("1"),
        "Fewest ISR members for an acks=all produce: with fewer it is refused (NOT_ENOUGH_REPLICAS), and one the ISR shrank below while it waited fails with NOT_ENOUGH_REPLICAS_AFTER_APPEND (topic override: min.insync.replicas).",
        field!(min_insync_replicas)).min(1).dynamic(Update::ClusterWide),
    Key::new("replica.lag.time.max.ms", ConfigType::Long, Some("30000"),
        "A follower that has not caught up with its leader for this long is removed from the ISR.",
        field!(replica_lag_time_max_ms)).min(1),
    Key::new("replica.fetch.wait.max.ms", ConfigType::Int, Some("500"),
        "Longest a follower's fetch waits at its leader for new data.", field!(replica_fetch_wait_max_ms)).min(0),
    Key::new("replica.fetch.max.bytes", ConfigType::Int, Some("1048576"),
        "Record bytes a follower fetches per partition and request (a larger first batch still comes whole).",
        field!(replica_fetch_max_bytes)).min(0).note("1 MiB"),
    Key::new("replica.fetch.response.max.bytes", ConfigType::Int, Some("10485760"),
        "Record bytes a follower fetches per request.", field!(replica_fetch_response_max_bytes)).min(0).note("10 MiB"),
    Key::new("leader.replication.throttled.rate", ConfigType::Long, Some("9223372036854775807"),
        "Bytes per second this broker sends, as leader, to the replicas its topics list in leader.replication.throttled.replicas while they are out of the ISR (a reassignment's copies).",
        field!(leader_replication_throttled_rate)).min(0).dynamic(Update::ClusterWide),
    Key::new("follower.replication.throttled.rate", ConfigType::Long, Some("9223372036854775807"),
        "Bytes per second this broker fetches, as follower, for its replicas listed in follower.replication.throttled.replicas while they are out of the ISR.",
        field!(follower_replication_throttled_rate)).min(0).dynamic(Update::ClusterWide),
    Key::new("replica.fetch.backoff.ms", ConfigType::Int, Some("1000"),
        "How long a follower waits after a fetch error before it fetches that partition (or reconnects) again.",
        field!(replica_fetch_backoff_ms)).min(0),
    Key::new("group.initial.rebalance.delay.ms", ConfigType::Int, Some("0"),
        "How long a new group waits for more members before its first assignment.", field!(group_initial_rebalance_delay_ms)).min(0),
    Key::new("group.min.session.timeout.ms", ConfigType::Int, Some("6000"),
        "Shortest consumer session timeout accepted.", field!(group_min_session_timeout_ms)).min(0),
    Key::new("group.max.session.timeout.ms", ConfigType::Int, Some("1800000"),
        "Longest consumer session timeout accepted.", field!(group_max_session_timeout_ms)).min(0),
    Key::new("offset.metadata.max.bytes", ConfigType::Int, Some("4096"),
        "Largest metadata string on a committed offset.", field!(offset_metadata_max_bytes)).min(0),
    Key::new("group.max.size", ConfigType::Int, Some("2147483647"),
        "Most members of one group; a new member beyond it gets GROUP_MAX_SIZE_REACHED.", field!(group_max_size))
        .min(1).note("unlimited"),
    Key::new("offsets.retention.minutes", ConfigType::Int, Some("10080"),
        "Committed offsets of a group expire this long after it lost its last member; for a group without members (manual assignment) or of topics a group no longer subscribes to, this long after the commit. An empty group without offsets disappears.",
        field!(offsets_retention_minutes))
        .min(1).note("7 days"),
    Key::new("offsets.retention.check.interval.ms", ConfigType::Long, Some("600000"),
        "How often offset retention runs.", field!(offsets_retention_check_interval_ms)).min(1),
    Key::new("offsets.topic.num.partitions", ConfigType::Int, Some("50"),
        "Partitions of __consumer_offsets, where a cluster keeps groups and committed offsets (created at the first FindCoordinator; the leader of a group's partition coordinates it). Not used by a lone node, which keeps them locally.",
        field!(offsets_topic_num_partitions)).min(1),
    Key::new("offsets.topic.replication.factor", ConfigType::Int, Some("3"),
        "Replicas of each __consumer_offsets partition. Until this many brokers are registered the topic cannot be created, and FindCoordinator answers COORDINATOR_NOT_AVAILABLE.",
        field!(offsets_topic_replication_factor)).min(1),
    Key::new("transaction.state.log.num.partitions", ConfigType::Int, Some("50"),
        "Partitions of __transaction_state, where a cluster keeps transactions (created at the first FindCoordinator for a transactional id; the leader of an id's partition coordinates it). Not used by a lone node, which keeps them locally.",
        field!(transaction_state_log_num_partitions)).min(1),
    Key::new("transaction.state.log.replication.factor", ConfigType::Int, Some("3"),
        "Replicas of each __transaction_state partition. Until this many brokers are registered the topic cannot be created, and FindCoordinator answers COORDINATOR_NOT_AVAILABLE.",
        field!(transaction_state_log_replication_factor)).min(1),
    Key::new("transaction.state.log.min.isr", ConfigType::Int, Some("2"),
        "min.insync.replicas of __transaction_state.", field!(transaction_state_log_min_isr)).min(1),
    Key::new("offsets.commit.timeout.ms", ConfigType::Int, Some("5000"),
        "How long a group coordinator in a cluster waits for the replicas of __consumer_offsets to take a commit or a group change before answering COORDINATOR_NOT_AVAILABLE.",
        field!(offsets_commit_timeout_ms)).min(1),
    Key::new("rocksdb.memtable.bytes", ConfigType::Long, Some("67108864"),
        "Memory budget for RocksDB's memtables (writes are flushed to disk when they fill it).", field!(memtable_bytes)).min(0),
    Key::new("rocksdb.block.cache.bytes", ConfigType::Long, Some("16777216"),
        "Memory budget for RocksDB's cache: index blocks and batches read back for fetches.", field!(block_cache_bytes)).min(0),
    Key::new("zookeeper.listener", ConfigType::String, None,
        "Also serve the ZooKeeper protocol here, e.g. 127.0.0.1:2181, for tools that manage Kafka 2.x through ZooKeeper; empty turns it off.",
        |c, v| listeners::parse_host_port(v).map(|z| c.zookeeper_listener = z))
        .note("off"),
    Key::new("metrics.listener", ConfigType::String, None,
        "Serve Prometheus metrics at http://host:port/metrics, e.g. 127.0.0.1:9404 (see Metrics); empty turns it off.",
        |c, v| listeners::parse_host_port(v).map(|m| c.metrics_listener = m))
        .note("off"),
    Key::new("authorizer.class.name", ConfigType::String, Some(""),
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer (or the older kafka.security.authorizer.AclAuthorizer) checks every request against the ACLs that kafka-acls manages; empty allows everything, and CreateAcls, DescribeAcls and DeleteAcls answer SECURITY_DISABLED.",
        |c, v| {
            c.authorizer_enabled = !v.is_empty();
            match v {
                "" => Ok(()),
                v if AUTHORIZER_CLASSES.contains(&v) => Ok(()),
                v => Err(format!("Gregor has its own authorizer, with Kafka's rules; set {} (or leave it empty), not {v}", AUTHORIZER_CLASSES[0])),
            }
        })
        .note("none"),
    Key::new("super.users", ConfigType::String, Some(""),
        "Semicolon-separated principals (User:admin;User:broker) the authorizer allows everything.",
        |c, v| v.split(';').filter(|p| !p.trim().is_empty()).map(Principal::parse).collect::<Result<_, _>>().map(|p| c.super_users = p))
        .note("none"),
    Key::new("allow.everyone.if.no.acl.found", ConfigType::Boolean, Some("false"),
        "With the authorizer on, allow a request on a resource no ACL names (an ACL of any principal on it turns this off for it).",
        field!(allow_everyone_if_no_acl_found)),
];
