//! One client connection: read a frame, answer it, write the response, in request order.
//!
//! Requests on one connection are handled one at a time, as Kafka does; the buffered reader
//! already holds the next pipelined requests while one is being answered.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::frame::{read_frame, ReadError};
use crate::api::Api;

pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    max_request_bytes: usize,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, api: Arc<Api>, max_request_bytes: usize, shutdown: watch::Receiver<bool>) -> Self {
        Connection { stream, peer, api, max_request_bytes, shutdown }
    }

    pub async fn run(mut self) {
        let _ = self.stream.set_nodelay(true);
        let peer = self.peer;
        let (read, mut write) = self.stream.into_split();
        let mut reader = BufReader::with_capacity(64 * 1024, read);
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader, self.max_request_bytes) => frame,
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
            // A request parked in a long poll or a rebalance must not hold up shutdown.
            let handled = tokio::select! {
                handled = self.api.handle(frame, peer) => handled,
                _ = self.shutdown.changed() => break,
            };
            match handled {
                Ok(Some(response)) => {
                    if let Err(e) = write.write_all(&response).await {
                        tracing::debug!(%peer, "cannot write response: {e}");
                        break;
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
