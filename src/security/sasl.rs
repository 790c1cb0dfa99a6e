//! SASL for SASL_PLAINTEXT and SASL_SSL listeners: the mechanisms a listener offers and the
//! server side of each exchange (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with
//! unsecured or signed tokens).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::oauthbearer::{TokenValidator, UnsecuredValidator};
use super::scram::{ScramClient, ScramCredentials, ScramExchange, ScramMechanism};
use super::{setting, Principal};
use crate::config::Layer;

/// A SASL mechanism Gregor offers, by its IANA name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

/// What sasl.enabled.mechanisms may name.
const OFFERED: &str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER";

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            other => ScramMechanism::parse(other).map(Mechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// One step of an exchange.
pub enum Step {
    /// Send this challenge and wait for the client's next token.
    Challenge(Vec<u8>),
    /// The client proved who it is: send the final token.
    Done(Principal, Vec<u8>),
    /// Authentication failed, with the reason the client is told (never a secret).
    Failed(String),
}

/// A listener's SASL: its mechanisms and where each finds its users.
pub struct SaslServer {
    listener: String,
    mechanisms: Vec<Mechanism>,
    /// PLAIN's users and passwords, from `user_<name>="<password>"` in its JAAS config.
    plain_users: HashMap<String, String>,
    scram: Arc<dyn ScramCredentials>,
    /// How OAUTHBEARER's tokens are checked: its callback handler class and JAAS options.
    oauth: TokenValidator,
    failures: FailedLogins,
    /// How long each mechanism's sessions last before the client must re-authenticate
    /// (`connections.max.reauth.ms`, KIP-368); `None` for sessions that never expire.
    lifetimes: Vec<(Mechanism, Option<Duration>)>,
}

impl SaslServer {
    pub fn new(listener: &str, settings: &Layer, scram: Arc<dyn ScramCredentials>) -> Result<SaslServer, String> {
        let enabled = setting(settings, listener, "sasl.enabled.mechanisms")
            .ok_or_else(|| format!("set sasl.enabled.mechanisms (Gregor offers {OFFERED}; Kafka's default, GSSAPI, is not offered)"))?;
        let mut mechanisms = Vec::new();
        for name in enabled.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let mechanism = Mechanism::parse(name).ok_or_else(|| format!("sasl.enabled.mechanisms: {name} is not offered (Gregor offers {OFFERED})"))?;
            mechanisms.push(mechanism);
        }
        let mut plain_users = HashMap::new();
        if mechanisms.contains(&Mechanism::Plain) {
            let key = "plain.sasl.jaas.config";
            let jaas = setting(settings, listener, key).or_else(|| setting(settings, listener, "sasl.jaas.config")).ok_or_else(|| {
                format!("PLAIN needs its users: set listener.name.{}.{key} to a PlainLoginModule with user_<name>=\"<password>\" entries", listener.to_ascii_lowercase())
            })?;
            let options = parse_jaas(jaas).map_err(|e| format!("{key}: {e}"))?;
            plain_users = options.into_iter().filter_map(|(k, v)| k.strip_prefix("user_").map(|user| (user.to_string(), v))).collect();
            if plain_users.is_empty() {
                return Err(format!("{key} names no user: add user_<name>=\"<password>\" entries"));
            }
        }
        let oauth = match mechanisms.contains(&Mechanism::OAuthBearer) {
            true => TokenValidator::new(listener, settings)?,
            false => TokenValidator::Unsecured(UnsecuredValidator::new(&[])?),
        };
        let lifetimes = mechanisms.iter().map(|&m| Ok((m, session_lifetime(settings, listener, m)?))).collect::<Result<_, String>>()?;
        Ok(SaslServer { listener: listener.to_string(), mechanisms, plain_users, scram, oauth, failures: FailedLogins::default(), lifetimes })
    }

    /// How long a session authenticated by `mechanism` lasts, if it expires: its
    /// `connections.max.reauth.ms`, cut to what is left of the credential's own lifetime (an
    /// OAUTHBEARER token's). As in Kafka, a credential's expiry ends sessions only where
    /// re-authentication is on.
    pub fn session_lifetime(&self, mechanism: Mechanism, credential: Option<Duration>) -> Option<Duration> {
        let configured = self.lifetimes.iter().find(|(m, _)| *m == mechanism).and_then(|(_, lifetime)| *lifetime)?;
        Some(credential.map_or(configured, |c| c.min(configured)))
    }

    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Starts an exchange with `mechanism`, if this listener offers it.
    pub fn start(&self, mechanism: &str) -> Option<(Mechanism, Exchange)> {
        let mechanism = Mechanism::parse(mechanism).filter(|m| self.mechanisms.contains(m))?;
        Some((mechanism, match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(m) => Exchange::Scram(Box::new(ScramExchange::new(m, self.scram.clone()))),
            Mechanism::OAuthBearer => Exchange::OAuthBearer { refused: None, valid_for: None },
        }))
    }

    /// Checks an OAUTHBEARER message. A refused token gets RFC 7628's error challenge first;
    /// the client's answer to it (a lone 0x01) ends the exchange as failed.
    fn oauth_bearer(&self, refused: &mut Option<String>, valid_for: &mut Option<Duration>, message: &[u8]) -> Step {
        if let Some(reason) = refused.take() {
            return Step::Failed(reason);
        }
        match self.oauth.validate(message, SystemTime::now()) {
            Ok((principal, lifetime)) => {
                *valid_for = Some(lifetime);
                Step::Done(principal, Vec::new())
            }
            Err(refusal) => {
                *refused = Some(format!("Authentication failed: {}", refusal.reason));
                Step::Challenge(refusal.challenge())
            }
        }
    }

    /// Checks a PLAIN token: `authzid NUL user NUL password`.
    fn plain(&self, token: &[u8]) -> Step {
        let parts: Vec<&[u8]> = token.split(|&b| b == 0).collect();
        let [authzid, user, password] = parts[..] else {
            return Step::Failed("Authentication failed: invalid PLAIN token".into());
        };
        let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
            return Step::Failed("Authentication failed: invalid PLAIN token".into());
        };
        if !authzid.is_empty() && authzid != user {
            return Step::Failed("Authentication failed: the authorization id differs from the user name".into());
        }
        match self.plain_users.get(user) {
            Some(expected) if constant_time_eq(expected.as_bytes(), password) => Step::Done(Principal::user(user), Vec::new()),
            _ => Step::Failed("Authentication failed: Invalid username or password".into()),
        }
    }

    /// How long to hold the answer to a failed login from `ip`: longer the more that address
    /// failed lately, so guessing is slow; the delay holds only that connection.
    pub fn failed_login_delay(&self, ip: IpAddr) -> Duration {
        self.failures.record(ip)
    }
}

/// An exchange in progress on one connection.
pub enum Exchange {
    Plain,
    Scram(Box<ScramExchange>),
    /// `refused`: the reason the token was refused, told once the client answers the error
    /// challenge; `valid_for`: the accepted token's remaining lifetime.
    OAuthBearer { refused: Option<String>, valid_for: Option<Duration> },
}

impl Exchange {
    pub fn step(&mut self, server: &SaslServer, token: &[u8]) -> Step {
        match self {
            Exchange::Plain => server.plain(token),
            Exchange::Scram(scram) => scram.step(token),
            Exchange::OAuthBearer { refused, valid_for } => server.oauth_bearer(refused, valid_for, token),
        }
    }

    /// Why the client's token was refused, while the exchange waits for its answer to the
    /// error challenge (which some clients never send).
    pub fn pending_refusal(&self) -> Option<&str> {
        match self {
            Exchange::OAuthBearer { refused, .. } => refused.as_deref(),
            _ => None,
        }
    }

    /// How much longer the credential the client proved itself with stays valid, where it
    /// expires (an OAUTHBEARER token).
    pub fn credential_lifetime(&self) -> Option<Duration> {
        match self {
            Exchange::OAuthBearer { valid_for, .. } => *valid_for,
            _ => None,
        }
    }
}

/// `sasl.mechanism.inter.broker.protocol`, among the mechanisms Gregor speaks.
pub fn inter_broker_mechanism(name: &str) -> Result<Mechanism, String> {
    let default = if name == "GSSAPI" { " (GSSAPI, Kafka's default, is not offered)" } else { "" };
    Mechanism::parse(name).filter(|m| *m != Mechanism::OAuthBearer).ok_or_else(|| format!("sasl.mechanism.inter.broker.protocol={name}: brokers log in to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512{default}"))
}

/// How this broker logs in to the other brokers' SASL listener (`inter.broker.listener.name`):
/// with `sasl.mechanism.inter.broker.protocol`, as the `username` and `password` of that
/// mechanism's JAAS config on the listener (PlainLoginModule, ScramLoginModule), as Kafka's
/// brokers take them.
pub struct SaslLogin {
    mechanism: Mechanism,
    user: String,
    password: String,
}

impl SaslLogin {
    pub fn new(listener: &str, settings: &Layer, mechanism: Mechanism) -> Result<SaslLogin, String> {
        if mechanism == Mechanism::OAuthBearer {
            return Err("brokers log in to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not OAUTHBEARER".into());
        }
        let key = format!("{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
        let full_key = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        let jaas = setting(settings, listener, &key).or_else(|| setting(settings, listener, "sasl.jaas.config")).ok_or_else(|| {
            format!("brokers log in to each other on listener {listener} with {}: set {full_key} with username=\"...\" password=\"...\"", mechanism.name())
        })?;
        let options = parse_jaas(jaas).map_err(|e| format!("{full_key}: {e}"))?;
        let option = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match (option("username"), option("password")) {
            (Some(user), Some(password)) if !user.is_empty() => Ok(SaslLogin { mechanism, user, password }),
            _ => Err(format!("{full_key} needs username=\"...\" and password=\"...\": the credentials this broker logs in to the other brokers with")),
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// A new exchange and the first token to send.
    pub fn start(&self) -> (ClientExchange, Vec<u8>) {
        match self.mechanism {
            Mechanism::Plain => (ClientExchange::Plain, format!("\0{}\0{}", self.user, self.password).into_bytes()),
            Mechanism::Scram(m) => {
                let (client, first) = ScramClient::start(m, &self.user, &self.password);
                (ClientExchange::Scram(Box::new(client)), first)
            }
            Mechanism::OAuthBearer => unreachable!("SaslLogin::new refuses OAUTHBEARER"),
        }
    }
}

/// The client side of an exchange in progress.
pub enum ClientExchange {
    Plain,
    Scram(Box<ScramClient>),
}

impl ClientExchange {
    /// The answer to the server's token: `Some` token to send, `None` when logged in.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            ClientExchange::Plain => Ok(None),
            ClientExchange::Scram(client) => client.step(token),
        }
    }
}

/// `connections.max.reauth.ms` for `mechanism` on `listener`: Kafka's
/// `listener.name.<l>.<mechanism>.connections.max.reauth.ms`, else the listener's, else the
/// broker's; 0 (the default) lets sessions last as long as their connection.
fn session_lifetime(settings: &Layer, listener: &str, mechanism: Mechanism) -> Result<Option<Duration>, String> {
    let key = "connections.max.reauth.ms";
    let by_mechanism = format!("listener.name.{}.{}.{key}", listener.to_ascii_lowercase(), mechanism.name().to_ascii_lowercase());
    let Some(value) = settings.get(&by_mechanism).map(|v| v.trim()).or_else(|| setting(settings, listener, key)) else { return Ok(None) };
    match value.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(format!("{key}={value} is not a number of milliseconds (0 turns re-authentication off)")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Recent failed logins by client address.
#[derive(Default)]
struct FailedLogins {
    by_ip: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Kafka's connection.failed.authentication.delay.ms default, the delay of a first failure.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(100);
const MAX_FAILED_LOGIN_DELAY: Duration = Duration::from_secs(5);
/// A quiet address is forgiven after this long.
const FAILED_LOGIN_MEMORY: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond that the oldest are forgotten.
const FAILED_LOGIN_ADDRESSES: usize = 10_000;

impl FailedLogins {
    fn record(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut by_ip = self.by_ip.lock().expect("failed logins lock");
        if by_ip.len() >= FAILED_LOGIN_ADDRESSES && !by_ip.contains_key(&ip) {
            by_ip.retain(|_, (_, last)| now.duration_since(*last) < FAILED_LOGIN_MEMORY);
            // All of them failed lately (many addresses at once): the map still must not grow.
            if by_ip.len() >= FAILED_LOGIN_ADDRESSES {
                if let Some(oldest) = by_ip.iter().min_by_key(|(_, (_, last))| *last).map(|(ip, _)| *ip) {
                    by_ip.remove(&oldest);
                }
            }
        }
        let entry = by_ip.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILED_LOGIN_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        (FAILED_LOGIN_DELAY * entry.0).min(MAX_FAILED_LOGIN_DELAY)
    }
}

/// The options of a JAAS login module entry: `Module required key="value" ...;`.
pub(super) fn parse_jaas(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim().strip_suffix(';').ok_or("a JAAS entry ends with ';'")?;
    let mut rest = text.trim_start();
    let mut words = 0;
    // The module's class name and its control flag.
    while words < 2 {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return Err("expected `LoginModule required key=\"value\" ...;`".into());
        }
        rest = rest[end..].trim_start();
        words += 1;
    }
    let mut options = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(|| format!("expected key=value at {rest:?}"))?;
        let after = after.trim_start();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').ok_or_else(|| format!("unterminated quote after {key}="))?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_at(after.find(char::is_whitespace).unwrap_or(after.len())),
        };
        options.push((key.trim().to_string(), value.to_string()));
        rest = after.trim_start();
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::oauthbearer::SIGNED_VALIDATORS;

    #[test]
    fn jaas_options() {
        let options = parse_jaas(r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="a b" user_admin="a b" user_alice=y;"#).unwrap();
        assert_eq!(options, [("username", "admin"), ("password", "a b"), ("user_admin", "a b"), ("user_alice", "y")].map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(parse_jaas("PlainLoginModule required user_a=\"x\"").is_err());
        assert!(parse_jaas("PlainLoginModule required user_a=\"x;").is_err());
    }

    struct NoUsers;

    impl ScramCredentials for NoUsers {
        fn credential(&self, _: &str, _: ScramMechanism) -> Option<super::super::scram::ScramCredential> {
            None
        }
    }

    fn server(settings: &[(&str, &str)]) -> Result<SaslServer, String> {
        let settings = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SaslServer::new("SASL_PLAINTEXT", &settings, Arc::new(NoUsers))
    }

    #[test]
    fn an_oauthbearer_session_ends_with_its_token_only_where_reauthentication_is_on() {
        let token = Some(Duration::from_secs(30));
        let without = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]).unwrap();
        assert_eq!(without.session_lifetime(Mechanism::OAuthBearer, token), None);
        let with = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), ("connections.max.reauth.ms", "60000")]).unwrap();
        assert_eq!(with.session_lifetime(Mechanism::OAuthBearer, token), token, "the token expires first");
        assert_eq!(with.session_lifetime(Mechanism::OAuthBearer, Some(Duration::from_secs(600))), Some(Duration::from_secs(60)));
        let handler = "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class";
        let without_keys = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), (handler, SIGNED_VALIDATORS[1])]);
        assert!(without_keys.err().unwrap().contains("set sasl.oauthbearer.jwks.endpoint.url"));
        let unknown = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), (handler, "com.example.MyHandler")]);
        assert!(unknown.err().unwrap().contains("com.example.MyHandler: Gregor checks OAUTHBEARER tokens as Kafka's"));
        let bad_jaas = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), ("listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config", "M required unsecuredValidatorAllowableClockSkewMs=\"x\";")]);
        assert!(bad_jaas.err().unwrap().contains("unsecuredValidatorAllowableClockSkewMs"));
    }

    #[test]
    fn a_refused_token_gets_the_error_challenge_then_fails() {
        let server = server(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]).unwrap();
        let (_, mut exchange) = server.start("OAUTHBEARER").unwrap();
        let Step::Challenge(challenge) = exchange.step(&server, b"n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.e30.\x01\x01") else { panic!("an error challenge") };
        assert_eq!(challenge, br#"{"status":"invalid_token"}"#);
        assert!(matches!(exchange.step(&server, b"\x01"), Step::Failed(reason) if reason.contains("no 'exp' claim")));
        assert_eq!(exchange.credential_lifetime(), None);
    }

    #[test]
    fn a_broker_logs_in_with_the_username_and_password_of_its_listener_jaas_config() {
        let mut settings = Layer::new();
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="b-secret" user_broker="b-secret";"#;
        settings.insert("listener.name.internal.plain.sasl.jaas.config".into(), jaas.into());
        let login = SaslLogin::new("INTERNAL", &settings, Mechanism::Plain).unwrap();
        assert_eq!(login.start().1, b"\0broker\0b-secret");
        let missing = SaslLogin::new("INTERNAL", &settings, Mechanism::Scram(ScramMechanism::Sha256)).err().unwrap();
        assert!(missing.contains("listener.name.internal.scram-sha-256.sasl.jaas.config"), "{missing}");
        settings.insert("listener.name.internal.plain.sasl.jaas.config".into(), r#"PlainLoginModule required user_broker="x";"#.into());
        assert!(SaslLogin::new("INTERNAL", &settings, Mechanism::Plain).err().unwrap().contains("needs username"));
    }

    #[test]
    fn failed_logins_slow_down_their_address_only() {
        let failures = FailedLogins::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(failures.record(a), FAILED_LOGIN_DELAY);
        assert_eq!(failures.record(a), FAILED_LOGIN_DELAY * 2);
        assert_eq!(failures.record(b), FAILED_LOGIN_DELAY);
        for _ in 0..100 {
            failures.record(a);
        }
        assert_eq!(failures.record(a), MAX_FAILED_LOGIN_DELAY);
    }

    #[test]
    fn failed_logins_from_many_addresses_at_once_are_remembered_up_to_the_bound() {
        let failures = FailedLogins::default();
        let first: IpAddr = "2001:db8::1".parse().unwrap();
        failures.record(first);
        failures.record(first);
        for i in 0..FAILED_LOGIN_ADDRESSES as u128 + 100 {
            failures.record(IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001u128 << 80) + i)));
        }
        let by_ip = failures.by_ip.lock().unwrap();
        assert_eq!(by_ip.len(), FAILED_LOGIN_ADDRESSES);
        assert!(!by_ip.contains_key(&first), "the oldest address is forgotten first");
    }
}
