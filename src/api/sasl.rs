//! SaslHandshake and SaslAuthenticate. Until a connection to a SASL listener has authenticated
//! it is served only these and ApiVersions, as Kafka does; anything else closes it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use super::{encode_response, supported_range};
use crate::security::sasl::{Exchange, SaslServer, Step};
use crate::security::Principal;

/// What the connection does with a frame that came before authentication ended.
pub enum AuthStep {
    /// Not part of authentication (ApiVersions): answer it as usual.
    Pass(Bytes),
    /// Send this and wait for the next frame.
    Reply(BytesMut),
    /// Send this; the connection is now `Principal`'s.
    Authenticated(BytesMut, Principal),
    /// Send this, if anything, then close the connection for the reason given.
    Refuse(Option<BytesMut>, String),
}

/// One connection's authentication, from its first frame to its success.
pub struct SaslSession {
    server: Arc<SaslServer>,
    /// After the handshake: the exchange, and whether it was a v0 handshake, after which
    /// tokens come as bare size-prefixed frames instead of SaslAuthenticate requests.
    exchange: Option<(Exchange, bool)>,
}

impl SaslSession {
    pub fn new(server: Arc<SaslServer>) -> SaslSession {
        SaslSession { server, exchange: None }
    }

    pub async fn authenticate(&mut self, mut frame: Bytes, peer: SocketAddr) -> AuthStep {
        if let Some((exchange, true)) = &mut self.exchange {
            return match exchange.step(&self.server, &frame) {
                Step::Challenge(token) => AuthStep::Reply(bare_token(&token)),
                Step::Done(principal, token) => AuthStep::Authenticated(bare_token(&token), principal),
                Step::Failed(reason) => {
                    tokio::time::sleep(self.server.failed_login_delay(peer.ip())).await;
                    AuthStep::Refuse(None, reason)
                }
            };
        }
        let (key, version) = match frame.get(..4) {
            Some(h) if frame.len() >= 8 => (i16::from_be_bytes([h[0], h[1]]), i16::from_be_bytes([h[2], h[3]])),
            _ => return AuthStep::Refuse(None, format!("a {}-byte frame before SASL authentication", frame.len())),
        };
        let api = match ApiKey::try_from(key) {
            Ok(ApiKey::ApiVersions) if self.exchange.is_none() => return AuthStep::Pass(frame),
            Ok(api @ ApiKey::SaslHandshake) if self.exchange.is_none() => api,
            Ok(api @ ApiKey::SaslAuthenticate) if self.exchange.is_some() => api,
            Ok(api) => return AuthStep::Refuse(None, format!("unexpected {api:?} request during SASL authentication on listener {}", self.server.listener())),
            Err(_) => return AuthStep::Refuse(None, format!("unknown API key {key} during SASL authentication")),
        };
        let (min, max) = supported_range(api).expect("both SASL APIs are in the version table");
        if version < min || version > max {
            return AuthStep::Refuse(None, format!("{api:?} v{version} is not supported (supported: v{min}-v{max})"));
        }
        let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
            Ok(header) => header,
            Err(e) => return AuthStep::Refuse(None, format!("malformed {api:?} v{version} request header: {e}")),
        };
        let respond = |body: ResponseKind| encode_response(api, header.correlation_id, api.response_header_version(version), &body, version);
        let reply = match api {
            ApiKey::SaslHandshake => {
                let request = match SaslHandshakeRequest::decode(&mut frame, version) {
                    Ok(request) => request,
                    Err(e) => return AuthStep::Refuse(None, format!("malformed SaslHandshake v{version} request: {e}")),
                };
                let mechanisms = self.server.mechanism_names().into_iter().map(StrBytes::from_static_str).collect();
                match self.server.start(&request.mechanism) {
                    Some(exchange) => {
                        self.exchange = Some((exchange, version == 0));
                        respond(ResponseKind::SaslHandshake(SaslHandshakeResponse::default().with_mechanisms(mechanisms))).map(AuthStep::Reply)
                    }
                    None => {
                        let response = SaslHandshakeResponse::default().with_error_code(ResponseError::UnsupportedSaslMechanism.code()).with_mechanisms(mechanisms);
                        let reason = format!("the client asked for SASL mechanism {:?}, which listener {} does not offer", request.mechanism.as_str(), self.server.listener());
                        respond(ResponseKind::SaslHandshake(response)).map(|r| AuthStep::Refuse(Some(r), reason))
                    }
                }
            }
            _ => {
                let request = match SaslAuthenticateRequest::decode(&mut frame, version) {
                    Ok(request) => request,
                    Err(e) => return AuthStep::Refuse(None, format!("malformed SaslAuthenticate v{version} request: {e}")),
                };
                let (exchange, _) = self.exchange.as_mut().expect("checked above");
                match exchange.step(&self.server, &request.auth_bytes) {
                    Step::Challenge(token) => respond(ResponseKind::SaslAuthenticate(SaslAuthenticateResponse::default().with_auth_bytes(token.into()))).map(AuthStep::Reply),
                    Step::Done(principal, token) => {
                        respond(ResponseKind::SaslAuthenticate(SaslAuthenticateResponse::default().with_auth_bytes(token.into()))).map(|r| AuthStep::Authenticated(r, principal))
                    }
                    Step::Failed(reason) => {
                        tokio::time::sleep(self.server.failed_login_delay(peer.ip())).await;
                        let response = SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                            .with_error_message(Some(StrBytes::from_string(reason.clone())));
                        respond(ResponseKind::SaslAuthenticate(response)).map(|r| AuthStep::Refuse(Some(r), format!("SASL authentication failed: {reason}")))
                    }
                }
            }
        };
        reply.unwrap_or_else(|e| AuthStep::Refuse(None, e.to_string()))
    }
}

/// A token after a v0 handshake: size-prefixed, without a response header.
fn bare_token(token: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(4 + token.len());
    buf.put_i32(token.len() as i32);
    buf.put_slice(token);
    buf
}

/// SaslHandshake on a connection that authenticated already, or on a listener without SASL.
pub fn handshake_out_of_place() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// SaslAuthenticate outside an exchange.
pub fn authenticate_out_of_place() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str("SaslAuthenticate is only served during SASL authentication, after SaslHandshake")))
}
