//! One ZooKeeper client connection: the connect handshake, then requests answered in order,
//! with watch events written between them as they fire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::watch;

use super::jute::ConnectRequest;
use super::session::Attachment;
use super::ZooKeeper;

/// ZooKeeper's default jute.maxbuffer: no frame may be larger.
const MAX_FRAME: usize = 1 << 20;
/// Memory for a frame is reserved as its bytes arrive, at most this much ahead.
const READ_STEP: usize = 64 * 1024;
/// A connection that has not sent its connect request by then is closed. (After it, the
/// session timeout bounds how long a silent client is kept.)
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame length {0} is outside 0..={MAX_FRAME} (jute.maxbuffer)")]
    BadLength(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Length-prefixed frames from a stream. Bytes read stay buffered, so a `next` abandoned in a
/// `select!` loses nothing.
struct Frames<R> {
    reader: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Frames<R> {
    fn new(reader: R) -> Self {
        Frames { reader, buf: BytesMut::new() }
    }

    /// The next frame; `None` at a clean end of stream between frames.
    async fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            let wanted = match self.buf.get(..4) {
                Some(prefix) => {
                    let len = i32::from_be_bytes(prefix.try_into().expect("4 bytes"));
                    let size = usize::try_from(len).ok().filter(|&n| n <= MAX_FRAME).ok_or(FrameError::BadLength(len))?;
                    if self.buf.len() >= 4 + size {
                        self.buf.advance(4);
                        return Ok(Some(self.buf.split_to(size).freeze()));
                    }
                    4 + size - self.buf.len()
                }
                None => 4 - self.buf.len(),
            };
            self.buf.reserve(wanted.min(READ_STEP));
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated) };
            }
        }
    }
}

fn log_read_error(peer: SocketAddr, e: &FrameError) {
    match e {
        FrameError::Io(e) => tracing::debug!(%peer, "connection dropped: {e}"),
        e => tracing::warn!(%peer, "closing connection: {e}"),
    }
}

async fn send(write: &mut OwnedWriteHalf, peer: SocketAddr, frame: &[u8]) -> bool {
    match write.write_all(frame).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%peer, "cannot write: {e}");
            false
        }
    }
}

pub(super) async fn run(zk: Arc<ZooKeeper>, stream: TcpStream, peer: SocketAddr, connection: u64, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut frames = Frames::new(read);
    let first = tokio::select! {
        first = tokio::time::timeout(HANDSHAKE_TIMEOUT, frames.next()) => match first {
            Ok(first) => first,
            Err(_) => return tracing::warn!(%peer, "closing connection: no connect request within {HANDSHAKE_TIMEOUT:?}"),
        },
        _ = shutdown.changed() => return,
    };
    let request = match first.map(|f| f.map(|f| ConnectRequest::decode(&f))) {
        Ok(Some(Ok(request))) => request,
        Ok(Some(Err(e))) => return tracing::warn!(%peer, "closing connection: bad connect request: {e}"),
        Ok(None) => return,
        Err(e) => return log_read_error(peer, &e),
    };
    let (tx, mut events) = unbounded_channel();
    let session = match zk.connect(&request, Attachment { connection, frames: tx }).await {
        Ok((session, response)) => {
            if !send(&mut write, peer, &response).await {
                zk.disconnect(session, connection).await;
                return;
            }
            session
        }
        Err(response) => {
            if let Some(response) = response {
                send(&mut write, peer, &response).await;
            }
            return;
        }
    };
    loop {
        tokio::select! {
            frame = frames.next() => {
                let frame = match frame {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        log_read_error(peer, &e);
                        break;
                    }
                };
                let handled = match zk.handle(session, &frame).await {
                    Ok(handled) => handled,
                    Err(e) => {
                        tracing::warn!(%peer, "closing connection: malformed request: {e}");
                        break;
                    }
                };
                // Events the request caused go out before its reply, as ZooKeeper orders them.
                let mut written = true;
                while let (true, Ok(event)) = (written, events.try_recv()) {
                    written = send(&mut write, peer, &event).await;
                }
                if !written || !send(&mut write, peer, &handled.reply).await || handled.close {
                    break;
                }
            }
            event = events.recv() => match event {
                Some(event) => {
                    if !send(&mut write, peer, &event).await {
                        break;
                    }
                }
                // The session ended (expired, or resumed on another connection).
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    zk.disconnect(session, connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_bounded_and_split() {
        let mut input: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 9, 0, 0, 0, 5, 1];
        let mut frames = Frames::new(&mut input);
        assert_eq!(frames.next().await.unwrap().unwrap().as_ref(), &[7, 8]);
        assert_eq!(frames.next().await.unwrap().unwrap().as_ref(), &[9]);
        assert!(matches!(frames.next().await, Err(FrameError::Truncated)));
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(Frames::new(&mut huge).next().await, Err(FrameError::BadLength(_))));
        let mut empty: &[u8] = &[];
        assert!(Frames::new(&mut empty).next().await.unwrap().is_none());
    }
}
