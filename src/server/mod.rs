//! TCP listener and per-connection tasks.

mod connection;
mod frame;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::api::{Api, Origin};
use crate::config::BrokerSettings;
use crate::security::ListenerSecurity;

/// Per-connection and per-broker limits, from Kafka's config keys.
pub struct Limits {
    /// socket.request.max.bytes
    pub max_request_bytes: usize,
    /// connections.max.idle.ms, for requests that do not arrive and responses not taken.
    pub idle_timeout: Duration,
    /// Read for max.connections and max.connections.per.ip, which may change at run time.
    settings: Arc<BrokerSettings>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// queued.max.requests: a request holds one while it is handled.
    request_slots: Arc<Semaphore>,
}

impl Limits {
    pub fn new(settings: Arc<BrokerSettings>) -> Limits {
        let config = settings.current();
        Limits {
            max_request_bytes: config.socket_request_max_bytes,
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
            open: Mutex::new((0, HashMap::new())),
            request_slots: Arc::new(Semaphore::new(config.queued_max_requests.min(Semaphore::MAX_PERMITS))),
            settings,
        }
    }

    /// Waits for a queue slot (queued.max.requests).
    async fn request_slot(&self) -> OwnedSemaphorePermit {
        self.request_slots.clone().acquire_owned().await.expect("the semaphore is never closed")
    }

    /// Counts a new connection, or says which limit it would break.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<OpenConnection, &'static str> {
        let config = self.settings.current();
        let mut open = self.open.lock().expect("limits lock");
        let per_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= config.max_connections {
            return Err("max.connections");
        }
        if per_ip >= config.max_connections_per_ip {
            return Err("max.connections.per.ip");
        }
        open.0 += 1;
        open.1.insert(ip, per_ip + 1);
        Ok(OpenConnection { limits: self.clone(), ip })
    }
}

/// Uncounts its connection when dropped.
struct OpenConnection {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("limits lock");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on the listener called `name` until `shutdown` turns true, then waits
/// for the open connections to close: each drops the request it is on unanswered (a parked
/// long poll would otherwise hold the stop up), so its client retries elsewhere or later.
pub async fn serve(listener: TcpListener, name: Arc<str>, security: ListenerSecurity, api: Arc<Api>, limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match limits.admit(peer.ip()) {
                    Ok(counted) => {
                        let origin = Origin { peer, listener: name.clone(), principal: Arc::new(crate::security::Principal::anonymous()) };
                        let sasl = security.sasl.clone().map(crate::api::sasl::SaslSession::new);
                        let conn = connection::Connection { origin, sasl, api: api.clone(), limits: limits.clone(), shutdown: shutdown.clone() };
                        let gauge = api.metrics.connection(&name);
                        let tls = security.tls.clone();
                        connections.spawn(async move {
                            match tls {
                                None => conn.run(stream).await,
                                Some(tls) => conn.run_tls(stream, &tls).await,
                            }
                            drop((counted, gauge));
                        });
                    }
                    Err(limit) => tracing::warn!(%peer, "refusing connection: {limit} reached"),
                },
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
