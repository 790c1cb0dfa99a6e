//! ACLs: who may do what to which resource (Kafka's `AclBinding`), and the filters CreateAcls,
//! DescribeAcls and DeleteAcls select them with. They live in the metadata image, so they are
//! as durable and replicated as topics (Kafka's AccessControlEntryRecord).
//!
//! The numeric codes are Kafka's (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`); the wire carries them as `i8`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself, or `*` for every resource of the type.
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

/// The name `*` of a LITERAL binding matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The only name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Self {
        Resource { kind: ResourceType::Topic, name }
    }

    pub fn group(name: &'a str) -> Self {
        Resource { kind: ResourceType::Group, name }
    }

    pub fn transactional_id(name: &'a str) -> Self {
        Resource { kind: ResourceType::TransactionalId, name }
    }

    pub fn cluster() -> Resource<'static> {
        Resource { kind: ResourceType::Cluster, name: CLUSTER_NAME }
    }
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}:{}", self.kind, self.name)
    }
}

/// One ACL: `permission` for `principal` from `host` to do `operation` on the resources the
/// pattern names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `type:name` (`User:alice`), or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*` for any.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Whether the binding's pattern names `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        self.resource_type == resource.kind
            && match self.pattern {
                PatternType::Literal => self.name == resource.name || self.name == WILDCARD,
                PatternType::Prefixed => resource.name.starts_with(&self.name),
            }
    }
}

/// How a filter selects patterns (Kafka's ANY, MATCH, or one pattern type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Any pattern type; with a name, only bindings of exactly that name.
    Any,
    /// Every binding that would apply to the named resource: the literal name, `*`, and the
    /// prefixes of the name.
    Match,
    Only(PatternType),
}

/// What DescribeAcls and DeleteAcls select; `None` is ANY (or a null string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let name = match (self.pattern, &self.name) {
            (PatternFilter::Match, Some(name)) => acl.covers(&Resource { kind: acl.resource_type, name }),
            (PatternFilter::Only(p), _) if p != acl.pattern => false,
            (_, name) => same(name, &acl.name),
        };
        name && self.resource_type.is_none_or(|t| t == acl.resource_type)
            && same(&self.principal, &acl.principal)
            && same(&self.host, &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// The cluster's ACLs, as the metadata image holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Acls {
    bindings: BTreeSet<AclBinding>,
}

impl Acls {
    /// Adds a binding; adding one that exists changes nothing, as in Kafka.
    pub fn add(&mut self, acl: AclBinding) {
        self.bindings.insert(acl);
    }

    pub fn remove(&mut self, acl: &AclBinding) -> Result<(), String> {
        if self.bindings.remove(acl) {
            Ok(())
        } else {
            Err(format!("removal of an unknown ACL {acl:?}"))
        }
    }

    pub fn contains(&self, acl: &AclBinding) -> bool {
        self.bindings.contains(acl)
    }

    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> + 'a {
        self.bindings.iter().filter(move |acl| filter.matches(acl))
    }

    /// The bindings whose pattern names `resource`, of any principal, operation or permission.
    pub fn covering<'a>(&'a self, resource: &'a Resource) -> impl Iterator<Item = &'a AclBinding> + 'a {
        self.bindings.iter().filter(move |acl| acl.covers(resource))
    }

    /// Every binding of a resource type.
    pub fn of_type(&self, kind: ResourceType) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter().filter(move |acl| acl.resource_type == kind)
    }
}

/// The wire codes of Kafka's ACL enums, both ways. Codes for ANY, MATCH and UNKNOWN have no
/// value here: a filter reads them as "any", a binding refuses them.
pub mod codes {
    use super::*;

    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;

    pub fn resource_type(code: i8) -> Option<ResourceType> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            _ => return None,
        })
    }

    pub fn of_resource_type(kind: ResourceType) -> i8 {
        match kind {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
        }
    }

    pub fn pattern_type(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    pub fn of_pattern_type(pattern: PatternType) -> i8 {
        match pattern {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    const OPERATIONS: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    /// ALL is 2, and the rest follow in Kafka's order.
    pub fn operation(code: i8) -> Option<Operation> {
        usize::try_from(code).ok().and_then(|c| c.checked_sub(2)).and_then(|i| OPERATIONS.get(i).copied())
    }

    pub fn of_operation(operation: Operation) -> i8 {
        OPERATIONS.iter().position(|o| *o == operation).expect("every operation is listed") as i8 + 2
    }

    pub fn permission(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    pub fn of_permission(permission: Permission) -> i8 {
        match permission {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    /// A binding from CreateAcls' fields, checked as Kafka's controller checks a new ACL.
    #[allow(clippy::too_many_arguments)]
    pub fn binding(resource_type: i8, name: &str, pattern: i8, principal: &str, host: &str, operation: i8, permission: i8) -> Result<AclBinding, String> {
        let resource_type = self::resource_type(resource_type).ok_or_else(|| format!("invalid resource type {resource_type}"))?;
        let pattern = pattern_type(pattern).ok_or_else(|| format!("invalid pattern type {pattern}"))?;
        let operation = self::operation(operation).ok_or_else(|| format!("invalid operation {operation}"))?;
        let permission = self::permission(permission).ok_or_else(|| format!("invalid permission type {permission}"))?;
        if name.is_empty() {
            return Err("resource name must not be empty".into());
        }
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME}, not {name:?}"));
        }
        if !principal.split_once(':').is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty()) {
            return Err(format!("principal {principal:?} is not of the form type:name"));
        }
        if host.is_empty() {
            return Err("host must not be empty (use * for any)".into());
        }
        Ok(AclBinding { resource_type, name: name.into(), pattern, principal: principal.into(), host: host.into(), operation, permission })
    }

    /// `None` for ANY, else the value `code` reads as.
    fn any_or<T>(code: i8, read: fn(i8) -> Option<T>, what: &str) -> Result<Option<T>, String> {
        if code == ANY {
            return Ok(None);
        }
        read(code).map(Some).ok_or_else(|| format!("invalid {what} {code}"))
    }

    /// A filter from DescribeAcls' or DeleteAcls' fields.
    pub fn filter(resource_type: i8, name: Option<&str>, pattern: i8, principal: Option<&str>, host: Option<&str>, operation: i8, permission: i8) -> Result<AclFilter, String> {
        let pattern = match pattern {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            p => PatternFilter::Only(pattern_type(p).ok_or_else(|| format!("invalid pattern type {p}"))?),
        };
        Ok(AclFilter {
            resource_type: any_or(resource_type, self::resource_type, "resource type")?,
            name: name.map(Into::into),
            pattern,
            principal: principal.map(Into::into),
            host: host.map(Into::into),
            operation: any_or(operation, self::operation, "operation")?,
            permission: any_or(permission, self::permission, "permission type")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern: PatternType) -> AclBinding {
        codes::binding(2, name, codes::of_pattern_type(pattern), "User:alice", "*", 3, 3).expect("valid")
    }

    #[test]
    fn codes_round_trip() {
        for code in 2..=14 {
            assert_eq!(codes::of_operation(codes::operation(code).expect("known")), code);
        }
        assert_eq!(codes::operation(3), Some(Operation::Read));
        assert_eq!(codes::operation(1), None);
    }

    #[test]
    fn bad_bindings_are_refused() {
        assert!(codes::binding(1, "t", 3, "User:a", "*", 3, 3).is_err(), "ANY resource type");
        assert!(codes::binding(2, "t", 2, "User:a", "*", 3, 3).is_err(), "MATCH pattern");
        assert!(codes::binding(2, "t", 3, "alice", "*", 3, 3).is_err(), "principal without type");
        assert!(codes::binding(2, "t", 3, "User:a", "*", 1, 3).is_err(), "ANY operation");
        assert!(codes::binding(2, "", 3, "User:a", "*", 3, 3).is_err(), "empty name");
        assert!(codes::binding(4, "other", 3, "User:a", "*", 3, 3).is_err(), "cluster name");
    }

    #[test]
    fn match_filters_find_what_applies_to_a_resource() {
        let mut acls = Acls::default();
        for a in [acl("orders", PatternType::Literal), acl("ord", PatternType::Prefixed), acl("*", PatternType::Literal), acl("other", PatternType::Literal)] {
            acls.add(a);
        }
        let matching = |pattern, name: &str| {
            let filter = codes::filter(2, Some(name), pattern, None, None, 1, 1).expect("valid");
            acls.matching(&filter).map(|a| a.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(matching(codes::MATCH, "orders"), ["*", "ord", "orders"]);
        assert_eq!(matching(codes::ANY, "orders"), ["orders"]);
        assert_eq!(matching(4, "ord"), ["ord"]);
    }
}
