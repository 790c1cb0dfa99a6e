//! The broker's side of its lifecycle (Kafka's BrokerLifecycleManager): register with the
//! active controller, then heartbeat every `broker.heartbeat.interval.ms` with how far this
//! node has applied the metadata log; the controller unfences the broker once it caught up.
//! The first unfencing since the start is the broker's initial catch-up: only then does its
//! metadata image say who leads now, rather than what it last knew before it stopped.

use std::time::Duration;

use tokio::sync::watch;

use super::controller::{BrokerHeartbeat, Controller, ControllerClient, RegisterBroker, WriteError};

/// How often a broker not yet unfenced tries again.
const STARTING_RETRY: Duration = Duration::from_millis(100);

pub struct BrokerLifecycle {
    client: ControllerClient,
    local: Controller,
    request: RegisterBroker,
    registered: bool,
    fenced: bool,
    /// Set when the controller refuses this node for good (another cluster's id).
    failure: watch::Sender<Option<String>>,
    /// Set at the first unfencing: the metadata image has caught up with the log.
    caught_up: watch::Sender<bool>,
}

impl BrokerLifecycle {
    pub fn new(
        client: ControllerClient,
        local: Controller,
        request: RegisterBroker,
        failure: watch::Sender<Option<String>>,
        caught_up: watch::Sender<bool>,
    ) -> BrokerLifecycle {
        BrokerLifecycle { client, local, request, registered: false, fenced: true, failure, caught_up }
    }

    /// Whether the controller has unfenced this broker.
    pub fn is_unfenced(&self) -> bool {
        self.registered && !self.fenced
    }

    /// One round: registers if not registered yet, then heartbeats. `false` once the node
    /// must stop.
    pub async fn step(&mut self) -> bool {
        let id = self.request.registration.id;
        if !self.registered {
            match self.client.register(self.request.clone()).await {
                Ok(()) => self.registered = true,
                Err(e @ WriteError::WrongCluster { .. }) => {
                    tracing::error!(broker = id, "registration refused: {e}");
                    self.failure.send_replace(Some(e.to_string()));
                    return false;
                }
                Err(e) => {
                    tracing::debug!(broker = id, "registration not done yet: {e}");
                    return true;
                }
            }
        }
        let heartbeat = BrokerHeartbeat { id, applied_index: self.local.status().last_applied_index, want_shutdown: false };
        match self.client.heartbeat(heartbeat).await {
            Ok(reply) if reply.unknown => self.registered = false,
            Ok(reply) => {
                if self.fenced && !reply.fenced {
                    tracing::info!(broker = id, "unfenced by the controller");
                    self.caught_up.send_replace(true);
                } else if !self.fenced && reply.fenced {
                    tracing::warn!(broker = id, "fenced by the controller (heartbeats were late)");
                }
                self.fenced = reply.fenced;
            }
            Err(e) => tracing::debug!(broker = id, "heartbeat not answered: {e}"),
        }
        true
    }

    /// The named background task: a round every `interval_ms` (more often until unfenced) until shutdown, then a last
    /// heartbeat asking to be fenced, bounded by `shutdown_timeout`.
    pub async fn run(mut self, interval_ms: u64, shutdown_timeout: Duration, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_millis(interval_ms);
        loop {
            // Until unfenced, rounds come quickly: the quorum may just be electing, and
            // catching up takes milliseconds.
            let pause = if self.registered && !self.fenced { interval } else { interval.min(STARTING_RETRY) };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => break,
            }
            // A round may wait on a slow controller; shutdown does not.
            let stepped = tokio::select! {
                stepped = self.step() => stepped,
                _ = shutdown.changed() => break,
            };
            if !stepped {
                return;
            }
        }
        if self.registered && !self.fenced {
            let id = self.request.registration.id;
            let heartbeat = BrokerHeartbeat { id, applied_index: self.local.status().last_applied_index, want_shutdown: true };
            match tokio::time::timeout(shutdown_timeout, self.client.heartbeat(heartbeat)).await {
                Ok(Ok(_)) => tracing::info!(broker = id, "fenced for shutdown"),
                Ok(Err(e)) => tracing::warn!(broker = id, "controlled shutdown failed, the session will time out instead: {e}"),
                Err(_) => tracing::warn!(broker = id, "controlled shutdown timed out after {shutdown_timeout:?}; the session will time out instead"),
            }
        }
    }
}
