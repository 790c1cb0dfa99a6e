//! Where a listener's OAUTHBEARER key set comes from (`sasl.oauthbearer.jwks.endpoint.url`):
//! a `file:` URL, read again when the file changes, or the identity provider's `https:` (or
//! `http:`) endpoint, fetched at start and then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`
//! by a thread of its own, and sooner when a token names a key the set lacks (a rotation).
//! The fetch never runs on the async runtime; a failed refresh keeps the keys already known.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

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
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

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

/// GETs the key set at an `http(s)://` URL. HTTPS checks the server's certificate against the
/// system's CAs (`SSL_CERT_FILE`, else Debian's bundle), as a JVM checks it against its default
/// truststore.
fn fetch(url: &str) -> Result<KeySet, String> {
    let tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(system_roots()?))).build();
    let agent: Agent = Agent::config_builder().timeout_global(Some(FETCH_TIMEOUT)).tls_config(tls).build().into();
    let body = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .and_then(|mut response| response.body_mut().with_config().limit(MAX_RESPONSE_BYTES).read_to_string())
        .map_err(|e| format!("fetching {url}: {e}"))?;
    KeySet::parse(&body).map_err(|e| format!("{url}: {e}"))
}

fn system_roots() -> Result<Vec<Certificate<'static>>, String> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read the system's CA certificates at {path} (set SSL_CERT_FILE to a PEM bundle): {e}"))?;
    let roots: Vec<Certificate<'static>> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        return Err(format!("{path} holds no CA certificate"));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

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
