//! A JSON Web Key Set (RFC 7517): the public keys an identity provider signs its tokens with,
//! and the check of a JWS signature (RFC 7515) against them. The algorithms are those of
//! asymmetric keys, which a broker can hold without being able to mint tokens: RS256/384/512,
//! PS256/384/512, ES256/384 and EdDSA (Ed25519).

use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

use super::oauthbearer::BASE64URL;

/// The usable signing keys of a set.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Key>,
}

#[derive(Debug, Clone)]
struct Key {
    kid: Option<String>,
    /// The algorithm the set ties the key to (`alg`), if it does.
    alg: Option<String>,
    public: Public,
}

#[derive(Debug, Clone)]
enum Public {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point (0x04, x, y) on `crv`.
    Ec { crv: String, point: Vec<u8> },
    Ed25519(Vec<u8>),
}

impl KeySet {
    /// Parses a set (`{"keys": [...]}`). Keys for encryption (`"use":"enc"`) and of kinds no
    /// algorithm here verifies (`oct`, other curves) are left out; a set left empty is refused.
    pub fn parse(json: &str) -> Result<KeySet, String> {
        let set: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let entries = set.get("keys").and_then(Value::as_array).ok_or("not a JSON Web Key Set: no \"keys\" list")?;
        let mut keys = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_object().ok_or_else(|| format!("key {i} is not a JSON object"))?;
            let text = |name: &str| entry.get(name).and_then(Value::as_str);
            if text("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let bytes = |name: &str| -> Result<Vec<u8>, String> {
                let value = text(name).ok_or_else(|| format!("key {i} has no \"{name}\""))?;
                BASE64URL.decode(value).map_err(|_| format!("key {i}'s \"{name}\" is not base64url"))
            };
            let public = match (text("kty"), text("crv")) {
                (Some("RSA"), _) => Public::Rsa { n: bytes("n")?, e: bytes("e")? },
                (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    Public::Ec { crv: crv.to_string(), point: [&[4u8][..], &x, &y].concat() }
                }
                (Some("OKP"), Some("Ed25519")) => Public::Ed25519(bytes("x")?),
                _ => continue,
            };
            keys.push(Key { kid: text("kid").map(String::from), alg: text("alg").map(String::from), public });
        }
        if keys.is_empty() {
            return Err("the key set holds no signing key Gregor can use (RSA, EC P-256 or P-384, or Ed25519)".into());
        }
        Ok(KeySet { keys })
    }

    /// Whether a key of the set has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Checks the signature of `signing_input` (`header.claims` as sent) with the key the
    /// header names (`kid`) or, without one, with any key fit for its `alg`.
    pub fn verify(&self, header: &Map<String, Value>, signing_input: &[u8], signature: &[u8]) -> Result<(), String> {
        let alg = header.get("alg").and_then(Value::as_str).ok_or("the token's header has no \"alg\"")?;
        let kid = header.get("kid").and_then(Value::as_str);
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
            .collect();
        if candidates.is_empty() {
            return Err(match kid {
                Some(kid) => format!("no key of the key set has kid {kid:?} for {alg}"),
                None => format!("no key of the key set is for {alg}"),
            });
        }
        let mut fitting = false;
        for key in candidates {
            let Some(checked) = key.check(alg, signing_input, signature) else { continue };
            fitting = true;
            if checked {
                return Ok(());
            }
        }
        match fitting {
            true => Err("the token's signature does not verify".into()),
            false => Err(format!("the token's algorithm {alg} is not accepted, or fits none of the keys (accepted: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")),
        }
    }
}

impl Key {
    /// Whether the signature verifies with this key, or None when `alg` does not fit the key.
    fn check(&self, alg: &str, message: &[u8], signature: &[u8]) -> Option<bool> {
        let fixed = |algorithm: &'static dyn VerificationAlgorithm, key: &[u8]| UnparsedPublicKey::new(algorithm, key).verify(message, signature).is_ok();
        Some(match (&self.public, alg) {
            (Public::Rsa { n, e }, _) => {
                let params = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                RsaPublicKeyComponents { n, e }.verify(params, message, signature).is_ok()
            }
            (Public::Ec { crv, point }, "ES256") if crv == "P-256" => fixed(&signature::ECDSA_P256_SHA256_FIXED, point),
            (Public::Ec { crv, point }, "ES384") if crv == "P-384" => fixed(&signature::ECDSA_P384_SHA384_FIXED, point),
            (Public::Ed25519(x), "EdDSA") => fixed(&signature::ED25519, x),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn header(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn signatures_verify_with_the_key_named_and_no_other() {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap().as_ref(), &rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let b64 = |b: &[u8]| BASE64URL.encode(b);
        let set = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "x": b64(ed.public_key().as_ref())},
            {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]})
        .to_string();
        let keys = KeySet::parse(&set).unwrap();
        assert_eq!(keys.keys.len(), 2, "the encryption and symmetric keys are left out");

        let input = b"header.claims";
        let es = ec.sign(&rng, input).unwrap();
        assert_eq!(keys.verify(&header(serde_json::json!({"alg": "ES256", "kid": "ec-1"})), input, es.as_ref()), Ok(()));
        assert_eq!(keys.verify(&header(serde_json::json!({"alg": "ES256"})), input, es.as_ref()), Ok(()), "found without a kid");
        assert_eq!(keys.verify(&header(serde_json::json!({"alg": "ES256", "kid": "ec-1"})), b"header.other", es.as_ref()).unwrap_err(), "the token's signature does not verify");
        let eddsa = ed.sign(input);
        assert_eq!(keys.verify(&header(serde_json::json!({"alg": "EdDSA", "kid": "ed-1"})), input, eddsa.as_ref()), Ok(()));
        assert!(keys.verify(&header(serde_json::json!({"alg": "ES256", "kid": "ed-1"})), input, es.as_ref()).unwrap_err().contains("no key of the key set has kid"));
        assert!(keys.verify(&header(serde_json::json!({"alg": "ES256", "kid": "nobody"})), input, es.as_ref()).unwrap_err().contains("\"nobody\""));
        assert!(keys.verify(&header(serde_json::json!({"alg": "HS256"})), input, es.as_ref()).unwrap_err().contains("not accepted"));
        assert!(keys.verify(&header(serde_json::json!({"alg": "none"})), input, b"").is_err());
    }

    #[test]
    fn malformed_or_unusable_sets_are_refused() {
        for (json, why) in [
            ("[", "not JSON"),
            ("{}", "no \"keys\""),
            (r#"{"keys": [{"kty": "RSA", "n": "AQAB"}]}"#, "no \"e\""),
            (r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"}]}"#, "not base64url"),
            (r#"{"keys": [{"kty": "oct", "k": "AA"}]}"#, "no signing key"),
        ] {
            let e = KeySet::parse(json).unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }
}
