//! Who a client is, and (as it grows) how that is proven and what it may do.

pub mod certs;
mod jwks;
mod key_source;
pub mod oauthbearer;
pub mod principal_mapping;
mod reloading;
pub mod sasl;
pub mod scram;
pub mod tls;
pub mod acl;
pub mod authorizer;

use std::fmt;

/// A Kafka principal, `type:name` as ACLs and `super.users` write it (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    /// Who a client is on a listener that does not authenticate, as in Kafka.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> Principal {
        Principal { kind: "User".into(), name: name.into() }
    }

    /// `type:name`, as `super.users` lists principals.
    pub fn parse(text: &str) -> Result<Principal, String> {
        match text.trim().split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Principal { kind: kind.into(), name: name.into() }),
            _ => Err(format!("principal {text:?} is not of the form type:name (User:alice)")),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Whether `key` is one of the TLS and SASL settings, kept for the listeners to read at start.
pub fn is_security_key(key: &str) -> bool {
    key.starts_with("ssl.") || key.starts_with("sasl.") || key.starts_with("listener.name.") || key == "connections.max.reauth.ms"
}

/// A listener's own value of a security setting (`listener.name.<listener>.<key>`, the
/// listener name in lower case as Kafka writes it), else the broker-wide one.
pub fn setting<'a>(settings: &'a crate::config::Layer, listener: &str, key: &str) -> Option<&'a str> {
    settings
        .get(&format!("listener.name.{}.{key}", listener.to_ascii_lowercase()))
        .or_else(|| settings.get(key))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// How a listener secures its connections, built once at start from its settings: a bad
/// setting or an unreadable file refuses the start.
#[derive(Clone, Default)]
pub struct ListenerSecurity {
    pub tls: Option<tls::TlsServer>,
    pub sasl: Option<std::sync::Arc<sasl::SaslServer>>,
}

impl ListenerSecurity {
    /// SCRAM users are looked up in `scram`.
    pub fn new(listener: &crate::config::Listener, settings: &crate::config::Layer, scram: std::sync::Arc<dyn scram::ScramCredentials>) -> Result<ListenerSecurity, String> {
        let context = |e: String| format!("listener {} ({}): {e}", listener.name, listener.protocol.name());
        let tls = match listener.protocol.tls() {
            true => Some(tls::TlsServer::new(&listener.name, settings).map_err(context)?),
            false => None,
        };
        let sasl = match listener.protocol.sasl() {
            true => Some(std::sync::Arc::new(sasl::SaslServer::new(&listener.name, settings, scram).map_err(context)?)),
            false => None,
        };
        Ok(ListenerSecurity { tls, sasl })
    }
}
