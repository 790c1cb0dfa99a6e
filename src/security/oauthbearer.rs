//! OAUTHBEARER (RFC 7628, KIP-255) with Kafka's unsecured JWS tokens, for development and
//! tests: the token is a JWT whose header says `"alg":"none"` and which carries no signature,
//! checked as Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler` checks it (a principal
//! claim, an expiry in the future, no issue time in the future, the required scope). Signed
//! tokens (Kafka's JWKS validation, KIP-768) are not offered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value;

use super::Principal;

/// The only server callback handler Gregor offers for OAUTHBEARER: Kafka's default.
pub const UNSECURED_VALIDATOR: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// JWTs are base64url; Kafka accepts them with or without padding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// How tokens are checked: Kafka's `unsecuredValidator*` options of the listener's
/// OAuthBearerLoginModule.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsecuredValidator {
    principal_claim: String,
    required_scope: Vec<String>,
    clock_skew: Duration,
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
        Ok(UnsecuredValidator { principal_claim, required_scope, clock_skew })
    }

    /// Checks a client's first message (GS2 header, `auth=Bearer <token>`, extensions); the
    /// principal and how much longer its token is valid.
    pub fn validate(&self, message: &[u8], now: SystemTime) -> Result<(Principal, Duration), Refusal> {
        let (authzid, token) = bearer_token(message).map_err(Refusal::invalid)?;
        let claims = unsecured_claims(token).map_err(Refusal::invalid)?;
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
        if time("iat")?.is_some_and(|issued_ms| issued_ms > now_ms + skew_ms) {
            return Err(Refusal::invalid("the token was issued in the future ('iat')"));
        }
        let principal = match claims.get(&self.principal_claim) {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => return Err(Refusal::invalid(format!("the token has no '{}' claim naming its principal", self.principal_claim))),
        };
        let scope: Vec<String> = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(items)) => scope_items(items),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
            Some(_) => return Err(Refusal::invalid("the token's 'scope' claim is neither a string nor a list")),
        };
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(s)) {
            return Err(Refusal { reason: format!("the token's scope lacks the required '{missing}'"), status: "insufficient_scope" });
        }
        if authzid.is_some_and(|a| a != principal) {
            return Err(Refusal::invalid(format!("the authorization id {:?} is not the token's principal {principal:?}", authzid.unwrap_or_default())));
        }
        Ok((Principal::user(&principal), Duration::from_millis((expires_ms - now_ms).max(0.0) as u64)))
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

/// The claims of an unsecured JWS: `base64url(header).base64url(claims).` with
/// `"alg":"none"` and no signature.
fn unsecured_claims(token: &str) -> Result<serde_json::Map<String, Value>, String> {
    let [header, claims, signature] = token.split('.').collect::<Vec<_>>()[..] else {
        return Err("the token is not a JWS (three base64url parts)".into());
    };
    let json = |part: &str, what: &str| -> Result<serde_json::Map<String, Value>, String> {
        let bytes = BASE64URL.decode(part).map_err(|_| format!("the token's {what} is not base64url"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("the token's {what} is not a JSON object")),
        }
    };
    if json(header, "header")?.get("alg").and_then(Value::as_str) != Some("none") || !signature.is_empty() {
        return Err("only unsecured tokens (\"alg\":\"none\", no signature) are accepted".into());
    }
    json(claims, "claims")
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

    #[test]
    fn an_unsecured_token_names_its_principal_until_it_expires() {
        let validator = UnsecuredValidator::new(&[]).unwrap();
        let good = token(serde_json::json!({"sub": "alice", "iat": 1000, "exp": 1060.5}));
        let (principal, lifetime) = validator.validate(&message("", &good), at(1010)).expect("valid");
        assert_eq!((principal.to_string(), lifetime), ("User:alice".to_string(), Duration::from_millis(50_500)));
        assert!(validator.validate(&message("a=alice", &good), at(1010)).is_ok(), "the same authorization id");
        assert!(validator.validate(&message("a=bob", &good), at(1010)).is_err());
        assert_eq!(validator.validate(&message("", &good), at(1061)).unwrap_err().reason, "the token has expired");
        assert!(validator.validate(&message("", &good), at(999)).is_err(), "issued in the future");
        let skewed = UnsecuredValidator::new(&[("unsecuredValidatorAllowableClockSkewMs".into(), "2000".into())]).unwrap();
        assert!(skewed.validate(&message("", &good), at(999)).is_ok());
    }

    #[test]
    fn malformed_signed_or_incomplete_tokens_are_refused() {
        let validator = UnsecuredValidator::new(&[]).unwrap();
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
        let validator = UnsecuredValidator::new(&options).unwrap();
        let scoped = token(serde_json::json!({"user": "svc", "exp": 2000, "scope": ["read", "write", "admin"]}));
        assert_eq!(validator.validate(&message("", &scoped), at(1000)).unwrap().0.to_string(), "User:svc");
        let narrow = token(serde_json::json!({"user": "svc", "exp": 2000, "scope": "read"}));
        let refusal = validator.validate(&message("", &narrow), at(1000)).unwrap_err();
        assert_eq!(refusal.status, "insufficient_scope");
        assert_eq!(refusal.challenge(), br#"{"status":"insufficient_scope"}"#);
        assert!(UnsecuredValidator::new(&[("unsecuredValidatorAllowableClockSkewMs".into(), "x".into())]).is_err());
    }
}
