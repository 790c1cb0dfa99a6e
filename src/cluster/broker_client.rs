//! Requests from this broker to another over the Kafka protocol (a follower's fetches, a
//! transaction coordinator's markers): one connection, with the versions both sides speak
//! learned once by ApiVersions.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct BrokerConnection {
    stream: TcpStream,
    client_id: StrBytes,
    correlation: i32,
    versions: Vec<ApiVersion>,
}

impl BrokerConnection {
    /// Connects and asks for the broker's versions, each step within `timeout`.
    pub async fn connect(address: &str, client_id: String, timeout: Duration) -> Result<BrokerConnection> {
        let connecting = tokio::time::timeout(timeout, TcpStream::connect(address));
        let stream = connecting.await.map_err(|_| anyhow!("no connection within {timeout:?}"))?.with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let mut conn = BrokerConnection { stream, client_id: StrBytes::from_string(client_id), correlation: 0, versions: Vec::new() };
        let versions = conn.call(&ApiVersionsRequest::default(), 3, timeout).await?;
        if let Some(e) = ResponseError::try_from_code(versions.error_code) {
            bail!("ApiVersions refused: {e:?}");
        }
        conn.versions = versions.api_keys;
        Ok(conn)
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
