//! `listeners`, `advertised.listeners` and `listener.security.protocol.map`: each is parsed on
//! its own, then [`combine`] checks them together into the listeners the broker binds.

use std::net::SocketAddr;

/// Kafka's default map: every security protocol as a listener name of its own.
pub const DEFAULT_PROTOCOL_MAP: &str = "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT";
const PROTOCOLS: &str = "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL";

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A listener the broker binds, and what clients that connect through it are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-case, as Kafka normalises listener names.
    pub name: String,
    /// Empty: every interface.
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// From `advertised.listeners`; `None` advertises the bound address.
    pub advertised: Option<(String, u16)>,
    /// From `listener.security.protocol.map`.
    pub protocol: SecurityProtocol,
}

/// How a listener's connections are secured, Kafka's four security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

impl Listener {
    pub fn bind_host(&self) -> &str {
        if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        }
    }

    /// Where clients are told to connect, given the address the listener is bound to.
    pub fn advertised_for(&self, bound: SocketAddr) -> (String, u16) {
        match &self.advertised {
            Some((host, port)) => (host.clone(), *port),
            None => (bound.ip().to_string(), bound.port()),
        }
    }
}

/// Parses `NAME://host:port,...`; a bare `host:port` is a PLAINTEXT listener.
pub fn parse_endpoints(value: &str) -> Result<Vec<Endpoint>, String> {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, addr) = match entry.split_once("://") {
            Some((name, addr)) => (name.to_ascii_uppercase(), addr),
            None => ("PLAINTEXT".to_string(), entry),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("{entry:?} has a bad listener name"));
        }
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{entry:?} needs host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = port.parse().map_err(|_| format!("{entry:?} has a bad port"))?;
        if endpoints.iter().any(|e| e.name == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        endpoints.push(Endpoint { name, host, port });
    }
    Ok(endpoints)
}

/// Parses `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(value: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let mut map: Vec<(String, SecurityProtocol)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| format!("{entry:?} needs NAME:PROTOCOL"))?;
        let (name, protocol) = (name.trim().to_ascii_uppercase(), protocol.trim().to_ascii_uppercase());
        let protocol = SecurityProtocol::parse(&protocol).ok_or_else(|| format!("unknown security protocol {protocol} (known: {PROTOCOLS})"))?;
        if map.iter().any(|(n, _)| *n == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        map.push((name, protocol));
    }
    Ok(map)
}

/// The listeners to bind, after the checks Kafka makes at start.
pub fn combine(bind: &[Endpoint], advertise: &[Endpoint], protocols: &[(String, SecurityProtocol)]) -> Result<Vec<Listener>, String> {
    if bind.is_empty() {
        return Err("listeners names no listener".into());
    }
    let mut listeners = Vec::new();
    for (i, l) in bind.iter().enumerate() {
        let protocol = protocols.iter().find(|(name, _)| *name == l.name).map(|&(_, p)| p).ok_or_else(|| {
            format!("listener {} has no security protocol: add {}:PLAINTEXT to listener.security.protocol.map", l.name, l.name)
        })?;
        if let Some(other) = bind[..i].iter().find(|o| o.port == l.port && l.port != 0) {
            return Err(format!("listeners {} and {} both use port {}", other.name, l.name, l.port));
        }
        let advertised = advertise.iter().find(|a| a.name == l.name).map(|a| (a.host.clone(), a.port));
        listeners.push(Listener { name: l.name.clone(), host: l.host.clone(), port: l.port, advertised, protocol });
    }
    for a in advertise {
        if !bind.iter().any(|l| l.name == a.name) {
            return Err(format!("advertised.listeners names {}, which is not in listeners", a.name));
        }
        if a.host == "0.0.0.0" || a.host == "::" {
            return Err(format!("advertised.listeners cannot use the non-routable address {} for {}: clients could not connect", a.host, a.name));
        }
    }
    Ok(listeners)
}

/// `zookeeper.listener`, `metrics.listener`: one `host:port` (or `PLAINTEXT://host:port`); empty for none.
pub fn parse_host_port(value: &str) -> Result<Option<SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    let endpoints = parse_endpoints(value)?;
    let endpoint = match endpoints.as_slice() {
        [] => return Ok(None),
        [one] if one.name == "PLAINTEXT" => one,
        _ => return Err("expected one host:port".into()),
    };
    let host = if endpoint.host.is_empty() { "0.0.0.0" } else { &endpoint.host };
    let addr = (host, endpoint.port).to_socket_addrs().map_err(|e| format!("cannot resolve {host:?}: {e}"))?.next();
    addr.map(Some).ok_or_else(|| format!("{host:?} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(bind: &str, advertise: &str, map: &str) -> Result<Vec<Listener>, String> {
        combine(&parse_endpoints(bind)?, &parse_endpoints(advertise)?, &parse_protocol_map(map)?)
    }

    #[test]
    fn several_listeners_with_names_and_advertised_addresses() {
        let l = listeners("PLAINTEXT://127.0.0.1:9092, internal://:9093", "INTERNAL://broker.local:19093", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!((l[1].name.as_str(), l[1].bind_host(), l[1].port), ("INTERNAL", "0.0.0.0", 9093));
        assert_eq!(l[0].advertised, None);
        assert_eq!(l[1].advertised, Some(("broker.local".to_string(), 19093)));
        assert_eq!(listeners("127.0.0.1:1", "", DEFAULT_PROTOCOL_MAP).unwrap()[0].name, "PLAINTEXT");
    }

    #[test]
    fn bad_listener_sets_are_refused_with_a_reason() {
        let refused = |bind, advertise, map| listeners(bind, advertise, map).unwrap_err();
        assert_eq!(listeners("SASL_SSL://127.0.0.1:1", "", DEFAULT_PROTOCOL_MAP).unwrap()[0].protocol, SecurityProtocol::SaslSsl);
        assert!(refused("A://127.0.0.1:1", "", DEFAULT_PROTOCOL_MAP).contains("no security protocol"));
        assert!(refused("A://127.0.0.1:1,B://127.0.0.1:1", "", "A:PLAINTEXT,B:PLAINTEXT").contains("both use port 1"));
        assert!(refused("A://127.0.0.1:1,a://127.0.0.1:2", "", "A:PLAINTEXT").contains("appears twice"));
        assert!(refused("PLAINTEXT://127.0.0.1:1", "OTHER://h:1", DEFAULT_PROTOCOL_MAP).contains("not in listeners"));
        assert!(refused("PLAINTEXT://127.0.0.1:1", "PLAINTEXT://0.0.0.0:1", DEFAULT_PROTOCOL_MAP).contains("non-routable"));
        assert!(refused("", "", DEFAULT_PROTOCOL_MAP).contains("no listener"));
        assert!(parse_protocol_map("A:TLS").is_err());
        // Port 0 asks for any free port, so several listeners may use it.
        assert!(listeners("A://127.0.0.1:0,B://127.0.0.1:0", "", "A:PLAINTEXT,B:PLAINTEXT").is_ok());
    }
}
