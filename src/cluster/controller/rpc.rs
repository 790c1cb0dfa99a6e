//! The private RPC between Gregor nodes on the controller listener (not the Kafka protocol:
//! only Gregor nodes speak it, and openraft's messages are serde types already).
//!
//! A frame is a u32 big-endian length, then that many bytes: a version byte and a bincode
//! body. A request frame holds a [`Request`], its answer a [`Response`] of the same kind; one
//! connection carries one call at a time. A frame above [`MAX_FRAME_BYTES`], of another
//! version, or that does not decode closes its connection with a logged reason; the listener
//! serves on. Every connection begins with [`Request::Hello`] naming the caller's cluster id
//! (Kafka's KRaft checks it on every Vote and Fetch): a node formatted for another cluster is
//! answered so and cut off, so it can neither vote in this quorum nor join it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bincode::Options;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use uuid::Uuid;

use super::brokers::{BrokerHeartbeat, HeartbeatReply, RegisterBroker};
use super::topics::{AlterTopicConfigs, CommittedPartition, CreatePartitions, CreateTopic, IsrChange};
use super::replicas::{AlterReassignments, ElectLeaders, PartitionResults};
use super::{Controller, NodeId, QuorumDescription, TypeConfig, WriteError};
use crate::cluster::metadata::{BrokerId, ClientQuotaRecord, ProducerIdBlock, ScramCredentialRecord};
use crate::security::acl::{AclBinding, AclFilter};
use crate::security::tls::{Stream, TlsServer};

/// The largest frame either side accepts.
pub(super) const MAX_FRAME_BYTES: usize = 16 << 20;
/// Snapshots travel in chunks of this size, well inside a frame.
pub(super) const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// The frame version this build speaks; a change of [`Request`] or [`Response`] that an
/// older node cannot read bumps it.
pub(super) const VERSION: u8 = 5;
/// Once a frame has begun, the rest of it must arrive within this time.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers are few; more connections than this at once are refused.
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    RegisterBroker(RegisterBroker),
    BrokerHeartbeat(BrokerHeartbeat),
    CreateTopic(CreateTopic),
    DeleteTopic(String),
    CreatePartitions(CreatePartitions),
    AlterTopicConfigs(AlterTopicConfigs),
    AlterPartition(IsrChange),
    /// Producer ids for this broker, from at least the given one.
    AllocateProducerIds(BrokerId, i64),
    AlterReassignments(AlterReassignments),
    ElectLeaders(ElectLeaders),
    DescribeQuorum,
    /// The first call on a connection: the caller's cluster id.
    Hello { cluster_id: String },
    AlterScramCredentials(Vec<ScramCredentialRecord>),
    CreateAcls(Vec<AclBinding>),
    DeleteAcls(Vec<AclFilter>),
    AlterClientQuotas(Vec<ClientQuotaRecord>),
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    RegisterBroker(Result<(), WriteError>),
    BrokerHeartbeat(Result<HeartbeatReply, WriteError>),
    CreateTopic(Result<Uuid, WriteError>),
    DeleteTopic(Result<(), WriteError>),
    CreatePartitions(Result<(), WriteError>),
    AlterTopicConfigs(Result<(), WriteError>),
    AlterPartition(Result<CommittedPartition, WriteError>),
    AllocateProducerIds(Result<ProducerIdBlock, WriteError>),
    AlterReassignments(Result<PartitionResults, WriteError>),
    ElectLeaders(Result<PartitionResults, WriteError>),
    DescribeQuorum(Result<QuorumDescription, WriteError>),
    Hello(Result<(), WriteError>),
    AlterScramCredentials(Result<(), WriteError>),
    CreateAcls(Result<(), WriteError>),
    DeleteAcls(Result<Vec<Vec<AclBinding>>, WriteError>),
    AlterClientQuotas(Result<(), WriteError>),
}

impl Response {
    /// The error of a call the active controller refused, if it did.
    pub(super) fn error(&self) -> Option<&WriteError> {
        match self {
            Response::AppendEntries(_) | Response::Vote(_) | Response::InstallSnapshot(_) => None,
            Response::RegisterBroker(r)
            | Response::DeleteTopic(r)
            | Response::CreatePartitions(r)
            | Response::AlterTopicConfigs(r)
            | Response::Hello(r)
            | Response::AlterScramCredentials(r)
            | Response::CreateAcls(r)
            | Response::AlterClientQuotas(r) => r.as_ref().err(),
            Response::BrokerHeartbeat(r) => r.as_ref().err(),
            Response::CreateTopic(r) => r.as_ref().err(),
            Response::AlterPartition(r) => r.as_ref().err(),
            Response::AllocateProducerIds(r) => r.as_ref().err(),
            Response::AlterReassignments(r) | Response::ElectLeaders(r) => r.as_ref().err(),
            Response::DescribeQuorum(r) => r.as_ref().err(),
            Response::DeleteAcls(r) => r.as_ref().err(),
        }
    }
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_FRAME_BYTES as u64)
}

/// `version`, then `value` in bincode.
pub(super) fn encode<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    codec().serialize_into(&mut out, value).expect("metadata types serialize");
    out
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    codec().deserialize(body).context("undecodable body")
}

/// Writes one frame holding `value`.
pub(super) async fn write_frame<T: Serialize>(out: &mut (impl AsyncWriteExt + Unpin), value: &T) -> Result<()> {
    let frame = encode(VERSION, value);
    if frame.len() > MAX_FRAME_BYTES {
        bail!("a {} byte frame is above the limit of {MAX_FRAME_BYTES}", frame.len());
    }
    out.write_all(&(frame.len() as u32).to_be_bytes()).await?;
    out.write_all(&frame).await?;
    out.flush().await?;
    Ok(())
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub(super) async fn read_frame<T: DeserializeOwned>(input: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<T>> {
    let mut size = [0u8; 4];
    match input.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = u32::from_be_bytes(size) as usize;
    if size == 0 || size > MAX_FRAME_BYTES {
        bail!("frame of {size} bytes (the limit is {MAX_FRAME_BYTES})");
    }
    let mut frame = vec![0u8; size];
    tokio::time::timeout(FRAME_TIMEOUT, input.read_exact(&mut frame)).await.context("frame incomplete after the timeout")??;
    match frame[0] {
        VERSION => decode(&frame[1..]).map(Some),
        v => bail!("frame version {v}; this node speaks {VERSION}"),
    }
}

/// Accepts peers' connections until shutdown, serving each on its own task.
pub(super) async fn serve(listener: TcpListener, tls: Option<TlsServer>, controller: Controller, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        // Reap the finished ones, so the set holds only live connections.
        while connections.try_join_next().is_some() {}
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("controller listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "controller listener: refusing a connection, {MAX_CONNECTIONS} are open");
            continue;
        };
        let (controller, tls, mut shutdown) = (controller.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            tokio::select! {
                served = serve_connection(socket, tls, &controller) => if let Err(e) = served {
                    tracing::warn!(%peer, "controller connection closed: {e:#}");
                },
                _ = shutdown.changed() => {}
            }
            drop(permit);
        });
    }
    connections.shutdown().await;
}

impl Controller {
    /// Answers one call, from a peer or (for broker calls) from this node itself.
    pub(super) async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(r) => {
                if let Some(&leader) = r.vote.leader_id().voted_for().as_ref() {
                    self.sessions.heard_from_leader(leader);
                }
                Response::AppendEntries(self.raft.append_entries(r).await)
            }
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => Response::InstallSnapshot(self.raft.install_snapshot(r).await),
            Request::RegisterBroker(r) => Response::RegisterBroker(self.register_broker(r).await),
            Request::BrokerHeartbeat(r) => Response::BrokerHeartbeat(self.broker_heartbeat(r).await),
            Request::CreateTopic(r) => Response::CreateTopic(self.create_topic(r).await),
            Request::DeleteTopic(name) => Response::DeleteTopic(self.delete_topic(name).await),
            Request::CreatePartitions(r) => Response::CreatePartitions(self.create_partitions(r).await),
            Request::AlterTopicConfigs(r) => Response::AlterTopicConfigs(self.alter_topic_configs(r).await),
            Request::AlterPartition(r) => Response::AlterPartition(self.alter_partition(r).await),
            Request::AllocateProducerIds(broker, at_least) => Response::AllocateProducerIds(self.allocate_producer_ids(broker, at_least).await),
            Request::AlterReassignments(r) => Response::AlterReassignments(self.alter_reassignments(r).await),
            Request::ElectLeaders(r) => Response::ElectLeaders(self.elect_leaders(r).await),
            Request::DescribeQuorum => Response::DescribeQuorum(self.describe_quorum()),
            Request::Hello { cluster_id } => Response::Hello(self.check_cluster(cluster_id)),
            Request::AlterScramCredentials(r) => Response::AlterScramCredentials(self.alter_scram_credentials(r).await),
            Request::CreateAcls(acls) => Response::CreateAcls(self.create_acls(acls).await),
            Request::DeleteAcls(filters) => Response::DeleteAcls(self.delete_acls(filters).await),
            Request::AlterClientQuotas(changes) => Response::AlterClientQuotas(self.alter_client_quotas(changes).await),
        }
    }
}

/// Answers one peer's calls, in order, until it closes the connection; the first must be a
/// Hello from this cluster.
async fn serve_connection(socket: TcpStream, tls: Option<TlsServer>, controller: &Controller) -> Result<()> {
    socket.set_nodelay(true)?;
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(socket),
        Some(tls) => Box::new(tokio::time::timeout(FRAME_TIMEOUT, tls.acceptor().accept(socket)).await.context("no TLS handshake in time")?.context("TLS handshake")?),
    };
    let (input, output) = tokio::io::split(stream);
    let (mut input, mut output) = (BufReader::new(input), BufWriter::new(output));
    let mut greeted = false;
    while let Some(request) = read_frame::<Request>(&mut input).await? {
        let hello = matches!(request, Request::Hello { .. });
        if !greeted && !hello {
            bail!("the peer did not begin with Hello");
        }
        let response = controller.handle(request).await;
        if hello {
            if let Some(refused) = response.error() {
                let refused = refused.to_string();
                // Told why before the connection closes, so the peer can say what to fix.
                tokio::time::timeout(FRAME_TIMEOUT, write_frame(&mut output, &response)).await.context("peer not reading")??;
                bail!("{refused}");
            }
            greeted = true;
        }
        tokio::time::timeout(FRAME_TIMEOUT, write_frame(&mut output, &response)).await.context("peer not reading")??;
    }
    Ok(())
}
