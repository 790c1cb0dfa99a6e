//! Fetch: whole stored batches, long-polled until `min_bytes` arrive or `max_wait_ms` passes,
//! in incremental fetch sessions when the client asks for one (KIP-227, kept by
//! [`crate::fetch_session`]). The broker's `fetch.max.bytes` caps every response.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Api, Request};
use crate::security::acl::{Operation, Resource};
use crate::cluster::replication::FollowerFetch;
use crate::cluster::{partition_id, Topic};
use crate::fetch_session::{Answer, FetchContext, FetchPosition, PartitionKey, SessionRequest, TopicKey, NO_SESSION};
use crate::log::{FetchIsolation, PartitionId, ReadRequest};
use crate::quota::QuotaKey;

/// A long poll never holds a request longer than this, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(api: &Api, req: &Request, r: FetchRequest) -> FetchResponse {
    let uses_topic_ids = req.version >= 13;
    let topic_key = |name: &TopicName, id: Uuid| if uses_topic_ids { TopicKey::Id(id) } else { TopicKey::Name(name.as_str().into()) };
    // Like Kafka, a partition named twice is fetched once, with the last position given.
    let mut asked = IndexMap::new();
    for t in &r.topics {
        let topic = topic_key(&t.topic, t.topic_id);
        for p in &t.partitions {
            let last_fetched_epoch = if req.version >= 12 { p.last_fetched_epoch } else { -1 };
            let position = FetchPosition { fetch_offset: p.fetch_offset, max_bytes: p.partition_max_bytes, current_leader_epoch: p.current_leader_epoch, last_fetched_epoch };
            asked.insert((topic.clone(), p.partition), position);
        }
    }
    let forgotten: Vec<PartitionKey> = r
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(&t.topic, t.topic_id);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect();
    let replica_id = if req.version >= 15 { r.replica_state.replica_id } else { r.replica_id };
    let session = SessionRequest { id: r.session_id, epoch: r.session_epoch, privileged: replica_id.0 >= 0, uses_topic_ids };
    let mut context = match api.fetch_sessions.context(session, &asked, &forgotten, std::time::Instant::now()) {
        Ok(context) => context,
        Err(e) => return FetchResponse::default().with_error_code(e.code()),
    };
    let wanted = match &mut context {
        FetchContext::Incremental { partitions, .. } => std::mem::take(partitions),
        FetchContext::Full | FetchContext::Sessionless => asked.into_iter().collect(),
    };
    let mut data = long_poll(api, req, &r, replica_id.0, &wanted).await;
    let mut throttle_ms = 0;
    if replica_id.0 < 0 {
        throttle_ms = throttle_consumer(api, req, &mut data);
        count_fetched(api, &wanted, &data);
    }
    if req.version >= 12 {
        for (d, wanted) in data.iter_mut().zip(&wanted) {
            if let Some((leader, epoch)) = api.current_leader(d.error_code, || locate(api, std::slice::from_ref(wanted)).remove(0).ok()) {
                d.current_leader = LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch);
            }
        }
    }
    let answers: Vec<Answer> = data.iter().map(answer).collect();
    let (session_id, sent) = match context {
        FetchContext::Incremental { id, epoch, .. } => match api.fetch_sessions.respond(id, epoch, &answers) {
            Ok(sent) => (id, sent),
            Err(e) => return FetchResponse::default().with_error_code(e.code()).with_session_id(id),
        },
        FetchContext::Full => {
            let answered = wanted.iter().zip(&answers).map(|((key, position), answer)| (key.clone(), *position, *answer));
            (api.fetch_sessions.create(session, answered, std::time::Instant::now()), vec![true; data.len()])
        }
        FetchContext::Sessionless => (NO_SESSION, vec![true; data.len()]),
    };
    let leaders: BTreeSet<i32> = data.iter().map(|d| d.current_leader.leader_id.0).filter(|&id| id >= 0 && req.version >= 16).collect();
    let endpoints = api
        .broker_addresses(req, &leaders)
        .into_iter()
        .map(|b| NodeEndpoint::default().with_node_id(BrokerId(b.id)).with_host(StrBytes::from_string(b.host)).with_port(i32::from(b.port)).with_rack(b.rack.map(StrBytes::from_string)))
        .collect();
    let partitions = wanted.into_iter().map(|(key, _)| key).zip(data).zip(sent).filter(|(_, sent)| *sent).map(|(p, _)| p);
    FetchResponse::default().with_throttle_time_ms(throttle_ms).with_session_id(session_id).with_responses(by_topic(partitions)).with_node_endpoints(endpoints)
}

/// Counts a consumer's fetched bytes against its `consumer_byte_rate`; the throttle. Over its
/// quota, it gets no records this time and they are not counted, as in Kafka: it fetches them
/// again once the throttle has passed.
fn throttle_consumer(api: &Api, req: &Request, data: &mut [PartitionData]) -> i32 {
    let bytes: usize = data.iter().filter_map(|d| d.records.as_ref()).map(|r| r.len()).sum();
    let (user, client_id) = (&req.principal.name, req.client_id());
    let throttle = api.cluster.with_image(|image| {
        let throttle = api.quotas.record(image, QuotaKey::ConsumerByteRate, user, client_id, bytes);
        if throttle > 0 && bytes > 0 {
            api.quotas.unrecord(image, QuotaKey::ConsumerByteRate, user, client_id, bytes);
        }
        throttle
    });
    if throttle > 0 && bytes > 0 {
        for d in data.iter_mut().filter(|d| d.records.is_some()) {
            d.records = Some(Bytes::new());
        }
    }
    throttle.min(i32::MAX as u64) as i32
}

/// Bytes and records out, per topic, for a consumer's fetch; followers' are replication.
fn count_fetched(api: &Api, wanted: &[(PartitionKey, FetchPosition)], data: &[PartitionData]) {
    for (((topic, _), _), d) in wanted.iter().zip(data) {
        let Some(records) = d.records.as_ref().filter(|r| !r.is_empty()) else { continue };
        let counted = |name: &str| api.metrics.fetched(name, crate::log::batch::count_records(records), records.len() as u64);
        match topic {
            TopicKey::Name(name) => counted(name),
            TopicKey::Id(id) => {
                if let Some(topic) = api.cluster.topic_by_id(*id) {
                    counted(&topic.name);
                }
            }
        }
    }
}

/// What the session needs to know of a partition's answer.
fn answer(data: &PartitionData) -> Answer {
    Answer {
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
        high_watermark: data.high_watermark,
        log_start: data.log_start_offset,
        error: data.error_code != 0 || data.diverging_epoch.end_offset >= 0,
    }
}

/// Reads `wanted` until `min_bytes` are there, an error is, or the wait is over. The
/// response-wide limit is the smaller of the client's `max_bytes` and the broker's
/// `fetch.max.bytes`; either way the first batch goes out whatever its size (KIP-74).
/// A follower (`replica_id` >= 0) reads up to the log end, and its fetch offsets are recorded
/// as its log ends once, before the first read.
async fn long_poll(api: &Api, req: &Request, r: &FetchRequest, replica_id: i32, wanted: &[(PartitionKey, FetchPosition)]) -> Vec<PartitionData> {
    let mut max_bytes = (r.max_bytes.max(0) as usize).min(api.config.fetch_max_bytes);
    if replica_id < 0 {
        let quota_bytes = api.cluster.with_image(|image| api.quotas.max_bytes_in_window(image, QuotaKey::ConsumerByteRate, &req.principal.name, req.client_id()));
        max_bytes = max_bytes.min(quota_bytes.unwrap_or(usize::MAX));
    }
    let min_bytes = (r.min_bytes.max(0) as usize).min(max_bytes);
    let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut located = locate(api, wanted);
    authorize_reads(api, req, replica_id, wanted, &mut located);
    let mut reads = vec![FollowerFetch::Read { throttled: false }; wanted.len()];
    for (((_, position), id), read) in wanted.iter().zip(&mut located).zip(&mut reads) {
        let Ok(partition) = *id else { continue };
        let checked = if replica_id >= 0 {
            api.replicas
                .follower_fetch(partition, replica_id, position.current_leader_epoch, position.fetch_offset, position.last_fetched_epoch)
                .await
                .map(|r| *read = r)
        } else {
            api.replicas.check_leader(partition, position.current_leader_epoch)
        };
        if let Err(e) = checked {
            *id = Err(e);
        }
    }
    let isolation = match (replica_id >= 0, r.isolation_level) {
        (true, _) => FetchIsolation::LogEnd,
        (false, 1) => FetchIsolation::TxnCommitted,
        (false, _) => FetchIsolation::HighWatermark,
    };
    // Registered before the first read, so an append between the read and the wait still wakes.
    let appended = Arc::new(Notify::new());
    api.log.watch(&located.iter().filter_map(|l| l.as_ref().ok().copied()).collect::<Vec<_>>(), &appended);
    let mut timed_out = false;
    loop {
        let (data, bytes, errors) = read_all(api, req.version, wanted, &located, &reads, isolation, max_bytes).await;
        // Like Kafka, a fetch of nothing (a closing consumer's last one) answers at once.
        if timed_out || errors || wanted.is_empty() || bytes.total >= min_bytes || wait.is_zero() {
            api.replicas.leader_throttled_sent(bytes.throttled);
            return data;
        }
        req.parked();
        timed_out = tokio::time::timeout_at(deadline, appended.notified()).await.is_err();
    }
}

/// Each partition's log, or why there is none (UNKNOWN_TOPIC_ID for an id no topic has).
fn locate(api: &Api, wanted: &[(PartitionKey, FetchPosition)]) -> Vec<Result<PartitionId, ResponseError>> {
    let mut topics: HashMap<&TopicKey, Option<Arc<Topic>>> = HashMap::new();
    wanted
        .iter()
        .map(|((key, index), _)| {
            let topic = topics.entry(key).or_insert_with(|| match key {
                TopicKey::Name(name) => api.cluster.topic(name),
                TopicKey::Id(id) => api.cluster.topic_by_id(*id),
            });
            match (key, topic) {
                (TopicKey::Id(_), None) => Err(ResponseError::UnknownTopicId),
                (_, topic) => partition_id(topic.as_deref(), *index),
            }
        })
        .collect()
}

/// TOPIC_AUTHORIZATION_FAILED for the partitions the client may not read: a consumer needs
/// READ on the topic, a follower CLUSTER_ACTION on the cluster.
fn authorize_reads(api: &Api, req: &Request, replica_id: i32, wanted: &[(PartitionKey, FetchPosition)], located: &mut [Result<PartitionId, ResponseError>]) {
    if api.authorizer.is_none() {
        return;
    }
    let follower_allowed = replica_id >= 0 && api.authorize(req, Operation::ClusterAction, Resource::cluster());
    let may_read = |name: &str| api.authorize(req, Operation::Read, Resource::topic(name));
    let mut allowed: HashMap<&TopicKey, bool> = HashMap::new();
    for (((key, _), _), id) in wanted.iter().zip(located) {
        let allowed = *allowed.entry(key).or_insert_with(|| match key {
            _ if replica_id >= 0 => follower_allowed,
            TopicKey::Name(name) => may_read(name),
            TopicKey::Id(topic_id) => api.cluster.topic_by_id(*topic_id).is_none_or(|t| may_read(&t.name)),
        });
        if !allowed {
            *id = Err(ResponseError::TopicAuthorizationFailed);
        }
    }
}

/// Why a partition is answered without a read.
enum Unread {
    Refused(ResponseError),
    /// The follower's log diverges from the leader's: (epoch, end offset) where (KIP-320).
    Diverging(i32, i64),
    /// A throttled follower, with the rate used up: no records, no error.
    Held,
}

/// The record bytes a read gave: in all, and to throttled followers.
#[derive(Default)]
struct ReadBytes {
    total: usize,
    throttled: usize,
}

/// Reads every wanted partition once (but those whose follower diverges, which get where, and
/// throttled ones over their rate). Returns their answers, the record bytes, and whether any
/// partition has an error or a diverging epoch (which answers at once rather than waiting).
async fn read_all(
    api: &Api,
    version: i16,
    wanted: &[(PartitionKey, FetchPosition)],
    located: &[Result<PartitionId, ResponseError>],
    follower: &[FollowerFetch],
    isolation: FetchIsolation,
    max_bytes: usize,
) -> (Vec<PartitionData>, ReadBytes, bool) {
    let checked: Vec<Result<ReadRequest, Unread>> = wanted
        .iter()
        .zip(located)
        .zip(follower)
        .map(|(((_, position), id), follower)| {
            let id = (*id).map_err(Unread::Refused)?;
            match *follower {
                FollowerFetch::Diverging(epoch, end_offset) => Err(Unread::Diverging(epoch, end_offset)),
                FollowerFetch::Held => Err(Unread::Held),
                FollowerFetch::Read { .. } => Ok(ReadRequest { id, offset: position.fetch_offset, max_bytes: position.max_bytes.max(0) as usize, isolation }),
            }
        })
        .collect();
    let requests: Vec<ReadRequest> = checked.iter().filter_map(|c| c.as_ref().ok().copied()).collect();
    let mut reads = api.log.read(&requests, max_bytes).await.into_iter();
    let mut bytes = ReadBytes::default();
    let mut errors = false;
    let data = wanted
        .iter()
        .zip(located)
        .zip(checked)
        .zip(follower)
        .map(|(((((_, index), _), id), checked), follower)| {
            let data = PartitionData::default().with_partition_index(*index);
            match checked.and_then(|_| reads.next().expect("one result per request").map_err(Unread::Refused)) {
                Ok(read) => {
                    bytes.total += read.records.len();
                    if let FollowerFetch::Read { throttled: true } = follower {
                        bytes.throttled += read.records.len();
                    }
                    // Kafka sends the list (possibly empty) to read_committed fetches only.
                    let aborted = (isolation == FetchIsolation::TxnCommitted)
                        .then(|| read.aborted.iter().map(|&(pid, first)| AbortedTransaction::default().with_producer_id(ProducerId(pid)).with_first_offset(first)).collect());
                    offsets(data, version, read.high_watermark, read.last_stable_offset, read.log_start).with_records(Some(read.records)).with_aborted_transactions(aborted)
                }
                Err(unread) => {
                    errors |= !matches!(unread, Unread::Held);
                    let data = match unread {
                        Unread::Refused(e) => data.with_error_code(e.code()).with_high_watermark(-1),
                        Unread::Diverging(epoch, end_offset) => data.with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset)),
                        Unread::Held => data,
                    }
                    .with_records(Some(Bytes::new()));
                    // Out-of-range answers carry the real offsets so clients can reset.
                    match (*id).and_then(|id| Ok((api.log.offsets(id)?, api.log.last_stable_offset(id)?))) {
                        Ok(((start, hw), lso)) => offsets(data, version, hw, lso, start),
                        _ => data,
                    }
                }
            }
        })
        .collect();
    (data, bytes, errors)
}

fn offsets(data: PartitionData, version: i16, high_watermark: i64, last_stable_offset: i64, log_start: i64) -> PartitionData {
    let data = data.with_high_watermark(high_watermark).with_last_stable_offset(last_stable_offset);
    if version >= 5 {
        data.with_log_start_offset(log_start)
    } else {
        data
    }
}

/// Consecutive partitions of one topic share a topic entry, as in Kafka's responses.
fn by_topic(partitions: impl Iterator<Item = (PartitionKey, PartitionData)>) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<(TopicKey, FetchableTopicResponse)> = Vec::new();
    for ((key, _), data) in partitions {
        match topics.last_mut() {
            Some((last, topic)) if *last == key => topic.partitions.push(data),
            _ => {
                let topic = match &key {
                    TopicKey::Name(name) => FetchableTopicResponse::default().with_topic(TopicName(StrBytes::from_string(name.to_string()))),
                    TopicKey::Id(id) => FetchableTopicResponse::default().with_topic_id(*id),
                };
                topics.push((key, topic.with_partitions(vec![data])));
            }
        }
    }
    topics.into_iter().map(|(_, topic)| topic).collect()
}
