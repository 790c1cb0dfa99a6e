//! One client connection: read a frame, answer it, write the response, in request order.
//!
//! Requests on one connection are handled one at a time, as Kafka does; bytes of the next
//! pipelined requests wait in the frame buffer or in the socket, which is the backpressure
//! on a client that sends without reading.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::frame::{FrameReader, ReadError};
use super::Limits;
use crate::api::{Api, Origin};

pub struct Connection {
    pub stream: TcpStream,
    pub origin: Origin,
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
async fn write_response(write: &mut OwnedWriteHalf, mut response: &[u8], idle: Duration) -> Result<(), WriteError> {
    while !response.is_empty() {
        match tokio::time::timeout(idle, write.write(response)).await {
            Err(_) => return Err(WriteError::Stalled(idle)),
            Ok(Ok(0)) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
            Ok(Ok(n)) => response = &response[n..],
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Connection {
    pub async fn run(mut self) {
        let _ = self.stream.set_nodelay(true);
        let peer = self.origin.peer;
        let (mut read, mut write) = self.stream.into_split();
        let mut frames = FrameReader::default();
        loop {
            frames.shrink_if_idle();
            // The idle clock covers the wait for a whole request, so a client trickling bytes
            // (slowloris) is cut off just like a silent one.
            let frame = tokio::select! {
                frame = tokio::time::timeout(self.limits.idle_timeout, frames.next(&mut read, self.limits.max_request_bytes)) => match frame {
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
            let slot = tokio::select! {
                slot = self.limits.request_slot() => slot,
                _ = self.shutdown.changed() => break,
            };
            // A request parked in a long poll or a rebalance must not hold up shutdown.
            let handled = tokio::select! {
                handled = self.api.handle(frame, &self.origin, Some(slot)) => handled,
                _ = self.shutdown.changed() => break,
            };
            match handled {
                Ok(Some(response)) => {
                    let written = tokio::select! {
                        written = write_response(&mut write, &response, self.limits.idle_timeout) => written,
                        _ = self.shutdown.changed() => break,
                    };
                    match written {
                        Ok(()) => {}
                        Err(e @ WriteError::Stalled(_)) => {
                            tracing::info!(%peer, "closing connection: {e}");
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, "{e}");
                            break;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    break;
                }
            }
        }
    }
}
