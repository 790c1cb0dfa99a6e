//! Who a client is, and (as it grows) how that is proven and what it may do.

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
