//! Consumer group APIs: coordinator lookup, membership, offsets, and group administration.

use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{DeletableGroupResult, DeleteGroupsResponse};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{DescribeGroupsResponse, DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Api, Request};
use crate::security::acl::{Operation, Resource};
use crate::cluster::partition_id;
use crate::group::{Committed, JoinRequest, TopicPartition};

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;
/// A group's ACL operations, READ, DELETE and DESCRIBE, as KIP-430's bit field.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn topic_name(text: &str) -> TopicName {
    TopicName(s(text))
}

/// Groups (topic, item) pairs into runs of the same topic, keeping their order.
fn by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(TopicName, Vec<T>)> {
    let mut out: Vec<(TopicName, Vec<T>)> = Vec::new();
    for (topic, item) in items {
        match out.last_mut() {
            Some((t, list)) if t.as_str() == topic => list.push(item),
            _ => out.push((topic_name(&topic), vec![item])),
        }
    }
    out
}

fn error_code(result: &Result<(), ResponseError>) -> i16 {
    result.as_ref().err().map_or(0, |e| e.code())
}

pub async fn find_coordinator(api: &Api, req: &Request, r: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if req.version >= 4 { r.coordinator_keys } else { vec![r.key] };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let resource = match r.key_type {
            GROUP_KEY_TYPE => Some(Resource::group(&key)),
            TRANSACTION_KEY_TYPE => Some(Resource::transactional_id(&key)),
            _ => None,
        };
        let denied = resource.and_then(|resource| api.check(req, Operation::Describe, resource).err());
        let found = match r.key_type {
            _ if denied.is_some() => Err((denied.expect("checked"), format!("{} may not describe {key}", req.principal))),
            GROUP_KEY_TYPE => coordinator_address(api, req, &key).await,
            TRANSACTION_KEY_TYPE => match api.txns.coordinator(&key).await {
                Ok(id) => broker_address(api, req, id.unwrap_or(api.cluster.node().id)),
                Err(e) => Err((e, "the transaction's coordinator is not available yet".into())),
            },
            _ => Err((ResponseError::InvalidRequest, "unknown coordinator key type (0: group, 1: transaction)".to_string())),
        };
        let c = Coordinator::default().with_key(key);
        coordinators.push(match found {
            Ok((id, host, port)) => c.with_node_id(BrokerId(id)).with_host(s(host)).with_port(port as i32),
            Err((e, message)) => c.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(e.code()).with_error_message(Some(s(message))),
        });
    }
    if req.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.remove(0);
    let response = FindCoordinatorResponse::default().with_error_code(c.error_code).with_node_id(c.node_id).with_host(c.host).with_port(c.port);
    if req.version >= 1 {
        response.with_error_message(c.error_message)
    } else {
        response
    }
}

type Located = Result<(i32, String, u16), (ResponseError, String)>;

/// The broker coordinating a group, at its address on the request's listener.
async fn coordinator_address(api: &Api, req: &Request, group_id: &str) -> Located {
    match api.groups.coordinator(group_id).await {
        Ok(Some(id)) => broker_address(api, req, id),
        Ok(None) => broker_address(api, req, api.cluster.node().id),
        Err(e) => Err((e, "the group's coordinator is not available yet".into())),
    }
}

fn broker_address(api: &Api, req: &Request, id: i32) -> Located {
    let broker = api.cluster.live_brokers(&req.listener).into_iter().find(|b| b.id == id);
    let broker = broker.ok_or_else(|| (ResponseError::CoordinatorNotAvailable, "the coordinator is not a live broker".to_string()))?;
    Ok((broker.id, broker.host, broker.port))
}

pub async fn join_group(api: &Api, req: &Request, r: JoinGroupRequest) -> JoinGroupResponse {
    let version = req.version;
    if let Err(e) = api.check(req, Operation::Read, Resource::group(&r.group_id)) {
        return JoinGroupResponse::default().with_error_code(e.code()).with_member_id(r.member_id);
    }
    let result = {
        let join = JoinRequest {
            member_id: r.member_id.to_string(),
            instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: req.client_id().to_string(),
            client_host: format!("/{}", req.peer.ip()),
            session_timeout_ms: r.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 { r.rebalance_timeout_ms } else { -1 },
            protocol_type: r.protocol_type.to_string(),
            protocols: r.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        // The join may wait for the rest of the group.
        req.parked();
        api.groups.join(&r.group_id, join).await
    };
    let members = result
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let m = JoinGroupResponseMember::default().with_member_id(s(id)).with_metadata(metadata);
            if version >= 5 {
                m.with_group_instance_id(instance.map(s))
            } else {
                m
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_generation_id(result.generation)
        .with_protocol_name(Some(s(result.protocol_name.unwrap_or_default())))
        .with_leader(s(result.leader))
        .with_member_id(s(result.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(s);
    }
    if version >= 9 {
        response.skip_assignment = result.skip_assignment;
    }
    response
}

pub async fn sync_group(api: &Api, req: &Request, r: SyncGroupRequest) -> SyncGroupResponse {
    if let Err(e) = api.check(req, Operation::Read, Resource::group(&r.group_id)) {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let assignments = r.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let protocol = if req.version >= 5 {
        (r.protocol_type.as_deref(), r.protocol_name.as_deref())
    } else {
        (None, None)
    };
    let member = (r.member_id.as_str(), r.group_instance_id.as_deref());
    // A follower's sync waits for the leader's.
    req.parked();
    let result = api.groups.sync(&r.group_id, member, r.generation_id, protocol, assignments).await;
    match result {
        Ok((protocol_type, protocol_name, assignment)) => {
            let response = SyncGroupResponse::default().with_assignment(assignment);
            if req.version >= 5 {
                response.with_protocol_type(protocol_type.map(s)).with_protocol_name(protocol_name.map(s))
            } else {
                response
            }
        }
        Err(e) => SyncGroupResponse::default().with_error_code(e.code()),
    }
}

pub async fn heartbeat(api: &Api, req: &Request, r: HeartbeatRequest) -> HeartbeatResponse {
    let instance = r.group_instance_id.as_deref();
    let result = match api.check(req, Operation::Read, Resource::group(&r.group_id)) {
        Ok(()) => api.groups.heartbeat(&r.group_id, &r.member_id, instance, r.generation_id).await,
        Err(e) => Err(e),
    };
    HeartbeatResponse::default().with_error_code(error_code(&result))
}

pub async fn leave_group(api: &Api, req: &Request, r: LeaveGroupRequest) -> LeaveGroupResponse {
    // v3 batches members (and names static ones by instance id); before that, one member id.
    let members: Vec<(String, Option<String>)> = if req.version >= 3 {
        r.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string()))).collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let left = match api.check(req, Operation::Read, Resource::group(&r.group_id)) {
        Ok(()) => api.groups.leave(&r.group_id, &members).await,
        Err(e) => Err(e),
    };
    match left {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if req.version >= 3 => {
            let responses = members
                .into_iter()
                .zip(&results)
                .map(|((id, instance), result)| {
                    MemberResponse::default().with_member_id(s(id)).with_group_instance_id(instance.map(s)).with_error_code(error_code(result))
                })
                .collect();
            LeaveGroupResponse::default().with_members(responses)
        }
        Ok(results) => LeaveGroupResponse::default().with_error_code(results.first().map_or(0, error_code)),
    }
}

pub async fn offset_commit(api: &Api, req: &Request, r: OffsetCommitRequest) -> OffsetCommitResponse {
    // Partitions of unknown topics (or of topics the client may not read) are answered without
    // reaching the coordinator.
    let now_ms = super::now_ms();
    let mut known = Vec::new();
    let mut answers: Vec<(TopicName, i32, Option<ResponseError>)> = Vec::new();
    let group_denied = api.check(req, Operation::Read, Resource::group(&r.group_id)).err();
    for t in &r.topics {
        let topic = api.cluster.topic(&t.name);
        let denied = group_denied.or_else(|| api.check(req, Operation::Read, Resource::topic(&t.name)).err());
        for p in &t.partitions {
            if let Some(e) = denied {
                answers.push((t.name.clone(), p.partition_index, Some(e)));
                continue;
            }
            if partition_id(topic.as_deref(), p.partition_index).is_err() {
                answers.push((t.name.clone(), p.partition_index, Some(ResponseError::UnknownTopicOrPartition)));
                continue;
            }
            let committed = Committed {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                commit_timestamp_ms: now_ms,
                // v2-v4 may give the offset its own retention; -1 (and later versions) is the broker's.
                expire_timestamp_ms: (r.retention_time_ms != -1).then(|| now_ms.saturating_add(r.retention_time_ms)),
            };
            known.push(((t.name.to_string(), p.partition_index), committed));
            answers.push((t.name.clone(), p.partition_index, None));
        }
    }
    let member = (r.member_id.as_str(), r.group_instance_id.as_deref());
    let results = api.groups.commit(&r.group_id, member, r.generation_id_or_member_epoch, known).await;
    let mut stored = match &results {
        Ok(per_partition) => per_partition.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let answered = answers.into_iter().map(|(name, partition, error)| {
        let error = error.or_else(|| match &results {
            Err(e) => Some(*e),
            Ok(_) => stored.next().and_then(|r| r.err()),
        });
        (name.to_string(), OffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(error.map_or(0, |e| e.code())))
    });
    let topics = by_topic(answered.collect::<Vec<_>>())
        .into_iter()
        .map(|(name, partitions)| OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions))
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Committed offsets of one topic's partitions.
type TopicOffsets = (TopicName, Vec<(i32, Option<Committed>)>);

/// (topic, partition, committed) for one group, grouped by topic in request order; the
/// client needs DESCRIBE on the group, and on a topic to see its offsets (all topics: those
/// it may describe; named ones: TOPIC_AUTHORIZATION_FAILED in `denied`).
fn fetch_group_offsets(api: &Api, req: &Request, group: &str, topics: Option<&[(TopicName, Vec<i32>)]>) -> Result<(Vec<TopicOffsets>, Vec<TopicName>), ResponseError> {
    api.check(req, Operation::Describe, Resource::group(group))?;
    let may_describe = |topic: &str| api.authorize(req, Operation::Describe, Resource::topic(topic));
    let denied: Vec<TopicName> = topics.into_iter().flatten().filter(|(t, _)| !may_describe(t)).map(|(t, _)| t.clone()).collect();
    let wanted = topics.map(|ts| {
        ts.iter().filter(|(t, _)| !denied.contains(t)).flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p))).collect::<Vec<TopicPartition>>()
    });
    let committed = api.groups.committed(group, wanted)?.into_iter().filter(|((topic, _), _)| topics.is_some() || may_describe(topic));
    Ok((by_topic(committed.map(|((topic, partition), c)| (topic, (partition, c)))), denied))
}

pub fn offset_fetch(api: &Api, req: &Request, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let fill = |c: Option<Committed>| match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    };
    // KIP-447: a client that asks for stable offsets is told to retry while a transaction
    // holds offsets for the partition, rather than read one about to change.
    let require_stable = req.version >= 7 && r.require_stable;
    let unstable = |group: &str, topic: &str, index: i32| require_stable && api.groups.has_txn_offsets(group, &(topic.to_string(), index));
    if req.version >= 8 {
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Option<Vec<_>> = g.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
                let (offsets, denied) = match fetch_group_offsets(api, req, &g.group_id, wanted.as_deref()) {
                    Ok(found) => found,
                    Err(e) => return OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(e.code()),
                };
                let denied = wanted.iter().flatten().filter(|(t, _)| denied.contains(t)).map(|(name, partitions)| {
                    let refused = |index: &i32| OffsetFetchResponsePartitions::default().with_partition_index(*index).with_committed_offset(-1).with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    OffsetFetchResponseTopics::default().with_name(name.clone()).with_partitions(partitions.iter().map(refused).collect())
                });
                let topics = offsets
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, c)| {
                                let response = OffsetFetchResponsePartitions::default().with_partition_index(index);
                                if unstable(&g.group_id, &name, index) {
                                    return response.with_committed_offset(-1).with_committed_leader_epoch(-1).with_error_code(ResponseError::UnstableOffsetCommit.code());
                                }
                                let (offset, epoch, metadata) = fill(c);
                                response.with_committed_offset(offset).with_committed_leader_epoch(epoch).with_metadata(Some(s(metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions)
                    })
                    .chain(denied)
                    .collect();
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Option<Vec<_>> = r.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    let (offsets, error, denied) = match fetch_group_offsets(api, req, &r.group_id, wanted.as_deref()) {
        // Topics the client may not describe are answered with the error on each partition.
        Ok((mut offsets, denied)) => {
            let refused = wanted.iter().flatten().filter(|(t, _)| denied.contains(t)).map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, None)).collect()));
            offsets.extend(refused);
            (offsets, None, denied)
        }
        // v1 has no top-level error code: every partition asked for carries it, as in Kafka.
        Err(e) if req.version < 2 => {
            let asked = wanted.unwrap_or_default().into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()));
            (asked.collect(), Some(e), Vec::new())
        }
        Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
    };
    let topics = offsets
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, c)| {
                    let error = error.or_else(|| denied.contains(&name).then_some(ResponseError::TopicAuthorizationFailed));
                    let (c, error) = if error.is_none() && unstable(&r.group_id, &name, index) { (None, Some(ResponseError::UnstableOffsetCommit)) } else { (c, error) };
                    let (offset, epoch, metadata) = fill(c);
                    let p = OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_metadata(Some(s(metadata)))
                        .with_error_code(error.map_or(0, |e| e.code()));
                    if req.version >= 5 {
                        p.with_committed_leader_epoch(epoch)
                    } else {
                        p
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub fn list_groups(api: &Api, req: &Request, r: ListGroupsRequest) -> ListGroupsResponse {
    // DESCRIBE on the cluster shows every group; otherwise those the client may describe.
    let all_visible = api.authorize(req, Operation::Describe, Resource::cluster());
    let groups = api
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _)| all_visible || api.authorize(req, Operation::Describe, Resource::group(id)))
        .filter(|(_, _, state)| r.states_filter.is_empty() || r.states_filter.iter().any(|f| f.eq_ignore_ascii_case(state.name())))
        .filter(|_| r.types_filter.is_empty() || r.types_filter.iter().any(|f| f.eq_ignore_ascii_case("classic")))
        .map(|(id, protocol_type, state)| {
            let g = ListedGroup::default().with_group_id(GroupId(s(id))).with_protocol_type(s(protocol_type));
            let g = if req.version >= 4 { g.with_group_state(s(state.name())) } else { g };
            if req.version >= 5 {
                g.with_group_type(s("classic"))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(api: &Api, req: &Request, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = r
        .groups
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            if let Err(e) = api.check(req, Operation::Describe, Resource::group(&id)) {
                return described.with_error_code(e.code());
            }
            let d = match api.groups.describe(&id) {
                Ok(Some(d)) => d,
                // Kafka describes an unknown group as Dead, without an error.
                Ok(None) => return described.with_group_state(s("Dead")),
                Err(e) => return described.with_error_code(e.code()),
            };
            let members = d
                .members
                .into_iter()
                .map(|(member_id, instance, client_id, host, metadata, assignment)| {
                    let m = DescribedGroupMember::default()
                        .with_member_id(s(member_id))
                        .with_client_id(s(client_id))
                        .with_client_host(s(host))
                        .with_member_metadata(metadata)
                        .with_member_assignment(assignment);
                    if req.version >= 4 {
                        m.with_group_instance_id(instance.map(s))
                    } else {
                        m
                    }
                })
                .collect();
            let described = described
                .with_group_state(s(d.state.name()))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(members);
            if req.version >= 3 && r.include_authorized_operations {
                described.with_authorized_operations(api.authorized_operations(req, Resource::group(&id), GROUP_OPERATIONS))
            } else {
                described
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(api: &Api, req: &Request, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(r.groups_names.len());
    for id in r.groups_names {
        let result = match api.check(req, Operation::Delete, Resource::group(&id)) {
            Ok(()) => api.groups.delete(&id).await,
            Err(e) => Err(e),
        };
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(error_code(&result)));
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(api: &Api, req: &Request, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if let Err(e) = api.check(req, Operation::Delete, Resource::group(&r.group_id)) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let (readable, denied): (Vec<_>, Vec<_>) = r.topics.iter().partition(|t| api.authorize(req, Operation::Read, Resource::topic(&t.name)));
    let partitions: Vec<TopicPartition> = readable.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), p.partition_index))).collect();
    match api.groups.delete_offsets(&r.group_id, partitions).await {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => {
            let refused = denied.iter().flat_map(|t| t.partitions.iter().map(move |p| ((t.name.to_string(), p.partition_index), Err(ResponseError::TopicAuthorizationFailed))));
            let answered = results.into_iter().chain(refused).map(|((topic, partition), result)| {
                (topic, OffsetDeleteResponsePartition::default().with_partition_index(partition).with_error_code(error_code(&result)))
            });
            let topics = by_topic(answered)
                .into_iter()
                .map(|(name, partitions)| OffsetDeleteResponseTopic::default().with_name(name).with_partitions(partitions))
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
