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
use std::sync::{Arc, Mutex, MutexGuard};
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
    let zk = Arc::new(ZooKeeper::open(cluster, meta)?);
    tracing::info!("ZooKeeper protocol listening on {bound}");
    Ok((bound, tokio::spawn(serve(zk, listener, shutdown))))
}

impl ZooKeeper {
    fn open(cluster: Arc<Cluster>, meta: Meta) -> Result<ZooKeeper> {
        let tree = tree::Tree::load(meta).context("loading znodes")?;
        let view = kafka::KafkaView::new(&cluster);
        let mut state = State { tree, view, sessions: Sessions::new() };
        state.sync_view(&cluster);
        Ok(ZooKeeper { cluster, state: Mutex::new(state) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("zookeeper state lock")
    }

    /// Opens or resumes the session the connect request asks for. `Err` carries the answer for
    /// a refused connection (an expired session), if it gets one before being closed.
    fn connect(&self, request: &ConnectRequest, attachment: Attachment) -> Result<(i64, Vec<u8>), Option<Vec<u8>>> {
        let mut state = self.lock();
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

    fn handle(&self, session: i64, frame: &[u8]) -> Result<Handled, DecodeError> {
        let (xid, request) = Request::decode(frame)?;
        Ok(self.lock().handle(&self.cluster, session, xid, request))
    }

    fn disconnect(&self, session: i64, connection: u64) {
        self.lock().sessions.detach(session, connection);
    }

    fn tick(&self) {
        let mut state = self.lock();
        state.sync_view(&self.cluster);
        for id in state.sessions.expired(Instant::now()) {
            tracing::info!("session {id:#x} expired");
            state.close_session(id);
        }
        state.expire_ttl_nodes(crate::api::now_ms());
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
            _ = tick.tick() => zk.tick(),
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
