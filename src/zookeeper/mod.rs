//! An optional ZooKeeper wire-protocol listener, so tools that manage Kafka 2.x through
//! ZooKeeper (`kafka-topics --zookeeper ...`) work against Gregor.
//!
//! Gregor's topics appear as the znodes Kafka 2.x kept (`/brokers/topics/<t>`,
//! `/config/topics/<t>`, ...), and writing those znodes creates, alters or deletes topics
//! (`kafka`). Every other path is a small persisted znode store with ZooKeeper's semantics:
//! sessions, ephemeral and sequential nodes, versions, watches, multi (`ops`, `tree`).
//! All state sits behind one lock, which gives the single order of changes ZooKeeper promises.
//!
//! Pieces: `jute` (wire encoding), `tree` (nodes, transactions,
//! storage), `session` (sessions, watches), `kafka` (the view of Gregor's metadata),
//! `ops` (request semantics), `connection` (one client socket).

mod connection;
mod jute;
mod kafka;
mod ops;
mod session;
mod tree;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::cluster::Cluster;
use crate::log::Meta;
use jute::{ConnectRequest, DecodeError, Request};
use ops::{Handled, State};
use session::{negotiate_timeout, Attachment, Sessions};

/// How often sessions and TTL nodes are checked for expiry and Kafka-side topic changes are
/// pushed to watchers.
const TICK: Duration = Duration::from_millis(200);

struct ZooKeeper {
    cluster: Arc<Cluster>,
    state: Mutex<State>,
}

/// Binds the listener and starts serving; the task ends when `shutdown` turns true.
pub async fn start(addr: SocketAddr, cluster: Arc<Cluster>, meta: Meta, shutdown: watch::Receiver<bool>) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for ZooKeeper clients on {addr}"))?;
    let bound = listener.local_addr()?;
    let zk = Arc::new(ZooKeeper::open(cluster, meta).await?);
    tracing::info!("ZooKeeper protocol listening on {bound}");
    Ok((bound, tokio::spawn(serve(zk, listener, shutdown))))
}

impl ZooKeeper {
    async fn open(cluster: Arc<Cluster>, meta: Meta) -> Result<ZooKeeper> {
        // Loading reads the store: off the runtime's threads.
        let tree = tokio::task::spawn_blocking(move || tree::Tree::load(meta)).await?.context("loading znodes")?;
        let view = kafka::KafkaView::new(&cluster);
        let mut state = State { tree, view, sessions: Sessions::new() };
        state.sync_view(&cluster).await;
        Ok(ZooKeeper { cluster, state: Mutex::new(state) })
    }

    /// Opens or resumes the session the connect request asks for. `Err` carries the answer for
    /// a refused connection (an expired session), if it gets one before being closed.
    async fn connect(&self, request: &ConnectRequest, attachment: Attachment) -> Result<(i64, Vec<u8>), Option<Vec<u8>>> {
        let mut state = self.state.lock().await;
        if request.last_zxid_seen > state.tree.zxid() {
            // The client has seen a newer state than this one (another server's, or a wiped
            // data directory's): ZooKeeper refuses such a client rather than go back in time.
            tracing::warn!(
                "refusing a client that has seen zxid {:#x}; the newest here is {:#x}",
                request.last_zxid_seen,
                state.tree.zxid()
            );
            return Err(None);
        }
        let timeout = negotiate_timeout(request.timeout_ms);
        if request.session_id == 0 {
            let (id, passwd) = state.sessions.open(timeout, attachment);
            tracing::debug!("session {id:#x} opened, timeout {timeout} ms");
            return Ok((id, jute::connect_response(timeout, id, &passwd, request.read_only)));
        }
        if state.sessions.resume(request.session_id, &request.passwd, timeout, attachment) {
            let id = request.session_id;
            return Ok((id, jute::connect_response(timeout, id, &request.passwd, request.read_only)));
        }
        Err(Some(jute::connect_response(0, 0, &[0; 16], request.read_only)))
    }

    async fn handle(&self, session: i64, frame: &[u8]) -> Result<Handled, DecodeError> {
        let (xid, request) = Request::decode(frame)?;
        Ok(self.state.lock().await.handle(&self.cluster, session, xid, request).await)
    }

    async fn disconnect(&self, session: i64, connection: u64) {
        self.state.lock().await.sessions.detach(session, connection);
    }

    async fn tick(&self) {
        let mut state = self.state.lock().await;
        state.sync_view(&self.cluster).await;
        for id in state.sessions.expired(Instant::now()) {
            tracing::info!("session {id:#x} expired");
            state.close_session(id).await;
        }
        state.expire_ttl_nodes(crate::api::now_ms()).await;
    }
}

/// Accepts connections until shutdown, then waits for them to finish.
async fn serve(zk: Arc<ZooKeeper>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_connection = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    next_connection += 1;
                    connections.spawn(connection::run(zk.clone(), stream, peer, next_connection, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tick.tick() => zk.tick().await,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a connection task panicked: {e}");
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
