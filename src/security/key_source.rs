//! Where a listener's OAUTHBEARER key set comes from (`sasl.oauthbearer.jwks.endpoint.url`):
//! a `file:` URL, read again when the file changes, or the identity provider's `https:` (or
//! `http:`) endpoint, fetched at start and then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`
//! by a thread of its own, and sooner when a token names a key the set lacks (a rotation).
//! The fetch never runs on the async runtime; a failed refresh keeps the keys already known.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::jwks::KeySet;
use super::oauthbearer::oauth_setting;
use super::reloading::{modified_time, Built, Reloading};
use crate::config::Layer;

const KEY: &str = "sasl.oauthbearer.jwks.endpoint.url";
/// Kafka's default `sasl.oauthbearer.jwks.endpoint.refresh.ms`: an hour.
const DEFAULT_REFRESH_MS: u64 = 3_600_000;
/// A token naming an unknown key asks for a fetch at most this often.
const EXPEDITED_EVERY: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub enum KeySource {
    File(Reloading<Arc<KeySet>>),
    Endpoint(Arc<Endpoint>),
}

pub struct Endpoint {
    url: String,
    keys: Mutex<Arc<KeySet>>,
    /// Wakes the refresh thread early; its dropping ends the thread.
    wake: Mutex<mpsc::Sender<()>>,
    last_wake: Mutex<Option<Instant>>,
}

impl KeySource {
    /// From the listener's settings.
    pub fn new(listener: &str, settings: &Layer) -> Result<KeySource, String> {
        let url = oauth_setting(settings, listener, KEY).ok_or_else(|| format!("signed OAUTHBEARER tokens need the identity provider's keys: set {KEY} to its JWKS URL (https://... or file:///path/to/jwks.json)"))?;
        if url.starts_with("file:") {
            return Reloading::new(listener, "its OAUTHBEARER key set", settings, load_file).map(KeySource::File);
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("{KEY}={url}: expected an https://, http:// or file:/// URL"));
        }
        let refresh = match oauth_setting(settings, listener, "sasl.oauthbearer.jwks.endpoint.refresh.ms") {
            None => Duration::from_millis(DEFAULT_REFRESH_MS),
            Some(ms) => Duration::from_millis(ms.parse().ok().filter(|&ms| ms > 0).ok_or_else(|| format!("sasl.oauthbearer.jwks.endpoint.refresh.ms={ms} is not a positive number of milliseconds"))?),
        };
        let keys = fetch(url).map_err(|e| format!("{KEY}: {e}"))?;
        let (wake, woken) = mpsc::channel();
        let endpoint = Arc::new(Endpoint { url: url.to_string(), keys: Mutex::new(Arc::new(keys)), wake: Mutex::new(wake), last_wake: Mutex::new(None) });
        let weak = Arc::downgrade(&endpoint);
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || refresh_loop(weak, woken, refresh))
            .map_err(|e| format!("cannot start the key set's refresh thread: {e}"))?;
        Ok(KeySource::Endpoint(endpoint))
    }

    /// The keys to check a token with now.
    pub fn current(&self) -> Arc<KeySet> {
        match self {
            KeySource::File(file) => file.current(),
            KeySource::Endpoint(endpoint) => endpoint.keys.lock().expect("jwks lock").clone(),
        }
    }

    /// A token named a key the set lacks: an endpoint is asked again soon, as the provider
    /// may have rotated its keys. The token itself is refused.
    pub fn missing_key(&self) {
        let KeySource::Endpoint(endpoint) = self else { return };
        let mut last = endpoint.last_wake.lock().expect("jwks lock");
        if last.is_none_or(|at| at.elapsed() >= EXPEDITED_EVERY) {
            *last = Some(Instant::now());
            let _ = endpoint.wake.lock().expect("jwks lock").send(());
        }
    }
}

fn refresh_loop(endpoint: Weak<Endpoint>, woken: mpsc::Receiver<()>, every: Duration) {
    loop {
        if let Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(every) {
            return;
        }
        let Some(endpoint) = endpoint.upgrade() else { return };
        match fetch(&endpoint.url) {
            Ok(keys) => *endpoint.keys.lock().expect("jwks lock") = Arc::new(keys),
            Err(e) => tracing::warn!("{KEY}: keeping the OAUTHBEARER keys already known: {e}"),
        }
    }
}

fn load_file(listener: &str, settings: &Layer) -> Result<Built<Arc<KeySet>>, String> {
    let url = oauth_setting(settings, listener, KEY).unwrap_or_default();
    let path = match url.strip_prefix("file://").or_else(|| url.strip_prefix("file:")) {
        Some(path) if path.starts_with('/') => PathBuf::from(path),
        _ => return Err(format!("{KEY}={url}: a file URL names an absolute path (file:///path/to/jwks.json)")),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{KEY}: cannot read {}: {e}", path.display()))?;
    let keys = KeySet::parse(&text).map_err(|e| format!("{KEY}: {}: {e}", path.display()))?;
    Ok(Built { files: vec![(path.clone(), modified_time(&path))], value: Arc::new(keys) })
}

/// GETs the key set at an `http(s)://` URL.
fn fetch(url: &str) -> Result<KeySet, String> {
    let body = get(url).map_err(|e| format!("fetching {url}: {e}"))?;
    KeySet::parse(&body).map_err(|e| format!("{url}: {e}"))
}

/// One HTTP/1.1 GET, its body if the status is 200. HTTPS checks the server's certificate
/// against the system's CAs (`SSL_CERT_FILE`, else Debian's bundle), as a JVM checks it
/// against its default truststore.
fn get(url: &str) -> Result<String, String> {
    let (tls, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err("not an http(s) URL".into()),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())) {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| format!("bad port in {authority}"))?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    let address = (host.trim_start_matches('[').trim_end_matches(']'), port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.next().ok_or_else(|| format!("{host} has no address"))?;
    let tcp = TcpStream::connect_timeout(&address, FETCH_TIMEOUT).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    tcp.set_read_timeout(Some(FETCH_TIMEOUT)).and_then(|_| tcp.set_write_timeout(Some(FETCH_TIMEOUT))).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nUser-Agent: gregor\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    if tls {
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(system_roots()?)
            .with_no_client_auth();
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string()).map_err(|e| format!("{host}: {e}"))?;
        let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        read_response(&mut stream, &mut response)?;
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        read_response(&mut tcp, &mut response)?;
    }
    parse_response(&response)
}

/// Reads until the server closes; a TLS peer that closes without close_notify has still sent
/// all it meant to when the body is whole, which `parse_response` checks.
fn read_response(stream: &mut impl Read, response: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) if response.len() + n > MAX_RESPONSE_BYTES => return Err(format!("the response is over {MAX_RESPONSE_BYTES} bytes")),
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The body of a whole `200` response (with Content-Length, chunked, or up to the close).
fn parse_response(response: &[u8]) -> Result<String, String> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete HTTP response")?;
    let head = std::str::from_utf8(&response[..split]).map_err(|_| "the response head is not text")?;
    let mut body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("the server answered {status:?}"));
    }
    let header = |name: &str| lines.clone().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()));
    let decoded;
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        decoded = dechunk(body)?;
        body = &decoded;
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length {length:?}"))?;
        body = body.get(..length).ok_or("the response ended before its Content-Length")?;
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".into())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size line is cut short")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("a chunk is cut short")?);
        body = body.get(size + 2..).ok_or("a chunk is cut short")?;
    }
}

fn system_roots() -> Result<Arc<RootCertStore>, String> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read the system's CA certificates at {path} (set SSL_CERT_FILE to a PEM bundle): {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("{path} holds no CA certificate"));
    }
    Ok(Arc::new(roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_a_length_chunked_or_up_to_the_close() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing").unwrap(), "{}");
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"k\r\n4;x=1\r\n\":1}\r\n0\r\n\r\n").unwrap(), "{\"k\":1}");
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\n{\"keys\":[]}").unwrap(), "{\"keys\":[]}");
        assert!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap_err().contains("404"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").unwrap_err().contains("Content-Length"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }

    fn key_set(kid: &str) -> String {
        format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}]}}"#)
    }

    #[test]
    fn an_endpoint_is_fetched_at_start_and_again_when_a_token_names_an_unknown_key() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/realms/main/jwks", listener.local_addr().unwrap());
        let served = Arc::new(Mutex::new(key_set("k1")));
        let (serving, requests) = (served.clone(), Arc::new(Mutex::new(Vec::new())));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap();
                seen.lock().unwrap().push(String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string());
                let body = serving.lock().unwrap().clone();
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        });
        let settings: Layer = [("sasl.oauthbearer.jwks.endpoint.url".to_string(), url)].into_iter().collect();
        let source = KeySource::new("SASL_SSL", &settings).unwrap();
        assert!(source.current().has_kid("k1"));
        assert_eq!(requests.lock().unwrap()[0], "GET /realms/main/jwks HTTP/1.1");

        *served.lock().unwrap() = key_set("k2");
        source.missing_key();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !source.current().has_kid("k2") {
            assert!(Instant::now() < deadline, "the rotated key set was not fetched");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Asked again at once, it waits: a flood of unknown kids is one fetch a second.
        source.missing_key();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(requests.lock().unwrap().len(), 2);
    }
}
