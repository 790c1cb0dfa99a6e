//! openraft's network: calls to peers over the private RPC (`rpc.rs`). Each peer has one
//! connection, opened on first use (with a Hello naming this node's cluster) and reused by
//! every call to it (one at a time); a call that fails or times out drops it, and the next
//! call connects again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};
use tokio::io::{BufReader, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::security::tls::{server_name, Stream, TlsClient};

use super::rpc::{self, Request, Response};
use super::{NodeId, TypeConfig, WriteError};

/// How long to wait before calling an unreachable peer again (openraft's default is 500 ms).
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

/// The peers of one node, by id.
pub(super) struct Network {
    id: NodeId,
    cluster_id: String,
    tls: Option<TlsClient>,
    peers: Arc<Mutex<HashMap<NodeId, Arc<Peer>>>>,
}

pub(super) struct Peer {
    pub(super) addr: String,
    cluster_id: String,
    /// The controller listener is SSL: dialled over TLS.
    tls: Option<TlsClient>,
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// The peer refused this node's cluster already: said once, not at every retry.
    refusal_logged: std::sync::atomic::AtomicBool,
}

struct Connection {
    input: BufReader<ReadHalf<Box<dyn Stream>>>,
    output: BufWriter<WriteHalf<Box<dyn Stream>>>,
}

/// openraft's client for one peer.
pub(super) struct PeerClient {
    id: NodeId,
    target: NodeId,
    peer: Arc<Peer>,
}

/// Why a call failed, as openraft tells these apart: back off, or retry at once.
enum CallError {
    Unreachable(std::io::Error),
    Timeout(Duration),
    Network(anyhow::Error),
    /// The peer belongs to another cluster.
    Refused(WriteError),
}

impl Network {
    pub(super) fn new(id: NodeId, cluster_id: String, tls: Option<TlsClient>) -> Network {
        Network { id, cluster_id, tls, peers: Arc::default() }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let mut peers = self.peers.lock().expect("peers lock");
        let peer = peers.entry(target).or_insert_with(|| Arc::new(Peer::new(node.addr.clone(), self.cluster_id.clone(), self.tls.clone())));
        if peer.addr != node.addr {
            // The peer moved (a new membership): its old connection goes with the old entry.
            *peer = Arc::new(Peer::new(node.addr.clone(), self.cluster_id.clone(), self.tls.clone()));
        }
        PeerClient { id: self.id, target, peer: peer.clone() }
    }
}

impl Peer {
    pub(super) fn new(addr: String, cluster_id: String, tls: Option<TlsClient>) -> Peer {
        Peer { addr, cluster_id, tls, connection: Default::default(), refusal_logged: Default::default() }
    }

    /// A call outside openraft (a broker's to the controller).
    pub(super) async fn request(&self, request: &Request, timeout: Duration) -> Result<Response, WriteError> {
        self.call(request, timeout).await.map_err(|e| match e {
            CallError::Unreachable(e) => WriteError::Unreachable(format!("{}: {e}", self.addr)),
            CallError::Timeout(t) => WriteError::Unreachable(format!("{}: no answer within {t:?}", self.addr)),
            CallError::Network(e) => WriteError::Unreachable(format!("{}: {e:#}", self.addr)),
            CallError::Refused(e) => e,
        })
    }

    /// A new connection, greeted with this node's cluster id.
    async fn connect(&self) -> Result<Connection, CallError> {
        let socket = TcpStream::connect(&self.addr).await.map_err(CallError::Unreachable)?;
        socket.set_nodelay(true).map_err(|e| CallError::Network(e.into()))?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(socket),
            Some(tls) => {
                let name = server_name(&self.addr).map_err(|e| CallError::Network(anyhow!(e)))?;
                Box::new(tls.connector().connect(name, socket).await.map_err(|e| CallError::Network(anyhow!("TLS handshake with {}: {e}", self.addr)))?)
            }
        };
        let (input, output) = tokio::io::split(stream);
        let mut connection = Connection { input: BufReader::new(input), output: BufWriter::new(output) };
        match connection.exchange(&Request::Hello { cluster_id: self.cluster_id.clone() }).await? {
            Response::Hello(Ok(())) => Ok(connection),
            Response::Hello(Err(refused)) => {
                if !self.refusal_logged.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::error!(peer = %self.addr, "the controller quorum peer refused this node: {refused}");
                }
                Err(CallError::Refused(refused))
            }
            other => Err(CallError::Network(anyhow!("the peer answered Hello with {other:?}"))),
        }
    }

    /// One call on the peer's connection; on any failure the connection is dropped, since a
    /// late answer would otherwise be read as the next call's.
    async fn call(&self, request: &Request, timeout: Duration) -> Result<Response, CallError> {
        let mut slot = self.connection.lock().await;
        let outcome = tokio::time::timeout(timeout, async {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            slot.as_mut().expect("connected above").exchange(request).await
        })
        .await
        .unwrap_or(Err(CallError::Timeout(timeout)));
        if outcome.is_err() {
            *slot = None;
        }
        outcome
    }
}

impl Connection {
    /// One request and its answer.
    async fn exchange(&mut self, request: &Request) -> Result<Response, CallError> {
        rpc::write_frame(&mut self.output, request).await.map_err(CallError::Network)?;
        match rpc::read_frame::<Response>(&mut self.input).await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(CallError::Network(anyhow!("the peer closed the connection"))),
            Err(e) => Err(CallError::Network(e)),
        }
    }
}

impl PeerClient {
    async fn call<E: std::error::Error>(&self, action: RPCTypes, request: Request, option: &RPCOption) -> Result<Response, RPCError<NodeId, BasicNode, E>> {
        self.peer.call(&request, option.hard_ttl()).await.map_err(|e| match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout }),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&std::io::Error::other(format!("{} ({}): {e:#}", self.target, self.peer.addr)))),
            CallError::Refused(e) => RPCError::Network(NetworkError::new(&std::io::Error::other(format!("{} ({}): {e}", self.target, self.peer.addr)))),
        })
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }

    fn mismatch<E: std::error::Error>(&self, action: RPCTypes) -> RPCError<NodeId, BasicNode, E> {
        let e = std::io::Error::other(format!("{} answered a {action} call with another kind of response", self.target));
        RPCError::Network(NetworkError::new(&e))
    }
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(&mut self, rpc: AppendEntriesRequest<TypeConfig>, option: RPCOption) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(RPCTypes::AppendEntries, Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch(RPCTypes::AppendEntries)),
        }
    }

    async fn install_snapshot(&mut self, rpc: InstallSnapshotRequest<TypeConfig>, option: RPCOption) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(RPCTypes::InstallSnapshot, Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch(RPCTypes::InstallSnapshot)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(RPCTypes::Vote, Request::Vote(rpc), &option).await? {
            Response::Vote(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch(RPCTypes::Vote)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}
