//! One client connection: read a frame, answer it, write the response, in request order.
//!
//! Requests on one connection are handled one at a time, as Kafka does; bytes of the next
//! pipelined requests wait in the frame buffer or in the socket, which is the backpressure
//! on a client that sends without reading. A client over its quota is muted the same way:
//! its next request is not read until the throttle has passed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::frame::{FrameReader, ReadError};
use super::Limits;
use crate::api::sasl::{AuthStep, SaslSession};
use crate::api::{Api, Origin};

/// Largest frame before authentication (Kafka's sasl.server.max.receive.size default), so an
/// unauthenticated client cannot make the broker buffer a large request.
const MAX_SASL_RECEIVE: usize = 512 * 1024;

pub struct Connection {
    pub origin: Origin,
    /// On a SASL listener: the client's authentication, and its re-authentications.
    pub sasl: Option<SaslSession>,
    pub api: Arc<Api>,
    pub limits: Arc<Limits>,
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("the client took no response bytes for {0:?} (connections.max.idle.ms)")]
    Stalled(Duration),
    #[error("cannot write response: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one response. Only progress counts: a slow reader that keeps taking bytes is served
/// to the end, one that takes none for `idle` is given up on, as Kafka closes a connection
/// idle for connections.max.idle.ms whatever it has left to send.
async fn write_response<W: AsyncWrite + Unpin>(write: &mut W, mut response: &[u8], idle: Duration) -> Result<(), WriteError> {
    while !response.is_empty() {
        match tokio::time::timeout(idle, write.write(response)).await {
            Err(_) => return Err(WriteError::Stalled(idle)),
            Ok(Ok(0)) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
            Ok(Ok(n)) => response = &response[n..],
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    // TLS: a write that finds the socket full leaves the last records in rustls's buffer,
    // sent only by the next write; the client would wait for them. (A no-op on plain TCP.)
    match tokio::time::timeout(idle, write.flush()).await {
        Err(_) => Err(WriteError::Stalled(idle)),
        Ok(result) => Ok(result?),
    }
}

impl Connection {
    /// Serves a plain TCP connection.
    pub async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        self.serve(read, write).await
    }

    /// Completes the TLS handshake (within connections.max.idle.ms), then serves the
    /// connection; a client certificate names its principal.
    pub async fn run_tls(mut self, stream: TcpStream, tls: &crate::security::tls::TlsServer) {
        let _ = stream.set_nodelay(true);
        let peer = self.origin.peer;
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(self.limits.idle_timeout, tls.acceptor().accept(stream)) => handshake,
            _ = self.shutdown.changed() => return,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%peer, listener = %self.origin.listener, "closing connection: TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, listener = %self.origin.listener, "closing connection: no TLS handshake within {:?} (connections.max.idle.ms)", self.limits.idle_timeout);
                return;
            }
        };
        if let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
            match tls.principal(cert) {
                Ok(principal) => {
                    tracing::debug!(%peer, "TLS client certificate of {principal}");
                    self.origin.principal = std::sync::Arc::new(principal);
                }
                Err(e) => {
                    tracing::info!(%peer, listener = %self.origin.listener, "closing connection: {e}");
                    return;
                }
            }
        }
        let (read, write) = tokio::io::split(stream);
        self.serve(read, write).await
    }

    async fn serve<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut self, mut read: R, mut write: W) {
        let peer = self.origin.peer;
        let mut frames = FrameReader::default();
        loop {
            frames.shrink_if_idle();
            let max_frame = if self.sasl.as_ref().is_some_and(|s| !s.authenticated()) { self.limits.max_request_bytes.min(MAX_SASL_RECEIVE) } else { self.limits.max_request_bytes };
            // The idle clock covers the wait for a whole request, so a client trickling bytes
            // (slowloris) is cut off just like a silent one.
            let frame = tokio::select! {
                frame = tokio::time::timeout(self.limits.idle_timeout, frames.next(&mut read, max_frame)) => match frame {
                    Ok(frame) => frame,
                    Err(_) => {
                        tracing::info!(%peer, "closing connection: no complete request for {:?} (connections.max.idle.ms)", self.limits.idle_timeout);
                        break;
                    }
                },
                _ = self.shutdown.changed() => break,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(ReadError::Io(e)) => {
                    tracing::debug!(%peer, "connection dropped: {e}");
                    break;
                }
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    break;
                }
            };
            let frame = match self.sasl.as_mut() {
                None => frame,
                Some(session) => {
                    let step = tokio::select! {
                        step = session.authenticate(frame, peer) => step,
                        _ = self.shutdown.changed() => break,
                    };
                    match step {
                        AuthStep::Pass(frame) => frame,
                        AuthStep::Reply(reply) => match self.send(&mut write, &reply).await {
                            true => continue,
                            false => break,
                        },
                        AuthStep::Authenticated { reply, principal, again } => {
                            if again {
                                tracing::debug!(%peer, listener = %self.origin.listener, "re-authenticated as {principal}");
                            } else {
                                tracing::info!(%peer, listener = %self.origin.listener, "authenticated as {principal}");
                                self.origin.principal = std::sync::Arc::new(principal);
                            }
                            match self.send(&mut write, &reply).await {
                                true => continue,
                                false => break,
                            }
                        }
                        AuthStep::Refuse(reply, reason) => {
                            tracing::info!(%peer, listener = %self.origin.listener, "closing connection: {reason}");
                            if let Some(reply) = reply {
                                self.send(&mut write, &reply).await;
                            }
                            break;
                        }
                    }
                }
            };
            let slot = tokio::select! {
                slot = self.limits.request_slot() => slot,
                _ = self.shutdown.changed() => break,
            };
            // A request parked in a long poll or a rebalance must not hold up shutdown.
            let handled = tokio::select! {
                handled = self.api.handle(frame, &self.origin, Some(slot)) => handled,
                _ = self.shutdown.changed() => break,
            };
            let answer = match handled {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    break;
                }
            };
            if answer.throttle_first && !self.mute(answer.throttle).await {
                break;
            }
            if let Some(response) = &answer.response {
                if !self.send(&mut write, response).await {
                    break;
                }
            }
            if !answer.throttle_first && !self.mute(answer.throttle).await {
                break;
            }
        }
    }

    /// Reads no request for `throttle` (a client over its quota, KIP-219); false on shutdown.
    async fn mute(&mut self, throttle: Duration) -> bool {
        if throttle.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(throttle) => true,
            _ = self.shutdown.changed() => false,
        }
    }

    /// Writes one response; false when the connection is to be closed (shutdown, a stalled
    /// or gone client).
    async fn send<W: AsyncWrite + Unpin>(&mut self, write: &mut W, response: &[u8]) -> bool {
        let peer = self.origin.peer;
        let written = tokio::select! {
            written = write_response(write, response, self.limits.idle_timeout) => written,
            _ = self.shutdown.changed() => return false,
        };
        match written {
            Ok(()) => true,
            Err(e @ WriteError::Stalled(_)) => {
                tracing::info!(%peer, "closing connection: {e}");
                false
            }
            Err(e) => {
                tracing::debug!(%peer, "{e}");
                false
            }
        }
    }
}
