//! The controller quorum: a KRaft-style metadata log on openraft. The active controller (the
//! Raft leader) is the only writer of [`MetadataRecord`]s; every node of the Raft group (the
//! voters of `controller.quorum.voters`, and broker-only nodes as learners) applies them in log
//! order to its own [`MetadataImage`], persisted in the node's store.
//!
//! - `store.rs`: openraft's log storage and state machine over the store's Raft log facade.
//! - `rpc.rs`: the private RPC between nodes (frames, messages, the listener).
//! - `network.rs`: openraft's network, one reused connection per peer.
//!
//! A one-node cluster is the same code with one voter, which elects itself at once.

mod acls;
mod brokers;
mod client;
mod network;
mod replicas;
mod rpc;
mod store;
mod topics;
mod quotas;
mod users;

pub use brokers::{BrokerHeartbeat, HeartbeatReply, RegisterBroker};
pub use topics::{AlterTopicConfigs, CommittedPartition, CreatePartitions, CreateTopic, IsrChange, PRODUCER_ID_BLOCK_SIZE};
pub use client::ControllerClient;
pub use replicas::{AlterReassignments, ElectLeaders, ElectionType, PartitionResults, Reassign};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, LogId, Raft, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::metadata::{MetadataImage, MetadataRecord};
use crate::log::LogStore;
use crate::security::tls::{TlsClient, TlsServer};

/// Raft node id: Kafka's `node.id`.
pub type NodeId = u64;

/// What applying a record gave: `Err` holds why the image refused it.
pub type Applied = Result<(), String>;

openraft::declare_raft_types!(
    /// openraft's types for the metadata log.
    pub TypeConfig:
        D = MetadataRecord,
        R = Applied,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// How long [`Controller::write`] waits for a quorum before giving up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a node takes part in the controller quorum.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: NodeId,
    /// `controller.quorum.voters` as (id, `host:port`). Empty: this node is the lone voter of
    /// its own cluster.
    pub voters: Vec<(NodeId, String)>,
    /// Where this node's controller RPC listens (`host:port`). Only a lone voter may go
    /// without: nobody needs to reach it.
    pub address: Option<String>,
    /// How often the leader sends heartbeats; also the timeout of one AppendEntries call.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for twice this long (the leader's lease), then this long
    /// again up to twice as long at random, calls an election.
    pub election_timeout_ms: u64,
    /// The image is snapshotted after this many log entries, and the log before it dropped.
    pub snapshot_after_entries: u64,
    /// Brokers of another cluster id are refused.
    pub cluster_id: String,
    /// `broker.session.timeout.ms`: a broker without heartbeats this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// The controller listener is SSL: its RPC is served and dialled over TLS.
    pub tls: Option<(TlsServer, TlsClient)>,
}

impl ControllerConfig {
    pub fn new(node_id: NodeId, voters: Vec<(NodeId, String)>, address: Option<String>) -> ControllerConfig {
        // openraft waits out the leader's lease (the longest election timeout) before its own
        // timeout, so 500 ms means an election 1.5-2 s after the last heartbeat, near Kafka's
        // controller.quorum.election.timeout.ms of 1 s plus its random backoff; heartbeats
        // every 200 ms leave room for a busy machine before a follower gives up on its leader.
        ControllerConfig { node_id, voters, address, heartbeat_interval_ms: 200, election_timeout_ms: 500, snapshot_after_entries: 10_000, cluster_id: String::new(), broker_session_timeout_ms: 9000, tls: None }
    }
}

/// Why a write (or a membership change) did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    #[error("this node is not the active controller (leader: {leader:?} at {address:?})")]
    NotLeader { leader: Option<NodeId>, address: Option<String> },
    #[error("the metadata image refused the record: {0}")]
    Refused(String),
    /// The record may still be committed later.
    #[error("no quorum acknowledged the write within {0:?}")]
    TimedOut(Duration),
    #[error("the controller is stopped: {0}")]
    Stopped(String),
    #[error("this node belongs to cluster {broker}, but the controller quorum is cluster {controller}: format its data directory with the quorum's cluster id")]
    WrongCluster { controller: String, broker: String },
    #[error("no controller reachable: {0}")]
    Unreachable(String),
    /// Refused as Kafka's controller refuses it, with its error code and message.
    #[error("{message}")]
    Rejected { code: i16, message: String },
}

impl WriteError {
    /// The Kafka error a client is answered with.
    pub fn response_error(&self) -> kafka_protocol::ResponseError {
        use kafka_protocol::ResponseError;
        match self {
            WriteError::Rejected { code, .. } => ResponseError::try_from_code(*code).unwrap_or(ResponseError::UnknownServerError),
            // Retriable: the client asks again, by then of the new active controller.
            WriteError::NotLeader { .. } | WriteError::Unreachable(_) | WriteError::Stopped(_) => ResponseError::NotController,
            WriteError::TimedOut(_) => ResponseError::RequestTimedOut,
            WriteError::Refused(_) | WriteError::WrongCluster { .. } => ResponseError::UnknownServerError,
        }
    }
}

/// One node's view of the quorum (what Kafka's DescribeQuorum reports, and what tests check).
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    /// The Raft term: Kafka's leader epoch of the metadata log.
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// The last entry the latest snapshot covers.
    pub snapshot_index: Option<u64>,
    /// Entries up to here are gone from the log (covered by a snapshot).
    pub purged_index: Option<u64>,
}

/// The quorum as the active controller sees it: what DescribeQuorum reports. Offsets count
/// entries of the metadata log, as Kafka's offsets of `__cluster_metadata` do.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuorumDescription {
    pub leader: NodeId,
    /// The Raft term: Kafka's leader epoch of the metadata log.
    pub term: u64,
    /// Entries committed: Kafka's high watermark.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    /// Learners: the broker-only nodes.
    pub observers: Vec<ReplicaProgress>,
    /// Each voter's controller address (`host:port`).
    pub addresses: Vec<(NodeId, String)>,
}

/// How far one member's copy of the metadata log reaches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaProgress {
    pub id: NodeId,
    /// Entries it holds, or -1 when the leader has not heard from it.
    pub log_end_offset: i64,
    /// Epoch milliseconds, -1 when unknown. openraft 0.9 keeps no time per follower, so a
    /// follower's is the quorum's last acknowledgement, once it holds every committed entry.
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// A running member of the controller quorum. Cheap to clone; it stops when the shutdown
/// signal given to [`Controller::start`] fires, and the task returned with it then ends.
#[derive(Clone)]
pub struct Controller {
    id: NodeId,
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<MetadataImage>>,
    cluster_id: String,
    session_timeout_ms: u64,
    sessions: Arc<brokers::Sessions>,
    /// Where the controller RPC listens, if it does.
    local_addr: Option<std::net::SocketAddr>,
    /// How peers' controller listeners are dialled, when they speak TLS.
    tls: Option<TlsClient>,
    /// Held from reading the image to writing what follows from it, so that no two such
    /// changes interleave.
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Controller {
    /// Opens the metadata log in `store`, binds the controller listener, and joins the quorum:
    /// on a fresh store a voter initializes the voter set (every voter may; they agree), and a
    /// lone voter elects itself at once. A learner waits for the leader to add it.
    pub async fn start(config: ControllerConfig, store: &LogStore, mut shutdown: watch::Receiver<bool>) -> Result<(Controller, JoinHandle<()>)> {
        let id = config.node_id;
        let voters: BTreeMap<NodeId, BasicNode> = if config.voters.is_empty() {
            BTreeMap::from([(id, BasicNode::new(config.address.clone().unwrap_or_default()))])
        } else {
            config.voters.iter().map(|(v, addr)| (*v, BasicNode::new(addr))).collect()
        };
        if config.voters.len() != voters.len() && !config.voters.is_empty() {
            bail!("controller.quorum.voters names a node id twice: {:?}", config.voters);
        }
        let lone = voters.len() == 1 && voters.contains_key(&id);
        let address = config.address.clone().or_else(|| voters.get(&id).map(|n| n.addr.clone())).filter(|a| !a.is_empty());
        let listener = match &address {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("cannot listen for controller RPCs on {addr}"))?),
            None if lone => None,
            None => bail!("node {id} needs a controller address: it is not the only voter"),
        };
        let raft_config = openraft::Config {
            cluster_name: "gregor".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: config.election_timeout_ms * 2,
            // Each snapshot chunk is one call.
            install_snapshot_timeout: config.election_timeout_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: 0,
            snapshot_max_chunk_size: rpc::SNAPSHOT_CHUNK_BYTES,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().context("controller settings")?);
        let log = store.raft_log();
        let (state_machine, image) = store::StateMachine::open(log.clone()).await?;
        let (tls_server, tls_client) = config.tls.clone().unzip();
        let network = network::Network::new(id, config.cluster_id.clone(), tls_client.clone());
        let raft = Raft::new(id, raft_config, network, store::LogStorage::new(log), state_machine).await.context("starting the controller")?;

        let mut initialized = false;
        if voters.contains_key(&id) && !raft.is_initialized().await? {
            // Initializing appends the voter set and starts an election at once.
            match raft.initialize(voters.clone()).await {
                Ok(()) => {
                    initialized = true;
                    tracing::info!(node = id, voters = ?voters.keys().collect::<Vec<_>>(), "controller quorum initialized");
                }
                // Another voter's leader reached this node first.
                Err(RaftError::APIError(e)) => tracing::debug!(node = id, "not initializing: {e}"),
                Err(RaftError::Fatal(e)) => return Err(e).context("initializing the controller quorum"),
            }
        }
        let sole_voter = {
            let metrics = raft.metrics().borrow().clone();
            let voter_ids: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
            voter_ids == [id] && metrics.state != ServerState::Leader
        };
        if sole_voter && !initialized {
            // Alone in the quorum (and not restored as leader): no reason to wait out an
            // election timeout.
            raft.trigger().elect().await?;
        }

        let controller = Controller {
            id,
            raft: raft.clone(),
            image,
            cluster_id: config.cluster_id.clone(),
            session_timeout_ms: config.broker_session_timeout_ms,
            sessions: Arc::default(),
            local_addr: listener.as_ref().map(TcpListener::local_addr).transpose()?,
            writes: Arc::default(),
            tls: tls_client,
        };
        let server = listener.map(|l| {
            tracing::info!(node = id, "controller listener on {}", l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()));
            tokio::spawn(rpc::serve(l, tls_server, controller.clone(), shutdown.clone()))
        });
        let task = {
            let raft = raft.clone();
            tokio::spawn(async move {
                while !*shutdown.borrow_and_update() {
                    if shutdown.changed().await.is_err() {
                        break;
                    }
                }
                if let Err(e) = raft.shutdown().await {
                    tracing::warn!(node = id, "controller shutdown: {e}");
                }
                if let Some(server) = server {
                    let _ = server.await;
                }
            })
        };
        Ok((controller, task))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Where this node's controller RPC listens (none for a lone voter without a listener).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Waits until the quorum member stops by itself (a fatal error, such as a metadata log
    /// write the disk refused) and says why; never returns while it runs or after a normal stop.
    pub async fn halted(&self) -> String {
        let mut metrics = self.raft.metrics();
        let why = match metrics.wait_for(|m| matches!(m.running_state, Err(ref e) if !matches!(e, openraft::error::Fatal::Stopped))).await {
            Ok(m) => m.running_state.as_ref().err().map(ToString::to_string),
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// The active controller, as far as this node knows.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// A peer's Hello: it must belong to this node's cluster.
    fn check_cluster(&self, cluster_id: String) -> Result<(), WriteError> {
        if cluster_id == self.cluster_id {
            return Ok(());
        }
        Err(WriteError::WrongCluster { controller: self.cluster_id.clone(), broker: cluster_id })
    }

    /// Refuses a call meant for the active controller when this node is not it.
    fn check_leader(&self) -> Result<(), WriteError> {
        match self.leader() {
            Some(leader) if leader == self.id => Ok(()),
            leader => Err(WriteError::NotLeader { leader, address: leader.and_then(|l| self.address_of(l)) }),
        }
    }

    /// The controller RPC address of a member (voter or learner) of the quorum.
    fn address_of(&self, node: NodeId) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let address = metrics.membership_config.membership().get_node(&node).map(|n| n.addr.clone());
        address.filter(|a| !a.is_empty())
    }

    fn is_voter(&self, node: NodeId) -> bool {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == node)
    }

    /// The voters, for DescribeCluster and Metadata's controller id.
    pub fn voters(&self) -> Vec<NodeId> {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }

    /// Waits up to `timeout` for the quorum to have an active controller; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let mut metrics = self.raft.metrics();
        let found = tokio::time::timeout(timeout, metrics.wait_for(|m| m.current_leader.is_some())).await;
        found.ok().and_then(|m| m.ok().and_then(|m| m.current_leader))
    }

    /// Where this node's copy of the metadata log stands.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        QuorumStatus {
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|id| id.index),
            snapshot_index: metrics.snapshot.map(|id| id.index),
            purged_index: metrics.purged.map(|id| id.index),
        }
    }

    /// The quorum's members and how far each has the metadata log (active controller only).
    pub(super) fn describe_quorum(&self) -> Result<QuorumDescription, WriteError> {
        self.check_leader()?;
        let metrics = self.raft.metrics().borrow().clone();
        let now = crate::cluster::now_ms();
        let high_watermark = metrics.last_applied.map_or(0, |id| id.index as i64 + 1);
        let acked = metrics.millis_since_quorum_ack.map_or(-1, |ago| now - ago as i64);
        let matched = metrics.replication.unwrap_or_default();
        let progress = |id: NodeId| {
            if id == self.id {
                let log_end_offset = metrics.last_log_index.map_or(0, |i| i as i64 + 1);
                return ReplicaProgress { id, log_end_offset, last_fetch_ms: now, last_caught_up_ms: now };
            }
            let log_end_offset = matched.get(&id).copied().flatten().map_or(-1, |l| l.index as i64 + 1);
            let caught_up = if log_end_offset >= high_watermark { acked } else { -1 };
            ReplicaProgress { id, log_end_offset, last_fetch_ms: if log_end_offset >= 0 { acked } else { -1 }, last_caught_up_ms: caught_up }
        };
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let addresses = voters.iter().filter_map(|&v| Some((v, self.address_of(v)?))).collect();
        Ok(QuorumDescription {
            leader: self.id,
            term: metrics.current_term,
            high_watermark,
            voters: voters.into_iter().map(progress).collect(),
            observers: membership.learner_ids().map(progress).collect(),
            addresses,
        })
    }

    /// The applied image; it changes after every batch of records applied.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Appends a record to the metadata log (leader only) and returns its log id once a
    /// quorum has it and this node applied it.
    pub async fn write(&self, record: MetadataRecord) -> Result<LogId<NodeId>, WriteError> {
        let written = tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(record)).await.map_err(|_| WriteError::TimedOut(WRITE_TIMEOUT))?;
        let response = written.map_err(write_error)?;
        response.data.map_err(WriteError::Refused)?;
        Ok(response.log_id)
    }

    /// Adds a broker-only node as a learner (leader only): the leader replicates the metadata
    /// log to it from now on, starting with a snapshot when the log it needs is gone.
    pub async fn add_learner(&self, id: NodeId, address: String) -> Result<(), WriteError> {
        let added = tokio::time::timeout(WRITE_TIMEOUT, self.raft.add_learner(id, BasicNode::new(address), false)).await.map_err(|_| WriteError::TimedOut(WRITE_TIMEOUT))?;
        added.map(|_| ()).map_err(write_error)
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => WriteError::NotLeader { leader: to.leader_id, address: to.leader_node.map(|n| n.addr) },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => WriteError::Refused(e.to_string()),
        RaftError::Fatal(e) => WriteError::Stopped(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use openraft::raft::VoteRequest;
    use openraft::Vote;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::cluster::metadata::TopicRecord;

    /// Collects log lines (the test runs on one thread, where the subscriber is the default).
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Sends `bytes` and expects the node to close the connection.
    async fn closed_after(addr: &str, bytes: &[u8]) {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{bytes:?}: {read:?}");
    }

    #[tokio::test]
    async fn a_bad_frame_closes_its_connection_and_the_listener_serves_on() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let (shutdown, rx) = watch::channel(false);
        let (controller, task) = Controller::start(ControllerConfig::new(1, vec![], Some(addr.clone())), &store, rx).await.unwrap();

        closed_after(&addr, &u32::MAX.to_be_bytes()).await;
        closed_after(&addr, &[0, 0, 0, 5, rpc::VERSION, 0xff, 0xff, 0xff, 0xff]).await;
        closed_after(&addr, &[0, 0, 0, 2, 9, 0]).await;
        closed_after(&addr, &[0, 0, 0, 0]).await;
        let vote = || rpc::Request::Vote(VoteRequest::new(Vote::new(0, 2), None));
        async fn call(socket: &mut TcpStream, request: rpc::Request) -> Option<rpc::Response> {
            rpc::write_frame(socket, &request).await.unwrap();
            tokio::time::timeout(Duration::from_secs(5), rpc::read_frame::<rpc::Response>(socket)).await.unwrap().unwrap()
        }
        // A call before the Hello, and a Hello of another cluster (told why), close the connection.
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        assert!(call(&mut socket, vote()).await.is_none());
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        let answer = call(&mut socket, rpc::Request::Hello { cluster_id: "another".into() }).await;
        assert!(matches!(answer, Some(rpc::Response::Hello(Err(WriteError::WrongCluster { .. })))), "{answer:?}");
        assert!(matches!(rpc::read_frame::<rpc::Response>(&mut socket).await, Ok(None)));

        // A well-formed call after a Hello of this cluster, on a new connection, is still answered.
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        assert!(matches!(call(&mut socket, rpc::Request::Hello { cluster_id: String::new() }).await, Some(rpc::Response::Hello(Ok(())))));
        let answer = call(&mut socket, vote()).await;
        assert!(matches!(answer, Some(rpc::Response::Vote(Ok(_)))), "{answer:?}");
        let record = MetadataRecord::Topic(TopicRecord { name: "t".into(), id: uuid::Uuid::new_v4(), configs: vec![] });
        controller.write(record).await.unwrap();

        shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        for reason in ["frame of 4294967295 bytes", "undecodable body", "frame version 9", "frame of 0 bytes", "did not begin with Hello", "belongs to cluster another"] {
            assert!(logged.lines().any(|l| l.contains("controller connection closed") && l.contains(reason)), "no log line for {reason:?}:\n{logged}");
        }
    }
}
