//! Gregor: a Kafka-compatible broker that keeps every partition's log in RocksDB.
//!
//! [`Broker::start`] is what both the `gregor` binary and the tests use.

pub mod api;
pub mod cluster;
pub mod config;
pub mod fetch_session;
pub mod group;
pub mod log;
pub mod server;
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
use crate::cluster::replication::{AlterPartitionSender, BrokerAddresses, LocalAlterPartition, PartitionState, ReplicaManager, TopicPartition};
use crate::cluster::{Cluster, Endpoint, Node};
pub use crate::config::Config;
use crate::config::BrokerSettings;
use crate::log::LogStore;

pub struct Broker;

/// A running broker. Dropping it does not stop it; call [`BrokerHandle::shutdown`].
pub struct BrokerHandle {
    /// Each listener's name and bound address, in `listeners` order.
    listeners: Vec<(String, SocketAddr)>,
    advertised: (String, u16),
    zookeeper_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    replicas: Arc<ReplicaManager>,
}

impl Broker {
    /// Opens the data directory, binds every listener and starts serving. When this returns,
    /// a client that connects is served. Without a controller, ISR changes are applied here.
    pub async fn start(config: Config) -> Result<BrokerHandle> {
        Self::start_with(config, Arc::new(LocalAlterPartition)).await
    }

    /// [`Broker::start`], with ISR changes sent to the controller through `alter`.
    pub async fn start_with(config: Config, alter: Arc<dyn AlterPartitionSender>) -> Result<BrokerHandle> {
        let budget = log::Budget { memtable_bytes: config.memtable_bytes, block_cache_bytes: config.block_cache_bytes };
        // Opening reads the store: off the runtime's threads.
        let dir = config.data_dir.clone();
        let log = Arc::new(tokio::task::spawn_blocking(move || LogStore::open_with_budget(&dir, budget)).await??);
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
            bound.push((l.name.clone(), addr, socket));
        }
        let advertised = (endpoints[0].host.clone(), endpoints[0].port);
        let node = Node { id: config.node_id, endpoints };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let api = {
            let (config, shutdown_rx) = (config.clone(), shutdown_rx.clone());
            Arc::new(tokio::task::spawn_blocking(move || Api::open(&config, node, log, alter, shutdown_rx)).await??)
        };
        let (cluster, groups, api_log, replicas) = (api.cluster.clone(), api.groups.clone(), api.log.clone(), api.replicas.clone());
        let mut zookeeper_addr = None;
        let mut tasks = Vec::new();
        if let Some(addr) = config.zookeeper_listener {
            let (bound, task) = zookeeper::start(addr, cluster.clone(), groups.clone(), api.log.meta(), shutdown_rx.clone()).await?;
            zookeeper_addr = Some(bound);
            tasks.push(task);
        }
        let limits = Arc::new(server::Limits::new(cluster.settings().clone()));
        let mut listeners = Vec::new();
        for (name, addr, socket) in bound {
            tracing::info!("listener {name} on {addr}, advertised as {}", api.cluster.node().endpoint(&name).host_port());
            tasks.push(tokio::spawn(server::serve(socket, name.as_str().into(), api.clone(), limits.clone(), shutdown_rx.clone())));
            listeners.push((name, addr));
        }
        tasks.push(tokio::spawn(groups.clone().run_timers(shutdown_rx.clone())));
        // The ISR checker also stops the follower fetchers, which `apply` starts.
        tasks.push(tokio::spawn(replicas.clone().run_isr_checker(shutdown_rx.clone())));
        let offsets_check = Duration::from_millis(config.offsets_retention_check_interval_ms);
        tasks.push(tokio::spawn(groups.clone().run_offset_expiry(offsets_check, shutdown_rx.clone())));
        tasks.push(tokio::spawn(producer_expiry_loop(api_log.clone(), cluster.settings().clone(), config.producer_id_expiration_check_interval_ms, shutdown_rx.clone())));
        tasks.push(tokio::spawn(recovery_loop(api_log, shutdown_rx.clone())));
        tasks.push(tokio::spawn(retention_loop(cluster.clone(), config.retention_check_interval_ms, shutdown_rx.clone())));
        if config.cleaner_enable {
            tasks.push(tokio::spawn(cleaner_loop(cluster.clone(), shutdown_rx)));
        }
        tracing::info!("Gregor listening on {}, advertised as {}:{}, data in {}", listeners[0].1, advertised.0, advertised.1, config.data_dir.display());
        Ok(BrokerHandle { listeners, advertised, zookeeper_addr, shutdown, tasks, log: api.log.clone(), cluster, replicas })
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
        let id = cluster::partition_id(self.cluster.topic(topic).as_deref(), index).ok()?;
        Some((self.log.clone(), id))
    }

    /// Makes this broker leader or follower of a partition, as the metadata publisher will with
    /// [`ReplicaManager::apply`] once the controller's metadata image is wired in; until then
    /// tests play the controller through this.
    #[doc(hidden)]
    pub async fn apply_partition_state(&self, partition: &TopicPartition, state: PartitionState, addresses: &BrokerAddresses) -> Result<(), kafka_protocol::ResponseError> {
        self.replicas.apply(partition, state, addresses).await
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
