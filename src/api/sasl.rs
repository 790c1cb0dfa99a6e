//! SaslHandshake and SaslAuthenticate. Until a connection to a SASL listener has authenticated
//! it is served only these and ApiVersions, as Kafka does; anything else closes it. A client
//! re-authenticates with another SaslHandshake before its session expires
//! (`connections.max.reauth.ms`, KIP-368); a request after the expiry closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use super::{encode_response, supported_range};
use crate::security::sasl::{Exchange, Mechanism, SaslServer, Step};
use crate::security::Principal;

/// What the connection does with a frame that came before authentication ended.
pub enum AuthStep {
    /// Not part of authentication (ApiVersions, or any request of an authenticated client):
    /// answer it as usual.
    Pass(Bytes),
    /// Send this and wait for the next frame.
    Reply(BytesMut),
    /// Send this; the connection is now `Principal`'s (`again` when it re-authenticated).
    Authenticated { reply: BytesMut, principal: Principal, again: bool },
    /// Send this, if anything, then close the connection for the reason given.
    Refuse(Option<BytesMut>, String),
}

/// One connection's authentication: from its first frame to its success, and again each time
/// the client re-authenticates (KIP-368).
pub struct SaslSession {
    server: Arc<SaslServer>,
    exchange: Option<Pending>,
    /// Once authenticated: who, by which mechanism, and until when.
    session: Option<Session>,
}

/// An exchange after its handshake.
struct Pending {
    exchange: Exchange,
    mechanism: Mechanism,
    /// After a v0 handshake tokens come as bare size-prefixed frames, not SaslAuthenticate.
    bare_tokens: bool,
    /// A re-authentication that asked for another mechanism: refused at its first token, as
    /// Kafka does.
    refusal: Option<String>,
}

struct Session {
    principal: Principal,
    mechanism: Mechanism,
    expires: Option<Instant>,
}

impl SaslSession {
    pub fn new(server: Arc<SaslServer>) -> SaslSession {
        SaslSession { server, exchange: None, session: None }
    }

    /// Whether the client is authenticated and not in the middle of re-authenticating.
    pub fn authenticated(&self) -> bool {
        self.session.is_some() && self.exchange.is_none()
    }

    pub async fn authenticate(&mut self, mut frame: Bytes, peer: SocketAddr) -> AuthStep {
        let key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
        if let (Some(session), None) = (&self.session, &self.exchange) {
            // Kafka checks expiry first, so a re-authentication that starts late is refused too.
            if session.expires.is_some_and(|at| Instant::now() >= at) {
                return AuthStep::Refuse(None, format!("the SASL session of {} expired (connections.max.reauth.ms) without re-authentication", session.principal));
            }
            if key != Some(ApiKey::SaslHandshake as i16) {
                return AuthStep::Pass(frame);
            }
        }
        if let Some(Pending { exchange, bare_tokens: true, .. }) = &mut self.exchange {
            return match exchange.step(&self.server, &frame) {
                Step::Challenge(token) => AuthStep::Reply(bare_token(&token)),
                Step::Done(principal, token) => self.finish(principal, bare_token(&token)),
                Step::Failed(reason) => {
                    tokio::time::sleep(self.server.failed_login_delay(peer.ip())).await;
                    AuthStep::Refuse(None, reason)
                }
            };
        }
        let (Some(key), Some(h)) = (key, frame.get(2..4).filter(|_| frame.len() >= 8)) else {
            return AuthStep::Refuse(None, format!("a {}-byte frame before SASL authentication", frame.len()));
        };
        let version = i16::from_be_bytes([h[0], h[1]]);
        let api = match ApiKey::try_from(key) {
            Ok(ApiKey::ApiVersions) if self.exchange.is_none() => return AuthStep::Pass(frame),
            Ok(api @ ApiKey::SaslHandshake) if self.exchange.is_none() => api,
            Ok(api @ ApiKey::SaslAuthenticate) if self.exchange.is_some() => api,
            Ok(api) => {
                let refused = self.exchange.as_ref().and_then(|p| p.exchange.pending_refusal()).map(|r| format!(" (its token was refused: {r})")).unwrap_or_default();
                return AuthStep::Refuse(None, format!("unexpected {api:?} request during SASL authentication on listener {}{refused}", self.server.listener()));
            }
            Err(_) => return AuthStep::Refuse(None, format!("unknown API key {key} during SASL authentication")),
        };
        let (min, max) = supported_range(api).expect("both SASL APIs are in the version table");
        if version < min || version > max {
            return AuthStep::Refuse(None, format!("{api:?} v{version} is not supported (supported: v{min}-v{max})"));
        }
        if api == ApiKey::SaslHandshake && version == 0 && self.session.is_some() {
            return AuthStep::Refuse(None, "re-authentication with a v0 SaslHandshake (Kafka needs SaslAuthenticate for it)".into());
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
                    Some((mechanism, exchange)) => {
                        let refusal = self.session.as_ref().filter(|s| s.mechanism != mechanism).map(|s| {
                            format!("SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'", mechanism.name(), s.mechanism.name())
                        });
                        self.exchange = Some(Pending { exchange, mechanism, bare_tokens: version == 0, refusal });
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
                let pending = self.exchange.as_mut().expect("checked above");
                let mechanism = pending.mechanism;
                let step = match pending.refusal.clone() {
                    Some(refusal) => Step::Failed(refusal),
                    None => pending.exchange.step(&self.server, &request.auth_bytes),
                };
                let failed = |reason: String| {
                    let response = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(reason.clone())));
                    respond(ResponseKind::SaslAuthenticate(response)).map(|r| AuthStep::Refuse(Some(r), format!("SASL authentication failed: {reason}")))
                };
                match step {
                    Step::Challenge(token) => respond(ResponseKind::SaslAuthenticate(SaslAuthenticateResponse::default().with_auth_bytes(token.into()))).map(AuthStep::Reply),
                    Step::Done(principal, token) => match self.changed_principal(&principal) {
                        Some(reason) => failed(reason),
                        None => {
                            // v0 has no lifetime field: such a client is cut off at expiry and reconnects.
                            let credential = self.exchange.as_ref().and_then(|p| p.exchange.credential_lifetime());
                            let lifetime = self.server.session_lifetime(mechanism, credential).filter(|_| version >= 1).map_or(0, |d| d.as_millis() as i64);
                            let response = SaslAuthenticateResponse::default().with_auth_bytes(token.into()).with_session_lifetime_ms(lifetime);
                            match respond(ResponseKind::SaslAuthenticate(response)) {
                                Ok(reply) => return self.finish(principal, reply),
                                Err(e) => Err(e),
                            }
                        }
                    },
                    Step::Failed(reason) => {
                        tokio::time::sleep(self.server.failed_login_delay(peer.ip())).await;
                        failed(reason)
                    }
                }
            }
        };
        reply.unwrap_or_else(|e| AuthStep::Refuse(None, e.to_string()))
    }

    /// Why a re-authentication as `principal` is refused: Kafka keeps a connection's principal.
    fn changed_principal(&self, principal: &Principal) -> Option<String> {
        let before = &self.session.as_ref()?.principal;
        (before != principal).then(|| format!("Cannot change principals during re-authentication from {before}: {principal}"))
    }

    /// Ends an exchange that proved `principal`: the session starts (again) from now.
    fn finish(&mut self, principal: Principal, reply: BytesMut) -> AuthStep {
        let pending = self.exchange.take().expect("an exchange was in progress");
        let mechanism = pending.mechanism;
        let again = self.session.is_some();
        let expires = self.server.session_lifetime(mechanism, pending.exchange.credential_lifetime()).map(|lifetime| Instant::now() + lifetime);
        self.session = Some(Session { principal: principal.clone(), mechanism, expires });
        AuthStep::Authenticated { reply, principal, again }
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
