//! The scrape endpoint: just enough HTTP/1.1 for `GET /metrics`, one request per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;

/// A request head larger than this is refused: a scraper's is a few hundred bytes.
const MAX_HEAD: usize = 8 << 10;
/// A scraper that sends no whole request, or takes no response, for this long is cut off.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves scrapes on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    let mut scrapes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let api = api.clone();
                    scrapes.spawn(async move {
                        if let Err(e) = tokio::time::timeout(IO_TIMEOUT * 2, answer(stream, &api)).await.unwrap_or(Err(std::io::ErrorKind::TimedOut.into())) {
                            tracing::debug!(%peer, "metrics scrape failed: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = scrapes.join_next(), if !scrapes.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    scrapes.shutdown().await;
}

/// Binds `metrics.listener`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    use anyhow::Context;
    let socket = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics.listener (is another process using it?)"))?;
    let bound = socket.local_addr()?;
    Ok((socket, bound))
}

async fn answer(mut stream: TcpStream, api: &Api) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let (status, body) = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream, &mut head)).await {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => ("400 Bad Request", None),
        Ok(Ok(true)) => match route(&head) {
            Route::Metrics { head_only } => ("200 OK", Some((super::scrape::render(api).await, head_only))),
            Route::NotFound => ("404 Not Found", None),
            Route::BadMethod => ("405 Method Not Allowed", None),
            Route::Malformed => ("400 Bad Request", None),
        },
    };
    let (text, head_only) = body.unwrap_or_else(|| (format!("{status}\n"), false));
    let content_type = if status.starts_with("200") { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain; charset=utf-8" };
    let mut response = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n", text.len());
    if status.starts_with("405") {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&text);
    }
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(response.as_bytes())).await.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.shutdown().await
}

/// Reads until the blank line ending the head; `false` if it is too long or the peer stops first.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(true);
        }
        if head.len() > MAX_HEAD {
            return Ok(false);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
    }
}

#[derive(Debug, PartialEq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Malformed,
}

/// The request line: `METHOD TARGET HTTP/1.x`; the headers do not matter here.
fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|&b| b == b'\n').next().and_then(|l| std::str::from_utf8(l).ok()) else { return Route::Malformed };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return Route::Malformed };
    if !version.starts_with("HTTP/1.") {
        return Route::Malformed;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    // Prometheus may add a query string; the path alone decides.
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics { head_only },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_and_head_of_metrics() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics { head_only: true });
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Malformed);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::Malformed);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::Malformed);
    }
}
