//! Request frames: a big-endian i32 size, then that many bytes.
//!
//! The buffer starts empty and grows only as bytes arrive, so an idle connection costs almost
//! nothing and a size field alone never makes the broker allocate what it claims.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest step the buffer grows by per read.
const READ_STEP: usize = 64 * 1024;
/// Room reserved while waiting for a size field: enough for most small requests at once.
const SMALL_READ: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("request size {size} is outside 0..={max} (socket.request.max.bytes)")]
    BadSize { size: i64, max: usize },
    #[error("connection closed in the middle of a {size}-byte request after {got} bytes")]
    Truncated { size: usize, got: usize },
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    /// Reads one frame. `Ok(None)` is a clean end of stream between frames.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, reader: &mut R, max: usize) -> Result<Option<Bytes>, ReadError> {
        loop {
            let want = match self.buf.get(..4) {
                Some(size) => {
                    let size = i32::from_be_bytes(size.try_into().expect("4 bytes"));
                    let size = usize::try_from(size).ok().filter(|&s| s <= max).ok_or(ReadError::BadSize { size: size as i64, max })?;
                    if self.buf.len() >= 4 + size {
                        self.buf.advance(4);
                        return Ok(Some(self.buf.split_to(size).freeze()));
                    }
                    (4 + size - self.buf.len()).min(READ_STEP)
                }
                None => SMALL_READ,
            };
            self.buf.reserve(want);
            if reader.read_buf(&mut self.buf).await? == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    got => Err(ReadError::Truncated { size: self.claimed().unwrap_or(4), got }),
                };
            }
        }
    }

    /// The size the frame being read claims, once its size field is in.
    fn claimed(&self) -> Option<usize> {
        self.buf.get(..4).map(|s| i32::from_be_bytes(s.try_into().expect("4 bytes")).max(0) as usize)
    }

    /// Drops a large idle buffer so a quiet connection holds little memory.
    pub fn shrink_if_idle(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > READ_STEP {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_sizes_and_truncation() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 5, 9];
        let mut frames = FrameReader::default();
        assert_eq!(frames.next(&mut input, 100).await.unwrap().unwrap().as_ref(), &[1, 2, 3]);
        assert!(matches!(frames.next(&mut input, 100).await, Err(ReadError::Truncated { size: 5, got: 5 })));
        let mut empty: &[u8] = &[];
        assert!(FrameReader::default().next(&mut empty, 100).await.unwrap().is_none());
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(FrameReader::default().next(&mut huge, 100).await, Err(ReadError::BadSize { .. })));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(FrameReader::default().next(&mut negative, 100).await, Err(ReadError::BadSize { size: -1, .. })));
    }

    #[tokio::test]
    async fn a_size_claim_alone_allocates_little() {
        // 100 MiB claimed, 10 bytes sent.
        let mut input: &[u8] = &[0x06, 0x40, 0, 0, 1, 2, 3, 4, 5, 6];
        let mut frames = FrameReader::default();
        assert!(matches!(frames.next(&mut input, 200 << 20).await, Err(ReadError::Truncated { got: 10, .. })));
        assert!(frames.buf.capacity() <= READ_STEP + SMALL_READ);
    }
}
