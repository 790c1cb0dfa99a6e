//! The metrics listener: just enough HTTP/1.1 for `GET /metrics` and the console's page, files
//! and JSON, one request per connection. A controller-only node serves its metrics alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::cluster::controller::Controller;
use crate::log::LogStore;

/// What a metrics listener shows.
#[derive(Clone)]
pub enum Source {
    /// A broker's metrics and console.
    Broker(Arc<Api>),
    /// A controller-only node's quorum, the cluster as it sees it, and its store.
    Controller(Controller, Arc<LogStore>),
}

/// A request head larger than this is refused: a scraper's is a few hundred bytes.
const MAX_HEAD: usize = 8 << 10;
/// A scraper that sends no whole request, or takes no response, for this long is cut off.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves scrapes on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, source: Source, mut shutdown: watch::Receiver<bool>) {
    let mut scrapes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let source = source.clone();
                    scrapes.spawn(async move {
                        if let Err(e) = tokio::time::timeout(IO_TIMEOUT * 2, answer(stream, &source)).await.unwrap_or(Err(std::io::ErrorKind::TimedOut.into())) {
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

/// Binds `metrics.listener`, if it is set.
pub async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Option<(TcpListener, SocketAddr)>> {
    use anyhow::Context;
    let Some(addr) = addr else { return Ok(None) };
    let socket = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics.listener (is another process using it?)"))?;
    let bound = socket.local_addr()?;
    Ok(Some((socket, bound)))
}

async fn answer(mut stream: TcpStream, source: &Source) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let route = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream, &mut head)).await {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => Route::Malformed,
        Ok(Ok(true)) => route(&head),
    };
    const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
    let (status, content_type, body, head_only) = match (route, source) {
        (Route::Get { resource, head_only }, Source::Broker(api)) => {
            let (content_type, body) = match resource {
                Resource::Metrics => (METRICS, super::scrape::render(api).await),
                Resource::Overview => ("application/json", super::console::overview_json(api)),
                Resource::Page => ("text/html; charset=utf-8", super::console::PAGE.to_string()),
                Resource::Script => ("text/javascript; charset=utf-8", super::console::SCRIPT.to_string()),
                Resource::Style => ("text/css; charset=utf-8", super::console::STYLE.to_string()),
            };
            ("200 OK", content_type, body, head_only)
        }
        (Route::Get { resource: Resource::Metrics, head_only }, Source::Controller(controller, log)) => {
            ("200 OK", METRICS, super::scrape::render_controller(controller, log).await, head_only)
        }
        // The console shows a broker's view.
        (Route::Get { .. }, Source::Controller(..)) => {
            ("404 Not Found", "text/plain; charset=utf-8", "404 Not Found: a controller-only node serves /metrics alone\n".to_string(), false)
        }
        (Route::NotFound, _) => ("404 Not Found", "text/plain; charset=utf-8", "404 Not Found\n".to_string(), false),
        (Route::BadMethod, _) => ("405 Method Not Allowed", "text/plain; charset=utf-8", "405 Method Not Allowed\n".to_string(), false),
        (Route::Malformed, _) => ("400 Bad Request", "text/plain; charset=utf-8", "400 Bad Request\n".to_string(), false),
    };
    // Every answer is read fresh: the page polls the overview, Prometheus scrapes.
    let mut response = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n", body.len());
    if status.starts_with("405") {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
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
    Get { resource: Resource, head_only: bool },
    NotFound,
    BadMethod,
    Malformed,
}

#[derive(Debug, PartialEq)]
enum Resource {
    Metrics,
    /// The console's page, its script and style.
    Page,
    Script,
    Style,
    /// The JSON the page polls.
    Overview,
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
    let resource = match target.split('?').next() {
        Some("/metrics") => Resource::Metrics,
        Some("/" | "/console") => Resource::Page,
        Some("/console.js") => Resource::Script,
        Some("/console.css") => Resource::Style,
        Some("/api/overview") => Resource::Overview,
        _ => return Route::NotFound,
    };
    Route::Get { resource, head_only }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_and_head_of_known_paths() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Get { resource: Resource::Metrics, head_only: false });
        assert_eq!(route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Get { resource: Resource::Metrics, head_only: true });
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::Get { resource: Resource::Page, head_only: false });
        assert_eq!(route(b"GET /console HTTP/1.1\r\n\r\n"), Route::Get { resource: Resource::Page, head_only: false });
        assert_eq!(route(b"GET /console.js HTTP/1.1\r\n\r\n"), Route::Get { resource: Resource::Script, head_only: false });
        assert_eq!(route(b"GET /console.css HTTP/1.1\r\n\r\n"), Route::Get { resource: Resource::Style, head_only: false });
        assert_eq!(route(b"GET /api/overview HTTP/1.1\r\n\r\n"), Route::Get { resource: Resource::Overview, head_only: false });
        assert_eq!(route(b"GET /api HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Malformed);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::Malformed);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::Malformed);
    }
}
