//! Gregor: a Kafka-compatible broker that keeps every partition's log in RocksDB.
//!
//! [`Broker::start`] is what both the `gregor` binary and the tests use, and what a Rust test
//! suite can use as an in-process broker: a free port, a temporary data directory, any Kafka
//! client (rdkafka, rskafka) pointed at [`BrokerHandle::advertised`].
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! use gregor::{Broker, Config};
//! use rskafka::client::{partition::UnknownTopicHandling, ClientBuilder};
//!
//! let dir = tempfile::tempdir()?;
//! let mut config = Config::default();
//! config.set("listeners", "127.0.0.1:0")?; // any free port
//! config.set("log.dirs", dir.path().to_str().unwrap())?;
//! let broker = Broker::start(config).await?; // serving when this returns
//!
//! let client = ClientBuilder::new(vec![broker.advertised()]).build().await?;
//! client.controller_client()?.create_topic("events", 1, 1, 5_000).await?;
//! let partition = client.partition_client("events", 0, UnknownTopicHandling::Retry).await?;
//! let record = rskafka::record::Record { key: None, value: Some(b"hi".to_vec()), headers: Default::default(), timestamp: chrono::Utc::now() };
//! partition.produce(vec![record], rskafka::client::partition::Compression::NoCompression).await?;
//! let (records, _) = partition.fetch_records(0, 1..1_000_000, 1_000).await?;
//! assert_eq!(records[0].record.value.as_deref(), Some(&b"hi"[..]));
//!
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod cluster;
pub mod config;
pub mod fetch_session;
pub mod group;
pub mod log;
pub mod metrics;
pub mod quota;
pub mod security;
pub mod server;
pub mod txn;
pub mod zookeeper;
#[doc(hidden)]
pub mod testkit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::cluster::controller::{Controller, ControllerClient, ControllerConfig, NodeId, RegisterBroker};
use crate::cluster::lifecycle::BrokerLifecycle;
use crate::cluster::metadata::{BrokerEndpoint, BrokerRegistration};
use crate::cluster::publisher::{self, QuorumAlterPartition};
use crate::cluster::replication::{AlterPartitionSender, BrokerAddresses, PartitionState, ReplicaManager, TopicPartition};
use crate::cluster::{Cluster, Endpoint, Node};
pub use crate::config::Config;
use crate::config::BrokerSettings;
use crate::log::LogStore;

pub struct Broker;

/// A running node: a broker, or a dedicated controller (`process.roles=controller`). Dropping
/// it does not stop it; call [`BrokerHandle::shutdown`].
pub struct BrokerHandle {
    /// Each listener's name and bound address, in `listeners` order (a dedicated controller's:
    /// its controller listener).
    listeners: Vec<(String, SocketAddr)>,
    advertised: (String, u16),
    zookeeper_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    log: Arc<LogStore>,
    /// Why the node must stop, when the controller refused it.
    failure: watch::Receiver<Option<String>>,
    /// The broker's parts; a dedicated controller has none.
    broker: Option<(Arc<Cluster>, Arc<ReplicaManager>)>,
}

impl Broker {
    /// Opens the data directory, binds every listener and starts serving. When this returns,
    /// a client that connects is served. Without a controller, ISR changes are applied here.
    pub async fn start(config: Config) -> Result<BrokerHandle> {
        if !config.process_roles.broker {
            return start_controller_only(config).await;
        }
        let alter = Arc::new(QuorumAlterPartition::default());
        Self::start_inner(config, alter.clone(), Some(alter)).await
    }

    /// [`Broker::start`], with ISR changes sent through `alter` (tests that play the controller).
    pub async fn start_with(config: Config, alter: Arc<dyn AlterPartitionSender>) -> Result<BrokerHandle> {
        Self::start_inner(config, alter, None).await
    }

    async fn start_inner(config: Config, alter: Arc<dyn AlterPartitionSender>, quorum_alter: Option<Arc<QuorumAlterPartition>>) -> Result<BrokerHandle> {
        let log = open_store(&config).await?;
        let mut bound = Vec::new();
        let mut endpoints = Vec::new();
        for l in &config.listeners {
            let socket = TcpListener::bind((l.bind_host(), l.port))
                .await
                .with_context(|| format!("cannot listen on {}:{} for listener {} (is another broker running there?)", l.bind_host(), l.port, l.name))?;
            let addr = socket.local_addr()?;
            let (host, port) = l.advertised_for(addr);
            if l.advertised.is_none() && addr.ip().is_unspecified() {
                tracing::warn!("listener {} is on all interfaces without advertised.listeners: clients are told {host}; set advertised.listeners to an address they can reach", l.name);
            }
            endpoints.push(Endpoint { listener: l.name.clone(), host, port });
            bound.push((l.clone(), addr, socket));
        }
        // Bound with the Kafka listeners, so a client that finds those accepting finds this too.
        let metrics_socket = metrics::bind(config.metrics_listener).await?;
        let advertised = (endpoints[0].host.clone(), endpoints[0].port);
        let node = Node { id: config.node_id, endpoints, rack: config.broker_rack.clone() };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let api = {
            let (config, shutdown_rx) = (config.clone(), shutdown_rx.clone());
            Arc::new(tokio::task::spawn_blocking(move || Api::open(&config, node, log, alter, shutdown_rx)).await??)
        };
        let (cluster, groups, api_log, replicas) = (api.cluster.clone(), api.groups.clone(), api.log.clone(), api.replicas.clone());
        // Checked before anything starts: a bad TLS or SASL setting refuses the start. Built off
        // the runtime: it reads certificate files and may fetch an OAUTHBEARER key set.
        let securities: Vec<_> = {
            let (listeners, settings, cluster) = (bound.iter().map(|(listener, _, _)| listener.clone()).collect::<Vec<_>>(), config.security.clone(), cluster.clone());
            tokio::task::spawn_blocking(move || listeners.iter().map(|listener| security::ListenerSecurity::new(listener, &settings, cluster.clone())).collect::<Result<Vec<_>, _>>())
                .await?
                .map_err(|e| anyhow::anyhow!(e))?
        };
        let mut zookeeper_addr = None;
        let mut tasks = Vec::new();
        let (failure, failure_rx) = watch::channel(None);
        tasks.extend(start_quorum(&config, &api, quorum_alter, failure, shutdown_rx.clone()).await?);
        if let Some(addr) = config.zookeeper_listener {
            let (bound, task) = zookeeper::start(addr, cluster.clone(), api.log.meta(), shutdown_rx.clone()).await?;
            zookeeper_addr = Some(bound);
            tasks.push(task);
        }
        let metrics_addr = serve_metrics(metrics_socket, metrics::Source::Broker(api.clone()), &mut tasks, shutdown_rx.clone());
        let limits = Arc::new(server::Limits::new(cluster.settings().clone()));
        let mut listeners = Vec::new();
        for ((listener, addr, socket), security) in bound.into_iter().zip(securities) {
            let name = listener.name;
            tracing::info!("listener {name} on {addr}, advertised as {}", api.cluster.node().endpoint(&name).host_port());
            tasks.push(tokio::spawn(server::serve(socket, name.as_str().into(), security, api.clone(), limits.clone(), shutdown_rx.clone())));
            listeners.push((name, addr));
        }
        tasks.push(tokio::spawn(groups.clone().run_timers(shutdown_rx.clone())));
        tasks.push(tokio::spawn(api.txns.clone().run(shutdown_rx.clone())));
        // The ISR checker also stops the follower fetchers, which `apply` starts.
        tasks.push(tokio::spawn(replicas.clone().run_isr_checker(shutdown_rx.clone())));
        let offsets_check = Duration::from_millis(config.offsets_retention_check_interval_ms);
        tasks.push(tokio::spawn(groups.clone().run_offset_expiry(offsets_check, shutdown_rx.clone())));
        tasks.push(tokio::spawn(producer_expiry_loop(api_log.clone(), cluster.settings().clone(), config.producer_id_expiration_check_interval_ms, shutdown_rx.clone())));
        tasks.push(tokio::spawn(high_watermark_checkpoint_loop(api_log.clone(), shutdown_rx.clone())));
        tasks.push(tokio::spawn(recovery_loop(api_log, shutdown_rx.clone())));
        tasks.push(tokio::spawn(retention_loop(cluster.clone(), config.retention_check_interval_ms, shutdown_rx.clone())));
        if config.cleaner_enable {
            tasks.push(tokio::spawn(cleaner_loop(cluster.clone(), shutdown_rx)));
        }
        tracing::info!("Gregor listening on {}, advertised as {}:{}, data in {}", listeners[0].1, advertised.0, advertised.1, config.data_dir.display());
        Ok(BrokerHandle { listeners, advertised, zookeeper_addr, metrics_addr, shutdown, tasks, log: api.log.clone(), failure: failure_rx, broker: Some((cluster, replicas)) })
    }
}

impl BrokerHandle {
    /// Where the first listener is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// Where the listener called `name` (upper-case, as in `listeners`) is bound.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _)| n == name).map(|&(_, addr)| addr)
    }

    /// Where the ZooKeeper-protocol listener is bound, if `zookeeper.listener` is set.
    pub fn zookeeper_addr(&self) -> Option<SocketAddr> {
        self.zookeeper_addr
    }

    /// Where Prometheus metrics are served, if `metrics.listener` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address clients of the first listener are told to use, as `host:port`.
    pub fn advertised(&self) -> String {
        format!("{}:{}", self.advertised.0, self.advertised.1)
    }

    /// How many times RocksDB has stalled writes since the broker started (tests/stall.rs).
    #[doc(hidden)]
    pub async fn write_stalls(&self) -> u64 {
        self.log.write_stalls().await.expect("store readable")
    }

    /// The store and the log id of a topic's partition, for tests that write to it directly
    /// (e.g. at other leader epochs).
    #[doc(hidden)]
    pub fn partition_log(&self, topic: &str, index: i32) -> Option<(Arc<LogStore>, log::PartitionId)> {
        let (cluster, _) = self.broker.as_ref()?;
        let id = cluster::partition_id(cluster.topic(topic).as_deref(), index).ok()?;
        Some((self.log.clone(), id))
    }

    /// Waits until the node cannot go on (the controller quorum refused it) and says why.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.clone();
        let why = failure.wait_for(Option::is_some).await.map(|why| why.clone().unwrap_or_default());
        match why {
            Ok(why) => why,
            // The lifecycle task ended without a failure: the broker is shutting down.
            Err(_) => std::future::pending().await,
        }
    }

    /// Makes this broker leader or follower of a partition, as the metadata publisher will with
    /// [`ReplicaManager::apply`] once the controller's metadata image is wired in; until then
    /// tests play the controller through this.
    #[doc(hidden)]
    pub async fn apply_partition_state(&self, partition: &TopicPartition, state: PartitionState, addresses: &BrokerAddresses) -> Result<(), kafka_protocol::ResponseError> {
        let (_, replicas) = self.broker.as_ref().ok_or(kafka_protocol::ResponseError::BrokerNotAvailable)?;
        replicas.apply(partition, state, addresses).await
    }

    /// Stops accepting, closes every connection (a request in progress goes unanswered),
    /// closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// A lone voter elects itself at once; this only bounds a wait that never should be long.
const LONE_ELECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a stopping broker waits for the controller to fence it.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Signals a shutdown when dropped.
struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Starts a dedicated controller: a voter of the metadata quorum and, while it is the active
/// controller, the brokers' sessions and leader balance; it opens no client listener.
async fn start_controller_only(config: Config) -> Result<BrokerHandle> {
    if config.zookeeper_listener.is_some() {
        anyhow::bail!("zookeeper.listener shows a broker's view: set it on a broker, not on a controller-only node");
    }
    let metrics_socket = metrics::bind(config.metrics_listener).await?;
    let log = open_store(&config).await?;
    let cluster_id = cluster::identity::check_at_start(&config.data_dir, config.node_id, None)?.cluster_id;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (failure, failure_rx) = watch::channel(None);
    let (controller, mut tasks) = join_quorum(&config, &log, &cluster_id, &failure, shutdown_rx.clone()).await?;
    let metrics_addr = serve_metrics(metrics_socket, metrics::Source::Controller(controller.clone(), log.clone()), &mut tasks, shutdown_rx);
    let listener = config.controller_listener.as_ref().context("a controller-only node needs a controller listener")?;
    let addr = controller.local_addr().context("a controller-only node listens for the quorum")?;
    let advertised = listener.advertised_for(addr);
    tracing::info!("Gregor controller {} of cluster {cluster_id} listening on {addr} for the quorum and the brokers (no client listener: process.roles=controller), data in {}", config.node_id, config.data_dir.display());
    Ok(BrokerHandle { listeners: vec![(listener.name.clone(), addr)], advertised, zookeeper_addr: None, metrics_addr, shutdown, tasks, log, failure: failure_rx, broker: None })
}

/// Opens the data directory's store with the configured memory budget, off the runtime's
/// threads (opening reads it).
async fn open_store(config: &Config) -> Result<Arc<LogStore>> {
    let dir = config.data_dir.clone();
    let budget = log::Budget { memtable_bytes: config.memtable_bytes, block_cache_bytes: config.block_cache_bytes };
    Ok(Arc::new(tokio::task::spawn_blocking(move || LogStore::open_with_budget(&dir, budget)).await??))
}

/// Joins the metadata quorum (as a voter with the controller role, as a learner without) and
/// starts its tasks: the quorum itself, the active controller's broker session check and
/// leader balance, and the watch that stops the node when its quorum member fails. It all
/// stops when `shutdown` fires.
async fn join_quorum(config: &Config, store: &LogStore, cluster_id: &str, failure: &watch::Sender<Option<String>>, shutdown: watch::Receiver<bool>) -> Result<(Controller, Vec<JoinHandle<()>>)> {
    let node_id = NodeId::try_from(config.node_id).context("node.id")?;
    let voters: Vec<(NodeId, String)> = config.quorum_voters.iter().map(|v| (v.id as NodeId, v.address.clone())).collect();
    let listener = config.controller_listener.as_ref();
    let mut quorum = ControllerConfig::new(node_id, voters, listener.map(|l| format!("{}:{}", l.bind_host(), l.port)));
    quorum.cluster_id = cluster_id.to_string();
    quorum.broker_session_timeout_ms = config.broker_session_timeout_ms;
    if let Some(l) = listener.filter(|l| l.protocol.tls()) {
        let context = |e: String| anyhow::anyhow!("controller listener {} ({}): {e}", l.name, l.protocol.name());
        quorum.tls = Some((security::tls::TlsServer::new(&l.name, &config.security).map_err(context)?, security::tls::TlsClient::new(&l.name, &config.security).map_err(context)?));
    }
    let (controller, task) = Controller::start(quorum, store, shutdown.clone()).await?;
    let mut tasks = vec![task];
    if config.process_roles.controller {
        if config.auto_leader_rebalance {
            let interval = Duration::from_secs(config.leader_imbalance_check_interval_seconds);
            tasks.push(tokio::spawn(controller.clone().run_leader_rebalance(interval, shutdown.clone())));
        }
        tasks.push(tokio::spawn(controller.clone().run_broker_sessions(shutdown.clone())));
    }
    // Kafka halts a node whose metadata log cannot be written; a supervisor restarts it once the
    // cause (a full disk, say) is gone. Going on without a quorum member would leave it blind.
    tasks.push(tokio::spawn({
        let (controller, failure, mut shutdown) = (controller.clone(), failure.clone(), shutdown);
        async move {
            tokio::select! {
                why = controller.halted() => {
                    let why = format!("the controller quorum member stopped: {why}; restart this node once that is fixed (a full disk: free space)");
                    tracing::error!("{why}");
                    failure.send_replace(Some(why));
                }
                _ = shutdown.changed() => {}
            }
        }
    }));
    Ok((controller, tasks))
}

/// Joins the metadata quorum ([`join_quorum`]) and starts this broker's part: its
/// registration and heartbeats, and the publisher applying the metadata image. A lone node is
/// registered and unfenced before this returns, so its first client sees it.
async fn start_quorum(config: &Config, api: &Api, alter: Option<Arc<QuorumAlterPartition>>, failure: watch::Sender<Option<String>>, shutdown: watch::Receiver<bool>) -> Result<Vec<JoinHandle<()>>> {
    let cluster = &api.cluster;
    // The quorum stops after this broker's last heartbeat, which may need it (controlled
    // shutdown through this node's own controller).
    let (quorum_stop, quorum_shutdown) = watch::channel(false);
    let (controller, mut tasks) = join_quorum(config, &api.log, cluster.cluster_id(), &failure, quorum_shutdown).await?;
    let client = Arc::new(ControllerClient::new(controller.clone(), config.quorum_voters.iter().map(|v| v.address.clone()).collect()));
    cluster.attach_quorum(controller.clone(), client.clone());
    if let Some(alter) = &alter {
        alter.attach(client.clone());
    }
    let node = cluster.node();
    let registration = BrokerRegistration {
        id: node.id,
        endpoints: node.endpoints.iter().map(|e| BrokerEndpoint { listener: e.listener.clone(), host: e.host.clone(), port: e.port }).collect(),
        rack: node.rack.clone(),
    };
    let raft_address = config.controller_listener.as_ref().map(|l| {
        let (host, port) = l.advertised.clone().unwrap_or_else(|| (l.bind_host().to_string(), l.port));
        format!("{host}:{port}")
    });
    let request = RegisterBroker { cluster_id: cluster.cluster_id().to_string(), registration, raft_address };
    // Heartbeats have a connection of their own, never queued behind an admin call.
    let heartbeats = ControllerClient::new(controller.clone(), config.quorum_voters.iter().map(|v| v.address.clone()).collect());
    let (caught_up, caught_up_rx) = watch::channel(false);
    let mut lifecycle = BrokerLifecycle::new(heartbeats, controller.clone(), request, failure, caught_up);
    if config.quorum_voters.is_empty() {
        // Registers, then unfences: the lone node is its own controller, no network involved.
        controller.wait_for_leader(LONE_ELECTION_TIMEOUT).await.context("the lone controller did not elect itself")?;
        // The applied index a heartbeat reports trails the write by a moment.
        let deadline = tokio::time::Instant::now() + LONE_ELECTION_TIMEOUT;
        while !lifecycle.is_unfenced() && tokio::time::Instant::now() < deadline {
            if !lifecycle.step().await {
                anyhow::bail!("the controller refused this node");
            }
            if !lifecycle.is_unfenced() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    // The lone node's old topics join the metadata log before it serves (a cluster node's
    // join once its controller answers); when that fails, the publisher retries first.
    if config.quorum_voters.is_empty() {
        if let Err(e) = publisher::migrate(cluster, &controller.image().borrow().clone()).await {
            tracing::warn!("registering this node's topics with its controller: {e}; retrying in the background");
        }
    }
    let replicas = alter.is_some().then(|| api.replicas.clone());
    tasks.push(tokio::spawn(publisher::run(cluster.clone(), replicas, api.groups.clone(), api.txns.clone(), controller.image(), caught_up_rx, shutdown.clone())));
    // The lone node serves its metadata log's topics from the first request: a topic whose
    // deletion a kill cut short must not be seen whole and then vanish.
    if config.quorum_voters.is_empty() && !cluster.first_published(LONE_ELECTION_TIMEOUT).await {
        tracing::warn!("the first metadata image was not applied within {LONE_ELECTION_TIMEOUT:?}; serving anyway");
    }
    let shutdown_timeout = Duration::from_millis(config.broker_session_timeout_ms).min(CONTROLLED_SHUTDOWN_TIMEOUT);
    let interval_ms = config.broker_heartbeat_interval_ms;
    tasks.insert(
        0,
        tokio::spawn(async move {
            // Dropped when the task ends, however it ends: the quorum then stops too.
            let _stop_quorum = StopOnDrop(quorum_stop);
            lifecycle.run(interval_ms, shutdown_timeout, shutdown).await;
        }),
    );
    Ok(tasks)
}

/// After a failed write (a full disk, typically), reopens the store once space is back, so
/// producing resumes by itself.
async fn recovery_loop(log: Arc<LogStore>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if log.needs_recovery() {
            let log = log.clone();
            match tokio::task::spawn_blocking(move || log.recover()).await {
                Ok(Err(e)) => tracing::warn!("store recovery: {e:#}"),
                Err(e) => tracing::error!("store recovery failed: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Deletes data past each topic's retention, every `log.retention.check.interval.ms`.
async fn retention_loop(cluster: Arc<Cluster>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    let mut tick = every(interval_ms.max(10));
    while next_tick(&mut tick, &mut shutdown).await {
        cluster.apply_retention(api::now_ms()).await;
    }
}

/// The log cleaner: compacts the partitions of compacted topics that are due, and sleeps
/// `log.cleaner.backoff.ms` whenever none was.
async fn cleaner_loop(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let cleaned = tokio::select! {
            cleaned = cluster.clean(api::now_ms()) => cleaned,
            _ = shutdown.changed() => return,
        };
        let backoff = if cleaned > 0 { Duration::ZERO } else { Duration::from_millis(cluster.settings().current().cleaner_backoff_ms) };
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
    }
}
/// Forgets idle producers' states every `producer.id.expiration.check.interval.ms`, by the
/// `producer.id.expiration.ms` in effect then (it is dynamic, as in Kafka).
async fn producer_expiry_loop(log: Arc<LogStore>, settings: Arc<BrokerSettings>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    let mut tick = every(interval_ms);
    while next_tick(&mut tick, &mut shutdown).await {
        if let Err(e) = log.expire_producers(api::now_ms(), settings.current().producer_id_expiration_ms).await {
            tracing::warn!("producer state expiry failed: {e:?}");
        }
    }
}

/// Checkpoints the replicated logs' high watermarks every 5 s (Kafka's default
/// `replica.high.watermark.checkpoint.interval.ms`), and once more at shutdown.
async fn high_watermark_checkpoint_loop(log: Arc<LogStore>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = every(5_000);
    loop {
        let running = next_tick(&mut tick, &mut shutdown).await;
        if let Err(e) = log.checkpoint_high_watermarks().await {
            tracing::warn!("high watermark checkpoint failed: {e:?}");
        }
        if !running {
            return;
        }
    }
}

/// Serves `metrics.listener`, when it is set, from `source`: returns where.
fn serve_metrics(socket: Option<(TcpListener, SocketAddr)>, source: metrics::Source, tasks: &mut Vec<JoinHandle<()>>, shutdown: watch::Receiver<bool>) -> Option<SocketAddr> {
    let (socket, bound) = socket?;
    tracing::info!("Prometheus metrics on http://{bound}/metrics");
    tasks.push(tokio::spawn(metrics::serve(socket, source, shutdown)));
    Some(bound)
}

/// A background task's period, first due one period from now; a late tick delays the next.
fn every(interval_ms: u64) -> tokio::time::Interval {
    let period = Duration::from_millis(interval_ms);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for the next tick: true when it comes, false once the broker shuts down.
async fn next_tick(tick: &mut tokio::time::Interval, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tick.tick() => true,
        _ = shutdown.changed() => false,
    }
}
