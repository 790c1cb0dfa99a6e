//! Request frames: a big-endian i32 size, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Memory is reserved as bytes arrive, in steps of at most this much, so a size field alone
/// never makes the broker allocate what it claims.
const READ_STEP: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("request size {size} is outside 0..={max} (socket.request.max.bytes)")]
    BadSize { size: i64, max: usize },
    #[error("connection closed in the middle of a {size}-byte request after {got} bytes")]
    Truncated { size: usize, got: usize },
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> Result<Option<Bytes>, ReadError> {
    let mut size_bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut size_bytes[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(ReadError::Truncated { size: 4, got }) };
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_bytes);
    let size = usize::try_from(size).ok().filter(|&s| s <= max).ok_or(ReadError::BadSize { size: size as i64, max })?;
    let mut buf = BytesMut::with_capacity(size.min(READ_STEP));
    while buf.len() < size {
        let want = (size - buf.len()).min(READ_STEP);
        buf.reserve(want);
        let n = reader.take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(ReadError::Truncated { size, got: buf.len() });
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_sizes_and_truncation() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 5, 9];
        assert_eq!(read_frame(&mut input, 100).await.unwrap().unwrap().as_ref(), &[1, 2, 3]);
        assert!(matches!(read_frame(&mut input, 100).await, Err(ReadError::Truncated { size: 5, got: 1 })));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 100).await.unwrap().is_none());
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut huge, 100).await, Err(ReadError::BadSize { .. })));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut negative, 100).await, Err(ReadError::BadSize { size: -1, .. })));
    }
}
