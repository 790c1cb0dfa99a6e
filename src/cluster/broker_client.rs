//! Requests from this broker to another over the Kafka protocol (a follower's fetches, a
//! transaction coordinator's markers): one connection to the other broker's inter-broker
//! listener, secured as that listener is (TLS, a SASL login), with the versions both sides
//! speak learned once by ApiVersions.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::security::sasl::{inter_broker_mechanism, SaslLogin};
use crate::security::tls::{server_name, Stream, TlsClient};

/// How this broker dials the others: the listener whose endpoint it dials
/// (`inter.broker.listener.name`), with that listener's TLS and SASL as this broker's own
/// settings for it give them.
pub struct InterBrokerClient {
    /// `None` on a controller-only node, which dials no broker.
    listener: Option<String>,
    tls: Option<TlsClient>,
    sasl: Option<SaslLogin>,
}

impl InterBrokerClient {
    /// Built at start: a bad setting or an unreadable file refuses the start. A lone node
    /// dials no other broker, so its listener's security is not needed here.
    pub fn new(config: &Config) -> Result<InterBrokerClient, String> {
        let Some(l) = config.inter_broker_listener.as_ref() else { return Ok(InterBrokerClient { listener: None, tls: None, sasl: None }) };
        let context = |e: String| format!("inter-broker listener {} ({}): {e}", l.name, l.protocol.name());
        let cluster = !config.quorum_voters.is_empty();
        let tls = match cluster && l.protocol.tls() {
            true => Some(TlsClient::new(&l.name, &config.security).map_err(context)?),
            false => None,
        };
        let sasl = match cluster && l.protocol.sasl() {
            true => Some(SaslLogin::new(&l.name, &config.security, inter_broker_mechanism(&config.inter_broker_sasl_mechanism).map_err(context)?).map_err(context)?),
            false => None,
        };
        Ok(InterBrokerClient { listener: Some(l.name.clone()), tls, sasl })
    }

    /// The listener whose endpoint other brokers are dialled on.
    pub fn listener(&self) -> Option<&str> {
        self.listener.as_deref()
    }
}

pub struct BrokerConnection {
    stream: Box<dyn Stream>,
    client_id: StrBytes,
    correlation: i32,
    versions: Vec<ApiVersion>,
}

impl BrokerConnection {
    /// Connects to `address` (`host:port` of the broker's inter-broker listener) as `client`
    /// says, asks for the broker's versions and logs in, each step within `timeout`.
    pub async fn connect(address: &str, client: &InterBrokerClient, client_id: String, timeout: Duration) -> Result<BrokerConnection> {
        let connecting = tokio::time::timeout(timeout, TcpStream::connect(address));
        let tcp = connecting.await.map_err(|_| anyhow!("no connection within {timeout:?}"))?.with_context(|| format!("connecting to {address}"))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &client.tls {
            None => Box::new(tcp),
            Some(tls) => {
                // The certificate must name the host the broker advertises.
                let name = server_name(address).map_err(|e| anyhow!(e))?;
                let handshake = tokio::time::timeout(timeout, tls.connector().connect(name, tcp));
                Box::new(handshake.await.map_err(|_| anyhow!("no TLS handshake within {timeout:?}"))?.with_context(|| format!("TLS handshake with {address}"))?)
            }
        };
        let mut conn = BrokerConnection { stream, client_id: StrBytes::from_string(client_id), correlation: 0, versions: Vec::new() };
        let versions = conn.call(&ApiVersionsRequest::default(), 3, timeout).await?;
        if let Some(e) = ResponseError::try_from_code(versions.error_code) {
            bail!("ApiVersions refused: {e:?}");
        }
        conn.versions = versions.api_keys;
        if let Some(login) = &client.sasl {
            conn.log_in(login, timeout).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake, then SaslAuthenticate until the exchange is done (KIP-152).
    async fn log_in(&mut self, login: &SaslLogin, timeout: Duration) -> Result<()> {
        let mechanism = login.mechanism().name();
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let answer = self.call(&handshake, self.version::<SaslHandshakeRequest>(1)?, timeout).await?;
        if let Some(e) = ResponseError::try_from_code(answer.error_code) {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!("the broker does not take SASL {mechanism} on this listener ({e:?}; it takes {})", offered.join(", "));
        }
        let version = self.version::<SaslAuthenticateRequest>(0)?;
        let (mut exchange, mut token) = login.start();
        loop {
            let answer = self.call(&SaslAuthenticateRequest::default().with_auth_bytes(token.into()), version, timeout).await?;
            if let Some(e) = ResponseError::try_from_code(answer.error_code) {
                let message = answer.error_message.as_deref().unwrap_or("");
                bail!("SASL {mechanism} login as {} refused: {message} ({e:?}); check the username and password of the inter-broker listener's sasl.jaas.config", login.user());
            }
            match exchange.step(&answer.auth_bytes).map_err(|e| anyhow!("SASL {mechanism}: {e}"))? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// The highest version of `R` both sides speak, at least `min`.
    pub fn version<R: Request>(&self, min: i16) -> Result<i16> {
        let key: ApiKey = R::KEY.try_into().map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let theirs = self.versions.iter().find(|k| k.api_key == R::KEY).ok_or_else(|| anyhow!("the broker does not serve {key:?}"))?;
        let version = theirs.max_version.min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min).max(theirs.min_version) {
            bail!("no {key:?} version in common");
        }
        Ok(version)
    }

    /// Sends one request and reads its answer, within `timeout`; any failure leaves the
    /// connection unusable (the caller drops it).
    pub async fn call<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<R::Response> {
        tokio::time::timeout(timeout, self.exchange(request, version)).await.map_err(|_| anyhow!("no answer to api key {} within {timeout:?}", R::KEY))?
    }

    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut buf, R::header_version(version))?;
        request.encode(&mut buf, version)?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size).map_err(|_| anyhow!("negative response size {size}"))?;
        let mut frame = vec![0u8; size];
        self.stream.read_exact(&mut frame).await?;
        let mut frame = bytes::Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))?;
        if header.correlation_id != self.correlation {
            bail!("response {} to request {}", header.correlation_id, self.correlation);
        }
        let response = R::Response::decode(&mut frame, version)?;
        if frame.has_remaining() {
            tracing::debug!("{} bytes after the response to api key {}", frame.remaining(), R::KEY);
        }
        Ok(response)
    }
}
