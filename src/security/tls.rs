//! TLS for SSL and SASL_SSL listeners (rustls with the ring provider), configured with Kafka's
//! `ssl.*` keys in their PEM forms.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::principal_mapping::PrincipalMapper;
use super::reloading::{modified_time, Built, Reloading};
use super::{setting, Principal};
use crate::config::Layer;

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A connection's byte stream: TCP, or TLS over it.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// The name a server's certificate must carry, from the `host:port` dialled: a DNS name or an
/// IP address, as the server advertises itself.
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host).trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} is neither a DNS name nor an IP address: {e}"))
}

/// A listener's TLS server side: the acceptor built from its settings, rebuilt when a
/// certificate or key file changes so renewed certificates are served without a restart, and
/// how a client certificate names its principal (`ssl.principal.mapping.rules`).
#[derive(Clone)]
pub struct TlsServer {
    acceptor: Reloading<TlsAcceptor>,
    principals: Arc<PrincipalMapper>,
}

impl TlsServer {
    pub fn new(listener: &str, settings: &Layer) -> Result<TlsServer, String> {
        let principals = match setting(settings, listener, "ssl.principal.mapping.rules") {
            Some(rules) => PrincipalMapper::parse(rules)?,
            None => PrincipalMapper::default(),
        };
        Ok(TlsServer { acceptor: Reloading::new(listener, "its TLS certificates", settings, build_server)?, principals: Arc::new(principals) })
    }

    /// The acceptor for a new connection (see [`Reloading::current`]).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.current()
    }

    /// The principal of a client certificate: `User:` and its subject as the rules map it.
    pub fn principal(&self, cert: &CertificateDer<'_>) -> Result<Principal, String> {
        let subject = certificate_subject(cert).ok_or("cannot read the subject of the client certificate")?;
        match self.principals.name(&subject) {
            Some(name) => Ok(Principal::user(&name)),
            None => Err(format!("no rule of ssl.principal.mapping.rules matches the client certificate's subject {subject}")),
        }
    }
}

/// The TLS client side of a listener, as a broker dials other brokers' listener of that name
/// (`inter.broker.listener.name`): their certificates are checked against the truststore, and
/// the keystore is this broker's client certificate when the listener asks for one.
#[derive(Clone)]
pub struct TlsClient(Reloading<TlsConnector>);

impl TlsClient {
    pub fn new(listener: &str, settings: &Layer) -> Result<TlsClient, String> {
        Reloading::new(listener, "its TLS certificates", settings, build_client).map(TlsClient)
    }

    /// The connector for a new connection (see [`Reloading::current`]).
    pub fn connector(&self) -> TlsConnector {
        self.0.current()
    }
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsServer({})", self.acceptor.listener)
    }
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient({})", self.0.listener)
    }
}

/// The PEM text of a setting that is either a file (`location_key`) or inline (`inline_key`).
fn pem_text(listener: &str, settings: &Layer, location_key: &str, inline_key: &str, files: &mut Vec<(PathBuf, Option<SystemTime>)>) -> Result<Option<String>, String> {
    if let Some(inline) = setting(settings, listener, inline_key) {
        return Ok(Some(inline.to_string()));
    }
    let Some(location) = setting(settings, listener, location_key) else { return Ok(None) };
    let path = PathBuf::from(location);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{location_key}: cannot read {}: {e}", path.display()))?;
    files.push((path.clone(), modified_time(&path)));
    Ok(Some(text))
}

fn check_pem_types(listener: &str, settings: &Layer) -> Result<(), String> {
    for key in ["ssl.keystore.type", "ssl.truststore.type"] {
        match setting(settings, listener, key) {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("PEM") => {}
            Some(other) => return Err(format!("{key}={other} is not supported: Gregor reads PEM only; convert the store (e.g. openssl pkcs12 -in store.p12 -nodes) and set {key}=PEM")),
        }
    }
    Ok(())
}

/// A keystore: the certificate chain, its private key, and the setting the key came from.
struct Keystore {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    key_what: &'static str,
}

fn keystore(listener: &str, settings: &Layer, files: &mut Vec<(PathBuf, Option<SystemTime>)>) -> Result<Keystore, String> {
    let keystore = pem_text(listener, settings, "ssl.keystore.location", "ssl.keystore.certificate.chain", files)?
        .ok_or("a TLS listener needs ssl.keystore.location (a PEM file with the key and certificate chain) or ssl.keystore.certificate.chain and ssl.keystore.key")?;
    let what = if setting(settings, listener, "ssl.keystore.certificate.chain").is_some() { "ssl.keystore.certificate.chain" } else { "ssl.keystore.location" };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(keystore.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: bad PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    let (key_text, key_what) = match setting(settings, listener, "ssl.keystore.key") {
        Some(inline) => (inline.to_string(), "ssl.keystore.key"),
        None => (keystore.clone(), what),
    };
    if key_text.contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!("{key_what} holds an encrypted private key: Gregor reads unencrypted PEM keys only (openssl pkcs8 -nocrypt)"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_text.as_bytes()).map_err(|e| format!("{key_what}: no usable PEM private key: {e}"))?;
    Ok(Keystore { chain, key, key_what })
}

fn truststore(listener: &str, settings: &Layer, files: &mut Vec<(PathBuf, Option<SystemTime>)>) -> Result<Option<Arc<RootCertStore>>, String> {
    let Some(text) = pem_text(listener, settings, "ssl.truststore.location", "ssl.truststore.certificates", files)? else { return Ok(None) };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert = cert.map_err(|e| format!("truststore: bad PEM certificate: {e}"))?;
        roots.add(cert).map_err(|e| format!("truststore: unusable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the truststore holds no certificate".into());
    }
    Ok(Some(Arc::new(roots)))
}

fn client_auth(listener: &str, settings: &Layer) -> Result<ClientAuth, String> {
    match setting(settings, listener, "ssl.client.auth").unwrap_or("none").to_ascii_lowercase().as_str() {
        "none" => Ok(ClientAuth::None),
        "requested" => Ok(ClientAuth::Requested),
        "required" => Ok(ClientAuth::Required),
        other => Err(format!("ssl.client.auth={other}: expected none, requested or required")),
    }
}

fn build_server(listener: &str, settings: &Layer) -> Result<Built<TlsAcceptor>, String> {
    check_pem_types(listener, settings)?;
    let mut files = Vec::new();
    let Keystore { chain, key, key_what } = keystore(listener, settings, &mut files)?;
    let roots = truststore(listener, settings, &mut files)?;
    let client_auth = client_auth(listener, settings)?;
    let versions = protocol_versions(setting(settings, listener, "ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| format!("TLS: {e}"))?;
    let builder = match (client_auth, roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err("ssl.client.auth asks for client certificates: set ssl.truststore.location (or ssl.truststore.certificates) to the CA that signs them".into()),
        (auth, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("ssl.truststore: {e}"))?)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| format!("{key_what}: the key does not fit the certificate chain: {e}"))?;
    Ok(Built { files, value: TlsAcceptor::from(Arc::new(config)) })
}

fn build_client(listener: &str, settings: &Layer) -> Result<Built<TlsConnector>, String> {
    check_pem_types(listener, settings)?;
    let mut files = Vec::new();
    let roots = truststore(listener, settings, &mut files)?
        .ok_or("brokers check each other's certificates on this listener: set ssl.truststore.location (or ssl.truststore.certificates) to the CA that signs the brokers' certificates")?;
    let versions = protocol_versions(setting(settings, listener, "ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider).with_protocol_versions(&versions).map_err(|e| format!("TLS: {e}"))?.with_root_certificates(roots);
    // The listener asks its clients for a certificate: this broker shows its own.
    let config = match client_auth(listener, settings)? {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let Keystore { chain, key, key_what } = keystore(listener, settings, &mut files)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("{key_what}: the key does not fit the certificate chain: {e}"))?
        }
    };
    Ok(Built { files, value: TlsConnector::from(Arc::new(config)) })
}

/// `ssl.enabled.protocols`: TLS 1.2 and 1.3; older versions are not offered by rustls.
fn protocol_versions(value: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut versions = Vec::new();
    for name in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match name {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1" | "TLSv1.1" | "SSLv3" => tracing::warn!("ssl.enabled.protocols: {name} is insecure and not offered"),
            other => return Err(format!("ssl.enabled.protocols: unknown protocol {other} (expected TLSv1.2, TLSv1.3)")),
        }
    }
    if versions.is_empty() {
        return Err(format!("ssl.enabled.protocols={value} enables neither TLSv1.2 nor TLSv1.3"));
    }
    Ok(versions)
}

/// The subject of a certificate in RFC 2253 form (`CN=alice,O=Example`), last RDN first, as
/// Kafka's principal builder reads it.
fn certificate_subject(cert: &CertificateDer<'_>) -> Option<String> {
    let rdns = yasna::parse_ber(cert.as_ref(), |r| {
        r.read_sequence(|cert| {
            let subject = cert.next().read_sequence(|tbs| {
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                // serialNumber, signature, issuer, validity
                for _ in 0..4 {
                    tbs.next().read_der()?;
                }
                let mut rdns = Vec::new();
                tbs.next().read_sequence_of(|rdn| {
                    let mut attributes = Vec::new();
                    rdn.read_set_of(|attribute| {
                        attribute.read_sequence(|a| {
                            let oid = a.next().read_oid()?.to_string();
                            let value = a.next().read_tagged_der()?;
                            attributes.push(format!("{}={}", attribute_name(&oid), escape_rfc2253(&String::from_utf8_lossy(value.value()))));
                            Ok(())
                        })
                    })?;
                    rdns.push(attributes.join("+"));
                    Ok(())
                })?;
                // subjectPublicKeyInfo, the optional unique ids and extensions.
                while tbs.read_optional(|r| r.read_der())?.is_some() {}
                Ok(rdns)
            })?;
            cert.next().read_der()?;
            cert.next().read_der()?;
            Ok(subject)
        })
    })
    .ok()?;
    Some(rdns.iter().rev().cloned().collect::<Vec<_>>().join(","))
}

/// The keywords RFC 2253 (and Java's X500Principal) use; other attributes by their OID.
fn attribute_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => other,
    }
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || leading {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.insert(out.len() - 1, '\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_names_its_subject_last_rdn_first() {
        let dir = tempfile::tempdir().unwrap();
        crate::security::certs::write_dev_certs(dir.path(), &["localhost".into()]).unwrap();
        let chain = std::fs::read(dir.path().join(crate::security::certs::CLIENT_CERT_FILE)).unwrap();
        let cert = CertificateDer::pem_slice_iter(&chain).next().unwrap().unwrap();
        assert_eq!(format!("User:{}", certificate_subject(&cert).unwrap()), crate::security::certs::CLIENT_PRINCIPAL);
        assert_eq!(escape_rfc2253("a,b+c "), "a\\,b\\+c\\ ");
        assert!(certificate_subject(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_none());
    }
}
