//! TCP listener and per-connection tasks.

mod connection;
mod frame;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;

/// Accepts connections until `shutdown` turns true, then waits for the open connections to
/// finish the request they are on.
pub async fn serve(listener: TcpListener, api: Arc<Api>, max_request_bytes: usize, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = connection::Connection::new(stream, peer, api.clone(), max_request_bytes, shutdown.clone());
                    connections.spawn(conn.run());
                }
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a connection task panicked; other connections are unaffected: {e}");
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
