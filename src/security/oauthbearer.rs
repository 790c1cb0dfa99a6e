//! OAUTHBEARER (RFC 7628, KIP-255): a client proves who it is with a JWT. Two validators, as
//! Kafka's: its default for development, which takes unsecured tokens (`"alg":"none"`, no
//! signature) and checks them as `OAuthBearerUnsecuredValidatorCallbackHandler` does (a
//! principal claim, an expiry in the future, no issue time in the future, the required scope);
//! and `OAuthBearerValidatorCallbackHandler` (KIP-768), which takes tokens signed by a key of
//! the identity provider's key set (`sasl.oauthbearer.jwks.endpoint.url`, see `key_source`),
//! with the issue and expiry times required and the audience and issuer checked when set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use super::key_source::KeySource;
use super::sasl::parse_jaas;
use super::{setting, Principal};
use crate::config::Layer;

/// Kafka's default server callback handler for OAUTHBEARER: unsecured tokens.
pub const UNSECURED_VALIDATOR: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";
/// Kafka's validator of signed tokens, by its Kafka 4 name and its Kafka 3 one.
pub const SIGNED_VALIDATORS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// JWTs are base64url; Kafka accepts them with or without padding.
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// How a listener checks OAUTHBEARER tokens.
#[derive(Clone)]
pub enum TokenValidator {
    Unsecured(UnsecuredValidator),
    Signed(SignedValidator),
}

/// Kafka's `unsecuredValidator*` options of the listener's OAuthBearerLoginModule.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsecuredValidator {
    claims: ClaimRules,
}

/// Kafka's `sasl.oauthbearer.*` settings of the listener, and its key set.
#[derive(Clone)]
pub struct SignedValidator {
    keys: KeySource,
    claims: ClaimRules,
    audiences: Vec<String>,
    issuer: Option<String>,
}

/// What both validators require of a token's claims.
#[derive(Debug, Clone, PartialEq)]
struct ClaimRules {
    principal_claim: String,
    scope_claim: String,
    required_scope: Vec<String>,
    clock_skew: Duration,
    issued_at_required: bool,
}

/// Why a token was refused: the reason logged and told the client, and the RFC 7628 status
/// the server's error challenge carries.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub reason: String,
    pub status: &'static str,
}

impl Refusal {
    fn invalid(reason: impl Into<String>) -> Refusal {
        Refusal { reason: reason.into(), status: "invalid_token" }
    }

    /// The server's error challenge (RFC 7628 §3.2.2), to which the client answers with a
    /// single 0x01 before the exchange fails.
    pub fn challenge(&self) -> Vec<u8> {
        serde_json::json!({ "status": self.status }).to_string().into_bytes()
    }
}

impl TokenValidator {
    /// The listener's validator, by its server callback handler class: Kafka's signed-token
    /// validator, or its default for unsecured tokens with the options of the listener's
    /// OAuthBearerLoginModule. Another class refuses the start rather than accepting tokens
    /// Gregor cannot check as it would.
    pub fn new(listener: &str, settings: &Layer) -> Result<TokenValidator, String> {
        let handler = ["oauthbearer.sasl.server.callback.handler.class", "sasl.server.callback.handler.class"]
            .into_iter()
            .find_map(|key| setting(settings, listener, key).map(|class| (key, class)));
        match handler {
            Some((_, class)) if SIGNED_VALIDATORS.contains(&class) => Ok(TokenValidator::Signed(SignedValidator::new(listener, settings)?)),
            Some((key, class)) if class != UNSECURED_VALIDATOR => Err(format!(
                "{key}={class}: Gregor checks OAUTHBEARER tokens as Kafka's {} (signed tokens, with sasl.oauthbearer.jwks.endpoint.url) or its default {UNSECURED_VALIDATOR} (unsecured tokens, for development) does",
                SIGNED_VALIDATORS[0]
            )),
            _ => {
                let key = "oauthbearer.sasl.jaas.config";
                let options = match setting(settings, listener, key) {
                    Some(jaas) => parse_jaas(jaas).map_err(|e| format!("{key}: {e}"))?,
                    None => Vec::new(),
                };
                Ok(TokenValidator::Unsecured(UnsecuredValidator::new(&options).map_err(|e| format!("{key}: {e}"))?))
            }
        }
    }

    /// Checks a client's first message (GS2 header, `auth=Bearer <token>`, extensions); the
    /// principal and how much longer its token is valid.
    pub fn validate(&self, message: &[u8], now: SystemTime) -> Result<(Principal, Duration), Refusal> {
        let (authzid, token) = bearer_token(message).map_err(Refusal::invalid)?;
        let jws = Jws::parse(token).map_err(Refusal::invalid)?;
        let rules = match self {
            TokenValidator::Unsecured(v) => {
                if jws.header.get("alg").and_then(Value::as_str) != Some("none") || !jws.signature.is_empty() {
                    return Err(Refusal::invalid("only unsecured tokens (\"alg\":\"none\", no signature) are accepted"));
                }
                &v.claims
            }
            TokenValidator::Signed(v) => {
                let keys = v.keys.current();
                if jws.header.get("kid").and_then(Value::as_str).is_some_and(|kid| !keys.has_kid(kid)) {
                    v.keys.missing_key();
                }
                keys.verify(&jws.header, jws.signing_input.as_bytes(), &jws.signature).map_err(Refusal::invalid)?;
                v.check_audience_and_issuer(&jws.claims)?;
                &v.claims
            }
        };
        let (principal, expires_in) = rules.check(&jws.claims, now)?;
        if authzid.is_some_and(|a| a != principal) {
            return Err(Refusal::invalid(format!("the authorization id {:?} is not the token's principal {principal:?}", authzid.unwrap_or_default())));
        }
        Ok((Principal::user(&principal), expires_in))
    }
}

impl UnsecuredValidator {
    /// From the JAAS options (`unsecuredValidatorPrincipalClaimName`,
    /// `unsecuredValidatorRequiredScope`, `unsecuredValidatorAllowableClockSkewMs`).
    pub fn new(options: &[(String, String)]) -> Result<UnsecuredValidator, String> {
        let option = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        let principal_claim = option("unsecuredValidatorPrincipalClaimName").filter(|v| !v.is_empty()).unwrap_or("sub").to_string();
        let required_scope = option("unsecuredValidatorRequiredScope").map(scope_items).unwrap_or_default();
        let clock_skew = match option("unsecuredValidatorAllowableClockSkewMs") {
            None => Duration::ZERO,
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| format!("unsecuredValidatorAllowableClockSkewMs={ms} is not a number of milliseconds"))?),
        };
        Ok(UnsecuredValidator { claims: ClaimRules { principal_claim, scope_claim: "scope".into(), required_scope, clock_skew, issued_at_required: false } })
    }
}

impl SignedValidator {
    /// From the listener's settings: `sasl.oauthbearer.jwks.endpoint.url` (required),
    /// `sasl.oauthbearer.expected.audience`, `sasl.oauthbearer.expected.issuer`,
    /// `sasl.oauthbearer.sub.claim.name`, `sasl.oauthbearer.scope.claim.name` and
    /// `sasl.oauthbearer.clock.skew.seconds`, each also as `oauthbearer.<key>`.
    pub fn new(listener: &str, settings: &Layer) -> Result<SignedValidator, String> {
        let keys = KeySource::new(listener, settings)?;
        let skew = oauth_setting(settings, listener, "sasl.oauthbearer.clock.skew.seconds").unwrap_or("30");
        let clock_skew = Duration::from_secs(skew.parse().map_err(|_| format!("sasl.oauthbearer.clock.skew.seconds={skew} is not a number of seconds"))?);
        let name = |key: &str, default: &str| oauth_setting(settings, listener, key).unwrap_or(default).to_string();
        Ok(SignedValidator {
            keys,
            claims: ClaimRules {
                principal_claim: name("sasl.oauthbearer.sub.claim.name", "sub"),
                scope_claim: name("sasl.oauthbearer.scope.claim.name", "scope"),
                required_scope: Vec::new(),
                clock_skew,
                issued_at_required: true,
            },
            audiences: oauth_setting(settings, listener, "sasl.oauthbearer.expected.audience").map(scope_items).unwrap_or_default(),
            issuer: oauth_setting(settings, listener, "sasl.oauthbearer.expected.issuer").map(String::from),
        })
    }

    fn check_audience_and_issuer(&self, claims: &Map<String, Value>) -> Result<(), Refusal> {
        if !self.audiences.is_empty() {
            let audiences: Vec<&str> = match claims.get("aud") {
                Some(Value::String(one)) => vec![one],
                Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !audiences.iter().any(|a| self.audiences.iter().any(|expected| expected == a)) {
                return Err(Refusal::invalid(format!("the token's audience {audiences:?} is none of sasl.oauthbearer.expected.audience {:?}", self.audiences)));
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
                return Err(Refusal::invalid(format!("the token's issuer is not sasl.oauthbearer.expected.issuer {issuer:?}")));
            }
        }
        Ok(())
    }
}

/// A `sasl.oauthbearer.*` setting of a listener, also as Kafka's mechanism-prefixed
/// `listener.name.<l>.oauthbearer.<key>`.
pub(super) fn oauth_setting<'a>(settings: &'a Layer, listener: &str, key: &str) -> Option<&'a str> {
    setting(settings, listener, &format!("oauthbearer.{key}")).or_else(|| setting(settings, listener, key))
}

impl ClaimRules {
    /// The principal the claims name and how much longer the token is valid.
    fn check(&self, claims: &Map<String, Value>, now: SystemTime) -> Result<(String, Duration), Refusal> {
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0;
        let skew_ms = self.clock_skew.as_secs_f64() * 1000.0;
        let time = |name: &str| -> Result<Option<f64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64().map(|seconds| seconds * 1000.0)),
                Some(_) => Err(Refusal::invalid(format!("the token's '{name}' claim is not a number"))),
            }
        };
        let expires_ms = time("exp")?.ok_or_else(|| Refusal::invalid("the token has no 'exp' claim"))?;
        if now_ms - skew_ms >= expires_ms {
            return Err(Refusal::invalid("the token has expired"));
        }
        match time("iat")? {
            Some(issued_ms) if issued_ms > now_ms + skew_ms => return Err(Refusal::invalid("the token was issued in the future ('iat')")),
            None if self.issued_at_required => return Err(Refusal::invalid("the token has no 'iat' claim")),
            _ => {}
        }
        if time("nbf")?.is_some_and(|not_before_ms| not_before_ms > now_ms + skew_ms) {
            return Err(Refusal::invalid("the token is not valid yet ('nbf')"));
        }
        let principal = match claims.get(&self.principal_claim) {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => return Err(Refusal::invalid(format!("the token has no '{}' claim naming its principal", self.principal_claim))),
        };
        let scope: Vec<String> = match claims.get(&self.scope_claim) {
            None => Vec::new(),
            Some(Value::String(items)) => scope_items(items),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
            Some(_) => return Err(Refusal::invalid(format!("the token's '{}' claim is neither a string nor a list", self.scope_claim))),
        };
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(s)) {
            return Err(Refusal { reason: format!("the token's scope lacks the required '{missing}'"), status: "insufficient_scope" });
        }
        Ok((principal, Duration::from_millis((expires_ms - now_ms).max(0.0) as u64)))
    }
}

fn scope_items(text: &str) -> Vec<String> {
    text.split([' ', ',']).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The authorization id and the token of a client's first message:
/// `n,[a=<authzid>],` 0x01 `auth=Bearer <token>` 0x01 (`<key>=<value>` 0x01)* 0x01.
fn bearer_token(message: &[u8]) -> Result<(Option<&str>, &str), String> {
    const MALFORMED: &str = "malformed OAUTHBEARER message (RFC 7628)";
    let text = std::str::from_utf8(message).map_err(|_| MALFORMED.to_string())?;
    let (gs2, pairs) = text.split_once('\u{1}').ok_or(MALFORMED)?;
    let authzid = match gs2.strip_prefix("n,").or_else(|| gs2.strip_prefix("y,")).and_then(|a| a.strip_suffix(',')) {
        Some("") => None,
        Some(a) => Some(a.strip_prefix("a=").ok_or(MALFORMED)?),
        None => return Err("OAUTHBEARER: channel binding is not supported".into()),
    };
    let pairs = pairs.strip_suffix("\u{1}\u{1}").ok_or(MALFORMED)?;
    let auth = pairs.split('\u{1}').find_map(|pair| pair.strip_prefix("auth=")).ok_or("the OAUTHBEARER message carries no auth=Bearer token")?;
    let (scheme, token) = auth.split_once(' ').ok_or(MALFORMED)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(MALFORMED.into());
    }
    Ok((authzid, token.trim()))
}

/// A compact JWS: `base64url(header).base64url(claims).base64url(signature)`.
struct Jws<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `header.claims` as sent: what the signature signs.
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    fn parse(token: &'a str) -> Result<Jws<'a>, String> {
        let [header, claims, signature] = token.split('.').collect::<Vec<_>>()[..] else {
            return Err("the token is not a JWS (three base64url parts)".into());
        };
        let json = |part: &str, what: &str| -> Result<Map<String, Value>, String> {
            let bytes = BASE64URL.decode(part).map_err(|_| format!("the token's {what} is not base64url"))?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(format!("the token's {what} is not a JSON object")),
            }
        };
        let signature = BASE64URL.decode(signature).map_err(|_| "the token's signature is not base64url".to_string())?;
        Ok(Jws { header: json(header, "header")?, claims: json(claims, "claims")?, signing_input: &token[..header.len() + 1 + claims.len()], signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> String {
        let b64 = |v: Value| BASE64URL.encode(v.to_string());
        format!("{}.{}.", b64(serde_json::json!({"alg": "none"})), b64(claims))
    }

    fn message(authzid: &str, token: &str) -> Vec<u8> {
        format!("n,{authzid},\u{1}auth=Bearer {token}\u{1}traceId=7\u{1}\u{1}").into_bytes()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn unsecured(options: &[(String, String)]) -> TokenValidator {
        TokenValidator::Unsecured(UnsecuredValidator::new(options).unwrap())
    }

    #[test]
    fn an_unsecured_token_names_its_principal_until_it_expires() {
        let validator = unsecured(&[]);
        let good = token(serde_json::json!({"sub": "alice", "iat": 1000, "exp": 1060.5}));
        let (principal, lifetime) = validator.validate(&message("", &good), at(1010)).expect("valid");
        assert_eq!((principal.to_string(), lifetime), ("User:alice".to_string(), Duration::from_millis(50_500)));
        assert!(validator.validate(&message("a=alice", &good), at(1010)).is_ok(), "the same authorization id");
        assert!(validator.validate(&message("a=bob", &good), at(1010)).is_err());
        assert_eq!(validator.validate(&message("", &good), at(1061)).unwrap_err().reason, "the token has expired");
        assert!(validator.validate(&message("", &good), at(999)).is_err(), "issued in the future");
        let skewed = unsecured(&[("unsecuredValidatorAllowableClockSkewMs".into(), "2000".into())]);
        assert!(skewed.validate(&message("", &good), at(999)).is_ok());
    }

    #[test]
    fn malformed_signed_or_incomplete_tokens_are_refused() {
        let validator = unsecured(&[]);
        let signed = format!("{}sig", token(serde_json::json!({"sub": "a", "exp": 2000})));
        let hs256 = format!("{}.{}.", BASE64URL.encode(r#"{"alg":"HS256"}"#), BASE64URL.encode(r#"{"sub":"a","exp":2000}"#));
        for bad in [
            b"n,,\x01auth=Bearer x\x01".to_vec(),
            b"p=tls-unique,,\x01auth=Bearer a.b.\x01\x01".to_vec(),
            message("", "not-a-jwt"),
            message("", &signed),
            message("", &hs256),
            message("", &token(serde_json::json!({"exp": 2000}))),
            message("", &token(serde_json::json!({"sub": "a"}))),
            message("", &token(serde_json::json!({"sub": "a", "exp": "soon"}))),
            vec![0xff, 0x01],
        ] {
            assert!(validator.validate(&bad, at(1000)).is_err(), "{:?}", String::from_utf8_lossy(&bad));
        }
    }

    #[test]
    fn the_required_scope_and_principal_claim_are_the_jaas_options() {
        let options = [("unsecuredValidatorRequiredScope".into(), "read write".into()), ("unsecuredValidatorPrincipalClaimName".into(), "user".into())];
        let validator = unsecured(&options);
        let scoped = token(serde_json::json!({"user": "svc", "exp": 2000, "scope": ["read", "write", "admin"]}));
        assert_eq!(validator.validate(&message("", &scoped), at(1000)).unwrap().0.to_string(), "User:svc");
        let narrow = token(serde_json::json!({"user": "svc", "exp": 2000, "scope": "read"}));
        let refusal = validator.validate(&message("", &narrow), at(1000)).unwrap_err();
        assert_eq!(refusal.status, "insufficient_scope");
        assert_eq!(refusal.challenge(), br#"{"status":"insufficient_scope"}"#);
        assert!(UnsecuredValidator::new(&[("unsecuredValidatorAllowableClockSkewMs".into(), "x".into())]).is_err());
    }

    /// A P-256 key pair, and a JWKS holding its public key as `kid`.
    fn key(kid: &str) -> (ring::signature::EcdsaKeyPair, String) {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid, "x": BASE64URL.encode(&point[1..33]), "y": BASE64URL.encode(&point[33..])}]});
        (pair, jwks.to_string())
    }

    fn signed(pair: &ring::signature::EcdsaKeyPair, kid: &str, claims: Value) -> String {
        let input = format!("{}.{}", BASE64URL.encode(serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string()), BASE64URL.encode(claims.to_string()));
        let signature = pair.sign(&ring::rand::SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", BASE64URL.encode(signature.as_ref()))
    }

    #[test]
    fn a_signed_token_is_checked_against_the_key_set_its_audience_and_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        let (pair, set) = key("k1");
        std::fs::write(&jwks, set).unwrap();
        let settings: Layer = [
            ("listener.name.sasl_ssl.oauthbearer.sasl.oauthbearer.jwks.endpoint.url", format!("file://{}", jwks.display())),
            ("sasl.oauthbearer.expected.audience", "kafka,other".into()),
            ("sasl.oauthbearer.expected.issuer", "https://idp.example".into()),
            ("sasl.oauthbearer.sub.claim.name", "client_id".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let validator = TokenValidator::Signed(SignedValidator::new("SASL_SSL", &settings).unwrap());
        let claims = serde_json::json!({"client_id": "svc", "aud": ["kafka"], "iss": "https://idp.example", "iat": 1000, "exp": 1600});
        let good = signed(&pair, "k1", claims.clone());
        let (principal, lifetime) = validator.validate(&message("", &good), at(1100)).expect("valid");
        assert_eq!((principal.to_string(), lifetime), ("User:svc".to_string(), Duration::from_secs(500)));
        assert!(validator.validate(&message("", &good), at(1620)).is_ok(), "within the default 30 s of clock skew");
        assert_eq!(validator.validate(&message("", &good), at(1630)).unwrap_err().reason, "the token has expired");

        let refused = |token: &str| validator.validate(&message("", token), at(1100)).unwrap_err().reason;
        let with = |change: Value| {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
            c
        };
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], BASE64URL.encode(with(serde_json::json!({"client_id": "admin"})).to_string()), parts[2]);
        assert_eq!(refused(&tampered), "the token's signature does not verify");
        let (stranger, _) = key("k1");
        assert_eq!(refused(&signed(&stranger, "k1", claims.clone())), "the token's signature does not verify");
        assert!(refused(&signed(&pair, "k2", claims.clone())).contains("no key of the key set has kid \"k2\""));
        assert!(refused(&signed(&pair, "k1", with(serde_json::json!({"aud": "elsewhere"})))).contains("audience"));
        assert!(refused(&signed(&pair, "k1", with(serde_json::json!({"iss": "https://evil.example"})))).contains("issuer"));
        let mut no_iat = claims.clone();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(refused(&signed(&pair, "k1", no_iat)), "the token has no 'iat' claim");
        assert!(refused(&signed(&pair, "k1", with(serde_json::json!({"nbf": 1200})))).contains("nbf"));
        assert!(refused(&token(claims.clone())).contains("algorithm none is not accepted"), "an unsecured token");

        // A rotated key set is read again: the new key signs, the old one no longer does.
        std::thread::sleep(Duration::from_millis(20));
        let (next, set) = key("k2");
        std::fs::write(&jwks, set).unwrap();
        assert!(validator.validate(&message("", &signed(&next, "k2", claims.clone())), at(1100)).is_ok());
        assert!(refused(&good).contains("kid \"k1\""));
    }

    #[test]
    fn signed_tokens_need_a_key_set_that_loads() {
        let settings = |url: &str| -> Layer { [("sasl.oauthbearer.jwks.endpoint.url".to_string(), url.to_string())].into_iter().collect() };
        for (url, why) in [
            ("ftp://idp.example/jwks", "expected an https://, http:// or file:/// URL"),
            ("file:///nonexistent/jwks.json", "cannot read /nonexistent/jwks.json"),
            ("file:relative.json", "absolute path"),
            ("http://127.0.0.1:1/jwks", "fetching http://127.0.0.1:1/jwks: io: Connection refused"),
        ] {
            let e = SignedValidator::new("SASL_SSL", &settings(url)).err().unwrap();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(SignedValidator::new("SASL_SSL", &Layer::new()).err().unwrap().contains("set sasl.oauthbearer.jwks.endpoint.url"));
    }
}
