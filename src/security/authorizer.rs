//! The authorizer: Kafka's StandardAuthorizer rules over the cluster's ACLs. It is on when
//! `authorizer.class.name` names Kafka's authorizer; without it every request is allowed and
//! nothing is checked.
//!
//! The rules: a super user may do anything; otherwise a DENY that applies wins, then an ALLOW
//! that applies allows, and with neither the request is allowed only when no ACL at all names
//! the resource and `allow.everyone.if.no.acl.found` is set. An ACL applies when its pattern
//! names the resource (the literal name, `*`, or a prefix of it), its principal is the
//! requester's or `User:*`, its host is the client's address or `*`, and its operation is the
//! one asked for or ALL; an ALLOW of READ, WRITE, DELETE or ALTER also allows DESCRIBE, and
//! one of ALTER_CONFIGS allows DESCRIBE_CONFIGS.

use super::acl::{AclBinding, Acls, Operation, PatternType, Permission, Resource, ResourceType, WILDCARD};
use super::Principal;

/// The class names that switch the authorizer on: KRaft's, and the ZooKeeper-era one that
/// older configurations name.
pub const AUTHORIZER_CLASSES: [&str; 2] = ["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"];

/// Everyone's principal in an ACL.
const ANY_PRINCIPAL: &str = "User:*";

#[derive(Debug, Clone)]
pub struct Authorizer {
    /// `super.users`: allowed everything, whatever the ACLs say.
    pub super_users: Vec<Principal>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl Authorizer {
    /// Whether `principal`, connected from `host`, may do `operation` on `resource`.
    pub fn authorize(&self, acls: &Acls, principal: &Principal, host: &str, operation: Operation, resource: &Resource) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let principal = principal.to_string();
        let (mut named, mut allowed) = (false, false);
        for acl in acls.covering(resource) {
            named = true;
            if !applies_to(acl, &principal, host) {
                continue;
            }
            match acl.permission {
                Permission::Deny if acl.operation == operation || acl.operation == Operation::All => return false,
                Permission::Allow if implies(acl.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!named && self.allow_if_no_acl)
    }

    /// Whether `principal` may do `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`): an ALLOW that applies and that no DENY covers entirely.
    pub fn authorize_any(&self, acls: &Acls, principal: &Principal, host: &str, operation: Operation, kind: ResourceType) -> bool {
        // A name no ACL is meant to name: allowed for super users, and for everyone when no
        // ACL of the type covers every name.
        if self.authorize(acls, principal, host, operation, &Resource { kind, name: "hardcode" }) {
            return true;
        }
        let principal = principal.to_string();
        let applicable = |acl: &&AclBinding| applies_to(acl, &principal, host);
        let denies = |deny: &AclBinding, allow: &AclBinding| {
            deny.permission == Permission::Deny
                && (deny.operation == operation || deny.operation == Operation::All)
                && match deny.pattern {
                    PatternType::Literal => deny.name == WILDCARD || (allow.pattern == PatternType::Literal && deny.name == allow.name),
                    PatternType::Prefixed => allow.name.starts_with(&deny.name),
                }
        };
        acls.of_type(kind)
            .filter(applicable)
            .filter(|acl| acl.permission == Permission::Allow && implies(acl.operation, operation))
            .any(|allow| !acls.of_type(kind).filter(applicable).any(|deny| denies(deny, allow)))
    }
}

fn applies_to(acl: &AclBinding, principal: &str, host: &str) -> bool {
    (acl.principal == principal || acl.principal == ANY_PRINCIPAL) && (acl.host == host || acl.host == WILDCARD)
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn implies(granted: Operation, wanted: Operation) -> bool {
    use Operation::*;
    granted == wanted
        || granted == All
        || match wanted {
            Describe => matches!(granted, Read | Write | Delete | Alter),
            DescribeConfigs => granted == AlterConfigs,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "10.0.0.1";

    fn acl(kind: ResourceType, name: &str, pattern: PatternType, principal: &str, operation: Operation, permission: Permission) -> AclBinding {
        AclBinding { resource_type: kind, name: name.into(), pattern, principal: principal.into(), host: "*".into(), operation, permission }
    }

    fn topic_acl(name: &str, pattern: PatternType, operation: Operation, permission: Permission) -> AclBinding {
        acl(ResourceType::Topic, name, pattern, "User:alice", operation, permission)
    }

    fn acls(bindings: impl IntoIterator<Item = AclBinding>) -> Acls {
        let mut acls = Acls::default();
        bindings.into_iter().for_each(|b| acls.add(b));
        acls
    }

    fn authorizer(allow_if_no_acl: bool) -> Authorizer {
        Authorizer { super_users: vec![Principal::user("admin")], allow_if_no_acl }
    }

    fn may(acls: &Acls, allow_if_no_acl: bool, who: &str, operation: Operation, topic: &str) -> bool {
        authorizer(allow_if_no_acl).authorize(acls, &Principal::user(who), HOST, operation, &Resource::topic(topic))
    }

    #[test]
    fn deny_wins_over_allow() {
        let a = acls([topic_acl("t", PatternType::Literal, Operation::Read, Permission::Allow), topic_acl("t", PatternType::Prefixed, Operation::Read, Permission::Deny)]);
        assert!(!may(&a, true, "alice", Operation::Read, "t"));
        // A DENY of READ denies only READ; the ALLOW of READ still implies DESCRIBE.
        assert!(may(&a, false, "alice", Operation::Describe, "t"));
        let all = acls([topic_acl("t", PatternType::Literal, Operation::Write, Permission::Allow), topic_acl("*", PatternType::Literal, Operation::All, Permission::Deny)]);
        assert!(!may(&all, true, "alice", Operation::Write, "t"));
    }

    #[test]
    fn literal_prefixed_and_wildcard_patterns() {
        let a = acls([topic_acl("orders", PatternType::Prefixed, Operation::Write, Permission::Allow), topic_acl("*", PatternType::Literal, Operation::Read, Permission::Allow)]);
        assert!(may(&a, false, "alice", Operation::Write, "orders-eu"));
        assert!(!may(&a, false, "alice", Operation::Write, "payments"));
        assert!(may(&a, false, "alice", Operation::Read, "payments"));
        let literal = acls([topic_acl("orders", PatternType::Literal, Operation::Write, Permission::Allow)]);
        assert!(!may(&literal, false, "alice", Operation::Write, "orders-eu"));
        // Principals and hosts: another user's ACL does not apply; `User:*` applies to all.
        assert!(!may(&literal, false, "bob", Operation::Write, "orders"));
        let everyone = acls([acl(ResourceType::Topic, "t", PatternType::Literal, ANY_PRINCIPAL, Operation::Write, Permission::Allow)]);
        assert!(may(&everyone, false, "bob", Operation::Write, "t"));
        let mut elsewhere = topic_acl("t", PatternType::Literal, Operation::Write, Permission::Allow);
        elsewhere.host = "10.9.9.9".into();
        assert!(!may(&acls([elsewhere]), false, "alice", Operation::Write, "t"));
    }

    #[test]
    fn implied_operations() {
        for granted in [Operation::Read, Operation::Write, Operation::Delete, Operation::Alter, Operation::All] {
            assert!(may(&acls([topic_acl("t", PatternType::Literal, granted, Permission::Allow)]), false, "alice", Operation::Describe, "t"), "{granted:?}");
        }
        let configs = acls([topic_acl("t", PatternType::Literal, Operation::AlterConfigs, Permission::Allow)]);
        assert!(may(&configs, false, "alice", Operation::DescribeConfigs, "t"));
        assert!(!may(&configs, false, "alice", Operation::Describe, "t"));
        let read = acls([topic_acl("t", PatternType::Literal, Operation::Read, Permission::Allow)]);
        assert!(!may(&read, false, "alice", Operation::Write, "t"));
    }

    #[test]
    fn super_users_and_no_acl_found() {
        let a = acls([topic_acl("t", PatternType::Literal, Operation::All, Permission::Deny)]);
        assert!(may(&a, false, "admin", Operation::Write, "t"), "super users pass every DENY");
        assert!(may(&a, true, "bob", Operation::Write, "other"), "no ACL names it");
        assert!(!may(&a, false, "bob", Operation::Write, "other"));
        // An ACL of someone else on the resource means it is no longer unguarded.
        assert!(!may(&a, true, "bob", Operation::Write, "t"));
    }

    #[test]
    fn authorize_any_of_a_type() {
        let alice = Principal::user("alice");
        let any = |a: &Acls| authorizer(false).authorize_any(a, &alice, HOST, Operation::Write, ResourceType::Topic);
        assert!(any(&acls([topic_acl("logs", PatternType::Prefixed, Operation::Write, Permission::Allow)])));
        assert!(!any(&acls([topic_acl("logs", PatternType::Prefixed, Operation::Write, Permission::Allow), topic_acl("lo", PatternType::Prefixed, Operation::Write, Permission::Deny)])));
        assert!(!any(&Acls::default()));
        assert!(authorizer(true).authorize_any(&Acls::default(), &alice, HOST, Operation::Write, ResourceType::Topic));
    }
}
