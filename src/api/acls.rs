//! CreateAcls, DescribeAcls and DeleteAcls, and the one check every handler asks before it
//! acts: [`Api::authorize`]. ACL changes go through the controller, so every node enforces
//! them; without an authorizer the three APIs answer SECURITY_DISABLED, as Kafka's do.

use kafka_protocol::messages::create_acls_request::CreateAclsRequest;
use kafka_protocol::messages::create_acls_response::{AclCreationResult, CreateAclsResponse};
use kafka_protocol::messages::delete_acls_request::DeleteAclsRequest;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl, DeleteAclsResponse};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::cluster::Failure;
use crate::security::acl::{codes, AclBinding, Operation, Resource, ResourceType};

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

impl Api {
    /// Whether the request's principal may do `operation` on `resource`; always, at no cost,
    /// when no authorizer is configured. A denial is logged at debug.
    pub fn authorize(&self, req: &Request, operation: Operation, resource: Resource) -> bool {
        let Some(authorizer) = &self.authorizer else { return true };
        let allowed = authorizer.authorize(self.cluster.image().acls(), &req.principal, &req.peer.ip().to_string(), operation, &resource);
        if !allowed {
            tracing::debug!(principal = %req.principal, ?operation, %resource, "denied");
        }
        allowed
    }

    /// [`Self::authorize`] as a result: `Err` with the resource type's authorization error.
    pub fn check(&self, req: &Request, operation: Operation, resource: Resource) -> Result<(), ResponseError> {
        if self.authorize(req, operation, resource) {
            return Ok(());
        }
        Err(match resource.kind {
            ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
            ResourceType::Group => ResponseError::GroupAuthorizationFailed,
            ResourceType::Cluster => ResponseError::ClusterAuthorizationFailed,
            ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
            ResourceType::DelegationToken => ResponseError::DelegationTokenAuthorizationFailed,
        })
    }

    /// Whether the request's principal may do `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`).
    pub fn authorize_any(&self, req: &Request, operation: Operation, kind: ResourceType) -> bool {
        let Some(authorizer) = &self.authorizer else { return true };
        let allowed = authorizer.authorize_any(self.cluster.image().acls(), &req.principal, &req.peer.ip().to_string(), operation, kind);
        if !allowed {
            tracing::debug!(principal = %req.principal, ?operation, ?kind, "denied on every resource of the type");
        }
        allowed
    }

    /// KIP-430's field of what the request's principal may do on `resource`: a bit per
    /// operation code, among the `supported` ones of its type (all of them without an
    /// authorizer).
    pub fn authorized_operations(&self, req: &Request, resource: Resource, supported: i32) -> i32 {
        let Some(authorizer) = &self.authorizer else { return supported };
        let (image, host) = (self.cluster.image(), req.peer.ip().to_string());
        let acls = image.acls();
        (0..i32::BITS as i8)
            .filter(|code| supported & (1 << code) != 0)
            .filter(|&code| codes::operation(code).is_some_and(|op| authorizer.authorize(acls, &req.principal, &host, op, &resource)))
            .fold(0, |field, code| field | (1 << code))
    }

    /// The cluster-wide check of admin APIs: `Err` with CLUSTER_AUTHORIZATION_FAILED.
    pub fn authorize_cluster(&self, req: &Request, operation: Operation) -> Result<(), Failure> {
        match self.authorize(req, operation, Resource::cluster()) {
            true => Ok(()),
            false => Err((ResponseError::ClusterAuthorizationFailed, format!("{} may not {operation:?} the cluster", req.principal))),
        }
    }

    /// ACL APIs: SECURITY_DISABLED without an authorizer, then the cluster operation they need.
    fn acl_access(&self, req: &Request, operation: Operation) -> Result<(), Failure> {
        if self.authorizer.is_none() {
            return Err((ResponseError::SecurityDisabled, NO_AUTHORIZER.into()));
        }
        self.authorize_cluster(req, operation)
    }
}

fn message(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

pub async fn create_acls(api: &Api, req: &Request, r: CreateAclsRequest) -> CreateAclsResponse {
    let failed = |(error, text): Failure| AclCreationResult::default().with_error_code(error.code()).with_error_message(message(text));
    if let Err(e) = api.acl_access(req, Operation::Alter) {
        return CreateAclsResponse::default().with_results(r.creations.iter().map(|_| failed(e.clone())).collect());
    }
    let bindings: Vec<Result<AclBinding, Failure>> = r
        .creations
        .iter()
        .map(|c| {
            codes::binding(c.resource_type, &c.resource_name, c.resource_pattern_type, &c.principal, &c.host, c.operation, c.permission_type)
                .map_err(|why| (ResponseError::InvalidRequest, format!("Invalid ACL creation: {why}")))
        })
        .collect();
    let valid: Vec<AclBinding> = bindings.iter().filter_map(|b| b.as_ref().ok().cloned()).collect();
    let created = if valid.is_empty() { Ok(()) } else { api.cluster.create_acls(valid).await };
    let results = bindings
        .into_iter()
        .map(|binding| match (binding, &created) {
            (Err(e), _) => failed(e),
            (Ok(_), Err(e)) => failed(e.clone()),
            (Ok(acl), Ok(())) => {
                tracing::info!(principal = %req.principal, ?acl, "created an ACL");
                AclCreationResult::default()
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe_acls(api: &Api, req: &Request, r: DescribeAclsRequest) -> DescribeAclsResponse {
    let failed = |(error, text): Failure| DescribeAclsResponse::default().with_error_code(error.code()).with_error_message(message(text));
    if let Err(e) = api.acl_access(req, Operation::Describe) {
        return failed(e);
    }
    let filter = match codes::filter(
        r.resource_type_filter,
        r.resource_name_filter.as_deref(),
        r.pattern_type_filter,
        r.principal_filter.as_deref(),
        r.host_filter.as_deref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => return failed((ResponseError::InvalidRequest, format!("Invalid ACL filter: {why}"))),
    };
    let image = api.cluster.image();
    // Bindings come sorted by resource, so each resource's ACLs are consecutive.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in image.acls().matching(&filter) {
        let (kind, pattern) = (codes::of_resource_type(acl.resource_type), codes::of_pattern_type(acl.pattern));
        let same = resources.last().is_some_and(|r| r.resource_type == kind && r.pattern_type == pattern && *r.resource_name == *acl.name);
        if !same {
            resources.push(DescribeAclsResource::default().with_resource_type(kind).with_resource_name(StrBytes::from_string(acl.name.clone())).with_pattern_type(pattern));
        }
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(acl.principal.clone()))
            .with_host(StrBytes::from_string(acl.host.clone()))
            .with_operation(codes::of_operation(acl.operation))
            .with_permission_type(codes::of_permission(acl.permission));
        resources.last_mut().expect("pushed above").acls.push(description);
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete_acls(api: &Api, req: &Request, r: DeleteAclsRequest) -> DeleteAclsResponse {
    let failed = |(error, text): Failure| DeleteAclsFilterResult::default().with_error_code(error.code()).with_error_message(message(text));
    if let Err(e) = api.acl_access(req, Operation::Alter) {
        return DeleteAclsResponse::default().with_filter_results(r.filters.iter().map(|_| failed(e.clone())).collect());
    }
    let filters: Vec<Result<_, Failure>> = r
        .filters
        .iter()
        .map(|f| {
            codes::filter(f.resource_type_filter, f.resource_name_filter.as_deref(), f.pattern_type_filter, f.principal_filter.as_deref(), f.host_filter.as_deref(), f.operation, f.permission_type)
                .map_err(|why| (ResponseError::InvalidRequest, format!("Invalid ACL filter: {why}")))
        })
        .collect();
    let valid = filters.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let mut deleted = match api.cluster.delete_acls(valid).await {
        Ok(matched) => Ok(matched.into_iter()),
        Err(e) => Err(e),
    };
    let results = filters
        .into_iter()
        .map(|filter| match (filter, &mut deleted) {
            (Err(e), _) => failed(e),
            (Ok(_), Err(e)) => failed(e.clone()),
            (Ok(_), Ok(matched)) => {
                let matched = matched.next().unwrap_or_default();
                for acl in &matched {
                    tracing::info!(principal = %req.principal, ?acl, "deleted an ACL");
                }
                DeleteAclsFilterResult::default().with_matching_acls(matched.into_iter().map(matching_acl).collect())
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching_acl(acl: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(codes::of_resource_type(acl.resource_type))
        .with_resource_name(StrBytes::from_string(acl.name))
        .with_pattern_type(codes::of_pattern_type(acl.pattern))
        .with_principal(StrBytes::from_string(acl.principal))
        .with_host(StrBytes::from_string(acl.host))
        .with_operation(codes::of_operation(acl.operation))
        .with_permission_type(codes::of_permission(acl.permission))
}
