//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the server side of the exchange, and
//! the credentials it checks against, which keep no password: a salt, an iteration count and
//! the stored and server keys derived from the salted password.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::sasl::Step;
use super::Principal;

/// The SCRAM variants, by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

/// Kafka's bounds on the iteration count of a stored credential.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    pub fn parse(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The type byte of AlterUserScramCredentials and DescribeUserScramCredentials.
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's SaltedPassword: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations).to_vec(),
            ScramMechanism::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations).to_vec(),
        }
    }
}

/// A user's credential for one mechanism (Kafka's UserScramCredentialRecord without the name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl ScramCredential {
    /// The credential for a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(mechanism: ScramMechanism, salt: Vec<u8>, salted_password: &[u8], iterations: i32) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential { salt, stored_key: mechanism.hash(&client_key), server_key: mechanism.hmac(salted_password, b"Server Key"), iterations }
    }
}

/// Where an exchange looks a user's credential up.
pub trait ScramCredentials: Send + Sync {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// One client's exchange: client-first, server-first, client-final, server-final.
pub struct ScramExchange {
    mechanism: ScramMechanism,
    credentials: std::sync::Arc<dyn ScramCredentials>,
    state: State,
}

enum State {
    Start,
    Challenged(Box<Challenged>),
    Finished,
}

/// What the server-first message committed to, for checking the client-final one.
struct Challenged {
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    /// The client's nonce and this server's after it.
    nonce: String,
    /// How much of `nonce` is the client's.
    client_nonce_len: usize,
    client_first_bare: String,
    server_first: String,
}

/// What every failure tells the client: nothing on which part was wrong.
const INVALID: &str = "Authentication failed: Invalid user credentials";

impl ScramExchange {
    pub fn new(mechanism: ScramMechanism, credentials: std::sync::Arc<dyn ScramCredentials>) -> ScramExchange {
        ScramExchange { mechanism, credentials, state: State::Start }
    }

    pub fn step(&mut self, token: &[u8]) -> Step {
        let Ok(message) = std::str::from_utf8(token) else {
            return Step::Failed("Authentication failed: a SCRAM message is not UTF-8".into());
        };
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => self.client_first(message),
            State::Challenged(challenged) => self.client_final(message, &challenged),
            State::Finished => Step::Failed("Authentication failed: the SCRAM exchange is over".into()),
        }
    }

    fn client_first(&mut self, message: &str) -> Step {
        // gs2-header: channel binding flag, optional authzid; then the bare message.
        let mut parts = message.splitn(3, ',');
        let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
            return Step::Failed("Authentication failed: malformed SCRAM client-first message".into());
        };
        if binding != "n" && binding != "y" {
            return Step::Failed("Authentication failed: SCRAM channel binding is not supported".into());
        }
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", name)) => user = unescape_name(name),
                Some(("r", nonce)) => client_nonce = Some(nonce),
                Some(("m", _)) => return Step::Failed("Authentication failed: mandatory SCRAM extensions are not supported".into()),
                Some(("tokenauth", _)) => return Step::Failed("Authentication failed: delegation tokens are not supported".into()),
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce.filter(|n| !n.is_empty())) else {
            return Step::Failed("Authentication failed: malformed SCRAM client-first message".into());
        };
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if unescape_name(authzid).as_deref() != Some(user.as_str()) {
                return Step::Failed("Authentication failed: the authorization id differs from the user name".into());
            }
        }
        let Some(credential) = self.credentials.credential(&user, self.mechanism) else {
            return Step::Failed(INVALID.into());
        };
        let nonce = format!("{client_nonce}{}", uuid::Uuid::new_v4().simple());
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&credential.salt), credential.iterations);
        let challenge = server_first.clone().into_bytes();
        let gs2_header = format!("{binding},{authzid},");
        self.state = State::Challenged(Box::new(Challenged { user, credential, gs2_header, nonce, client_nonce_len: client_nonce.len(), client_first_bare: bare.to_string(), server_first }));
        Step::Challenge(challenge)
    }

    fn client_final(&self, message: &str, challenged: &Challenged) -> Step {
        let Challenged { user, credential, gs2_header, nonce, client_nonce_len, client_first_bare, server_first } = challenged;
        let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
            return Step::Failed("Authentication failed: malformed SCRAM client-final message".into());
        };
        let mut binding = None;
        let mut final_nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", c)) => binding = Some(c),
                Some(("r", r)) => final_nonce = Some(r),
                _ => {}
            }
        }
        // librdkafka before 2.6.1 puts its own nonce in front of the whole one again. The
        // server's part is still there exactly, so it is accepted, as Kafka 3.8.1 to 3.9 did;
        // more of the clients in use log in than with Kafka 4's refusal.
        let repeated = || final_nonce.and_then(|n| n.strip_prefix(&nonce[..*client_nonce_len])) == Some(nonce.as_str());
        if binding != Some(BASE64.encode(gs2_header).as_str()) || (final_nonce != Some(nonce.as_str()) && !repeated()) {
            return Step::Failed(INVALID.into());
        }
        let Ok(proof) = BASE64.decode(proof) else {
            return Step::Failed(INVALID.into());
        };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = self.mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Step::Failed(INVALID.into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if self.mechanism.hash(&client_key) != credential.stored_key {
            return Step::Failed(INVALID.into());
        }
        let server_signature = self.mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Step::Done(Principal::user(user), format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// The client side of one exchange, as a broker logs in to another (RFC 5802): client-first,
/// then the proof for the server's challenge, then the server's signature checked.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    /// The server signature to expect, once the proof is sent.
    expected: Option<Vec<u8>>,
}

impl ScramClient {
    /// The exchange and its first message.
    pub fn start(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        let client_nonce = uuid::Uuid::new_v4().simple().to_string();
        let client_first_bare = format!("n={},r={client_nonce}", escape_name(user));
        let first = format!("n,,{client_first_bare}").into_bytes();
        (ScramClient { mechanism, password: password.to_string(), client_first_bare, client_nonce, expected: None }, first)
    }

    /// The answer to the server's next message: `Some` token to send, `None` once the server
    /// proved it knows the credential.
    pub fn step(&mut self, message: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let message = std::str::from_utf8(message).map_err(|_| "a SCRAM message is not UTF-8".to_string())?;
        match self.expected.take() {
            None => self.client_final(message).map(Some),
            Some(expected) => {
                let signature = message.strip_prefix("v=").and_then(|v| BASE64.decode(v).ok());
                match signature {
                    Some(s) if s == expected => Ok(None),
                    _ => Err(format!("the server's final SCRAM message does not prove it knows the credential: {message:?}")),
                }
            }
        }
    }

    fn client_final(&mut self, server_first: &str) -> Result<Vec<u8>, String> {
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in server_first.split(',') {
            match attribute.split_once('=') {
                Some(("r", r)) => nonce = Some(r),
                Some(("s", s)) => salt = BASE64.decode(s).ok(),
                Some(("i", i)) => iterations = i.parse::<u32>().ok(),
                _ => {}
            }
        }
        let malformed = || format!("malformed SCRAM server-first message {server_first:?}");
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else { return Err(malformed()) };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() || !(1..=MAX_ITERATIONS as u32).contains(&iterations) {
            return Err(malformed());
        }
        let salted = self.mechanism.salted_password(&self.password, &salt, iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self.mechanism.hmac(&self.mechanism.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        self.expected = Some(self.mechanism.hmac(&self.mechanism.hmac(&salted, b"Server Key"), auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }
}

/// A user name as a SCRAM `saslname`.
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// A SCRAM `saslname`: `=2C` and `=3D` stand for `,` and `=`; any other `=` is malformed.
fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct One(ScramCredential);

    impl ScramCredentials for One {
        fn credential(&self, user: &str, _: ScramMechanism) -> Option<ScramCredential> {
            (user == "alice").then(|| self.0.clone())
        }
    }

    fn server() -> ScramExchange {
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = mechanism.salted_password("pencil", &salt, 4096);
        let credentials = Arc::new(One(ScramCredential::from_salted_password(mechanism, salt, &salted, 4096)));
        ScramExchange::new(mechanism, credentials)
    }

    /// A whole exchange between [`ScramClient`] and the server, with RFC 7677's salt.
    fn exchange(password: &str) -> Step {
        let mut server = server();
        let (mut client, first) = ScramClient::start(ScramMechanism::Sha256, "alice", password);
        let Step::Challenge(challenge) = server.step(&first) else { panic!("no challenge") };
        assert!(String::from_utf8_lossy(&challenge).ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        let last = client.step(&challenge).unwrap().expect("the client's proof");
        let step = server.step(&last);
        if let Step::Done(_, server_final) = &step {
            assert_eq!(client.step(server_final), Ok(None), "the server proves it knows the credential");
        }
        step
    }

    /// An exchange with the right password, by hand, whose client-final nonce is made from the
    /// server's by `final_nonce`.
    fn exchange_with(final_nonce: impl Fn(&str) -> String) -> Step {
        let mechanism = ScramMechanism::Sha256;
        let mut server = server();
        let Step::Challenge(first) = server.step(b"n,,n=alice,r=rOprNGfwEbeRWgbNEkqO") else { panic!("no challenge") };
        let first = String::from_utf8(first).unwrap();
        let nonce = first.strip_prefix("r=").unwrap().split(',').next().unwrap().to_string();
        let salted = mechanism.salted_password("pencil", &BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(), 4096);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={}", final_nonce(&nonce));
        let auth_message = format!("n=alice,r=rOprNGfwEbeRWgbNEkqO,{first},{without_proof}");
        let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        server.step(format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes())
    }

    #[test]
    fn the_client_refuses_a_server_that_does_not_prove_the_credential() {
        let (mut client, _) = ScramClient::start(ScramMechanism::Sha512, "a=b,c", "secret");
        assert!(client.client_first_bare.starts_with("n=a=3Db=2Cc,r="));
        let nonce = client.client_nonce.clone();
        assert!(client.step(format!("r={nonce},s=AAAA,i=4096").as_bytes()).is_err(), "the server must add to the nonce");
        let last = client.step(format!("r={nonce}xyz,s=AAAA,i=4096").as_bytes()).unwrap().unwrap();
        assert!(String::from_utf8(last).unwrap().starts_with(&format!("c=biws,r={nonce}xyz,p=")));
        assert!(client.step(b"v=AAAA").is_err());
    }

    #[test]
    fn a_right_password_proves_the_user_and_a_wrong_one_does_not() {
        assert!(matches!(exchange("pencil"), Step::Done(p, _) if p == Principal::user("alice")));
        assert!(matches!(exchange("pen"), Step::Failed(m) if m == INVALID));
    }

    #[test]
    fn the_nonce_must_be_the_servers_or_old_librdkafkas_repetition_of_it() {
        let done = |f: fn(&str) -> String| matches!(exchange_with(f), Step::Done(..));
        assert!(done(|n| n.to_string()));
        assert!(done(|n| format!("rOprNGfwEbeRWgbNEkqO{n}")), "librdkafka before 2.6.1");
        assert!(!done(|n| format!("other{n}")));
        assert!(!done(|n| n[..n.len() - 1].to_string()));
        assert!(!done(|_| "rOprNGfwEbeRWgbNEkqO".to_string()), "the client's nonce alone");
    }

    #[test]
    fn malformed_and_unknown_client_first_messages_fail() {
        let credentials = Arc::new(One(ScramCredential { salt: vec![1], stored_key: vec![2], server_key: vec![3], iterations: 4096 }));
        for message in ["", "n,,", "p=tls-unique,,n=alice,r=x", "n,,n=bob,r=x", "n,,n=al=ice,r=x", "n,,n=alice,r=x,m=ext", "n,a=bob,n=alice,r=x"] {
            let step = ScramExchange::new(ScramMechanism::Sha512, credentials.clone()).step(message.as_bytes());
            assert!(matches!(step, Step::Failed(_)), "{message}");
        }
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    }
}
