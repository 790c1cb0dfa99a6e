//! `process.roles`, `controller.quorum.voters` and `controller.listener.names`: what part a node
//! plays in the cluster, checked together with `node.id` and `listeners` as Kafka checks them
//! at start (KafkaConfig's KRaft validation), so a misconfigured node refuses to start with a
//! message saying what to fix.

use super::listeners::Listener;

/// `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    pub fn parse(value: &str) -> Result<Roles, String> {
        let mut roles = Roles { broker: false, controller: false };
        for role in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let seen = match role {
                "broker" => std::mem::replace(&mut roles.broker, true),
                "controller" => std::mem::replace(&mut roles.controller, true),
                other => return Err(format!("unknown role {other:?}: roles are broker and controller")),
            };
            if seen {
                return Err(format!("role {role} is given twice"));
            }
        }
        if !roles.broker && !roles.controller {
            return Err("no role: use broker, controller or broker,controller".into());
        }
        Ok(roles)
    }
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// `host:port` of its controller listener.
    pub address: String,
}

pub fn parse_voters(value: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry.split_once('@').ok_or_else(|| format!("{entry:?} must be id@host:port"))?;
        let id: i32 = id.trim().parse().ok().filter(|id| *id >= 0).ok_or_else(|| format!("{entry:?} has a bad node id"))?;
        let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("{entry:?} must be id@host:port"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{entry:?} needs a host and a non-zero port"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("node id {id} appears twice"));
        }
        voters.push(Voter { id, address: address.to_string() });
    }
    Ok(voters)
}

pub fn parse_names(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_ascii_uppercase()).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("names no listener".into());
    }
    Ok(names)
}

/// Takes the controller listener out of `listeners` (the rest are the Kafka API's) and checks
/// the roles, the node id and the voters against each other.
pub fn split_and_check(roles: Roles, node_id: i32, voters: &[Voter], controller_names: &[String], listeners: Vec<Listener>) -> Result<(Vec<Listener>, Option<Listener>), String> {
    let (controller, kafka): (Vec<Listener>, Vec<Listener>) = listeners.into_iter().partition(|l| controller_names.contains(&l.name));
    if controller.len() > 1 {
        return Err(format!("listeners has {} controller listeners ({}); give one", controller.len(), controller_names.join(", ")));
    }
    let controller = controller.into_iter().next();
    let is_voter = voters.iter().any(|v| v.id == node_id);
    if !roles.broker {
        // A dedicated controller serves no clients, as in Kafka: its only listener is the quorum's.
        if voters.is_empty() {
            return Err("a controller-only node needs controller.quorum.voters (itself among them): a lone node is process.roles=broker,controller".into());
        }
        if let Some(l) = kafka.first() {
            return Err(format!("a controller-only node serves no clients: remove the {} listener from listeners, or add broker to process.roles", l.name));
        }
    } else if kafka.is_empty() {
        return Err("a broker needs a client listener in listeners besides the controller listener".into());
    }
    if let Some(l) = controller.as_ref().filter(|l| l.port == 0 && !voters.is_empty()) {
        return Err(format!("the {} listener needs a fixed port: other nodes reach it at that address", l.name));
    }
    if roles.controller {
        if !voters.is_empty() && !is_voter {
            return Err(format!("node.id {node_id} has the controller role but is not in controller.quorum.voters: add {node_id}@host:port there, or make it process.roles=broker"));
        }
        if (voters.len() > 1 || !roles.broker) && controller.is_none() {
            return Err(format!("a controller with other voters or brokers needs a listener for them: add {}://host:port to listeners", controller_names[0]));
        }
    } else {
        if voters.is_empty() {
            return Err("a broker-only node needs controller.quorum.voters to find the controllers".into());
        }
        if is_voter {
            return Err(format!("node.id {node_id} is a voter in controller.quorum.voters but process.roles has no controller: add controller to process.roles or use another node.id"));
        }
        if controller.is_none() {
            return Err(format!("a broker-only node needs a {}://host:port listener, where the active controller sends it the metadata log", controller_names[0]));
        }
    }
    Ok((kafka, controller))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str, port: u16) -> Listener {
        Listener { name: name.into(), host: "127.0.0.1".into(), port, advertised: None, protocol: crate::config::SecurityProtocol::Plaintext }
    }

    #[test]
    fn roles_and_voters_parse_as_kafka_writes_them() {
        assert_eq!(Roles::parse("controller, broker"), Ok(Roles { broker: true, controller: true }));
        assert!(Roles::parse("broker,broker").is_err());
        assert!(Roles::parse("zookeeper").is_err());
        assert!(Roles::parse("").is_err());
        let voters = parse_voters("1@127.0.0.1:9093, 2@host-2:9093").unwrap();
        assert_eq!(voters[1], Voter { id: 2, address: "host-2:9093".into() });
        assert!(parse_voters("1@a:1,1@b:2").unwrap_err().contains("twice"));
        assert!(parse_voters("a:1").is_err());
        assert!(parse_voters("1@a:0").is_err());
        assert!(parse_voters("-1@a:1").is_err());
    }

    #[test]
    fn inconsistent_roles_are_refused_saying_what_to_fix() {
        let both = Roles { broker: true, controller: true };
        let broker = Roles { broker: true, controller: false };
        let names = ["CONTROLLER".to_string()];
        let voters = parse_voters("1@h:1,2@h:2").unwrap();
        let check = |roles, id, voters: &[Voter], listeners: Vec<Listener>| split_and_check(roles, id, voters, &names, listeners);
        let (kafka, controller) = check(both, 1, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 2)]).unwrap();
        assert_eq!((kafka.len(), controller.unwrap().port), (1, 2));
        assert!(check(both, 1, &[], vec![listener("PLAINTEXT", 1)]).is_ok(), "the lone default");
        assert!(check(both, 3, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 2)]).unwrap_err().contains("not in controller.quorum.voters"));
        assert!(check(both, 1, &voters, vec![listener("PLAINTEXT", 1)]).unwrap_err().contains("needs a listener"));
        assert!(check(broker, 1, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 2)]).unwrap_err().contains("is a voter"));
        assert!(check(broker, 3, &[], vec![listener("PLAINTEXT", 1)]).unwrap_err().contains("needs controller.quorum.voters"));
        assert!(check(broker, 3, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 2)]).is_ok());
        assert!(check(both, 1, &voters, vec![listener("CONTROLLER", 2)]).unwrap_err().contains("client listener"));
        assert!(check(both, 1, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 0)]).unwrap_err().contains("fixed port"));
        let controller_only = Roles { broker: false, controller: true };
        assert_eq!(check(controller_only, 1, &voters, vec![listener("CONTROLLER", 2)]).unwrap().0.len(), 0);
        assert!(check(controller_only, 1, &voters, vec![listener("PLAINTEXT", 1), listener("CONTROLLER", 2)]).unwrap_err().contains("serves no clients"));
        assert!(check(controller_only, 1, &[], vec![listener("CONTROLLER", 2)]).unwrap_err().contains("needs controller.quorum.voters"));
        assert!(check(controller_only, 3, &voters, vec![listener("CONTROLLER", 2)]).unwrap_err().contains("not in controller.quorum.voters"));
        assert!(check(controller_only, 1, &voters, vec![]).unwrap_err().contains("needs a listener"));
    }
}
