//! Kafka API handlers: protocol structs in, calls on log / cluster, protocol structs out.
//!
//! [`SUPPORTED`] is the one table of (api, min, max) versions: ApiVersions answers from it and
//! [`Api::handle`] refuses anything outside it before decoding.

mod acls;
mod admin;
mod configs;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod partitions;
mod produce;
mod quotas;
pub mod sasl;
mod txn;
mod users;
pub use crate::cluster::now_ms;
mod versions;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::cluster::replication::{AlterPartitionSender, ReplicaManager};
use crate::cluster::{Cluster, Node};
use crate::config::Config;
use crate::fetch_session::FetchSessions;
use crate::cluster::state_topic::{StateStore, StateTopic};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::log::LogStore;
use crate::metrics::Metrics;
use crate::quota::{ClientQuotaManager, QuotaKey, SampleWindows};
use crate::security::authorizer::Authorizer;
use crate::txn::{TxnConfig, TxnCoordinator};

/// Every API Gregor serves, with the versions a real client has been seen to work with.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // v12 is transactions v2 (KIP-890 part 2): a transactional batch adds its partition.
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    // Transactions v1 (KIP-98) and v2 (KIP-890 part 2: EndTxn v5 bumps the epoch,
    // TxnOffsetCommit v5 adds the group), which clients use when `transaction.version` is 2.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // What `kafka-transactions` needs to find and abort a hanging transaction. WriteTxnMarkers
    // v2 only adds the transaction version, which a partition here does not need.
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    // Served by a SASL listener's connections before they authenticate (sasl.rs); after
    // that, and on other listeners, they are out of place.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|&(_, min, max)| (min, max))
}

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} v{version} is not supported (supported: v{min}-v{max})")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
    /// Kafka closes the connection of an acks=0 producer whose write failed: it gets no
    /// response, and must notice somehow (it then refreshes its metadata).
    #[error("an acks=0 produce to {topic}-{partition} failed with {error:?}")]
    UnacknowledgedProduceFailed { topic: String, partition: i32, error: kafka_protocol::ResponseError },
    /// A handler built a response its version cannot carry: a bug, logged loudly.
    #[error("cannot encode the {api:?} v{version} response: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
}

/// The handlers' view of the broker.
pub struct Api {
    pub config: Config,
    pub log: Arc<LogStore>,
    pub cluster: Arc<Cluster>,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TxnCoordinator>,
    pub fetch_sessions: FetchSessions,
    pub replicas: Arc<ReplicaManager>,
    pub metrics: Arc<Metrics>,
    /// `None` when `authorizer.class.name` is empty: every request is allowed.
    pub authorizer: Option<Authorizer>,
    /// Produce and fetch byte rates measured against the client quotas.
    pub quotas: ClientQuotaManager,
}

impl Api {
    /// KIP-951: the current leader and epoch of a partition this node answered
    /// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH for, so the client goes there without
    /// waiting for a Metadata refresh; `None` for other answers or an unknown leader.
    /// `id` is looked up only for those answers: answers without them (the hot path) cost nothing.
    pub fn current_leader(&self, error: i16, id: impl FnOnce() -> Option<crate::log::PartitionId>) -> Option<(i32, i32)> {
        let moved = error == kafka_protocol::ResponseError::NotLeaderOrFollower.code() || error == kafka_protocol::ResponseError::FencedLeaderEpoch.code();
        let state = self.replicas.describe(id().filter(|_| moved)?);
        (state.leader >= 0).then_some((state.leader, state.leader_epoch))
    }

    /// The live brokers among `ids`, at their address on the request's listener (KIP-951's
    /// node endpoints).
    pub fn broker_addresses(&self, req: &Request, ids: &std::collections::BTreeSet<i32>) -> Vec<crate::cluster::BrokerAddress> {
        if ids.is_empty() {
            return Vec::new();
        }
        self.cluster.live_brokers(&req.listener).into_iter().filter(|b| ids.contains(&b.id)).collect()
    }
}

/// Where requests come from: what a connection knows of its client.
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: SocketAddr,
    /// The name of the listener the client connected to; answers carry that listener's address.
    pub listener: Arc<str>,
    /// Who the client proved to be; ANONYMOUS where the listener does not authenticate.
    pub principal: Arc<crate::security::Principal>,
}

/// The request currently being answered.
pub struct Request {
    pub header: RequestHeader,
    pub version: i16,
    pub peer: SocketAddr,
    pub listener: Arc<str>,
    pub principal: Arc<crate::security::Principal>,
    /// The request's place among those handled at once (queued.max.requests), until it
    /// finishes or parks.
    queue_slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Request {
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or_default()
    }

    /// Says the request now waits for an event (new data for a long poll, the rest of its
    /// group): like a request in Kafka's purgatory, it gives its queue slot back, so parked
    /// requests cannot keep the others from being handled.
    pub fn parked(&self) {
        self.queue_slot.lock().expect("queue slot lock").take();
    }
}

impl Api {
    /// The broker's state over an opened store: topics and groups loaded from it. ISR changes
    /// go to the controller through `alter`; replication tasks stop when `shutdown` turns true.
    pub fn open(config: &Config, node: Node, log: Arc<LogStore>, alter: Arc<dyn AlterPartitionSender>, shutdown: watch::Receiver<bool>) -> anyhow::Result<Api> {
        let cluster = Arc::new(Cluster::open(config, node, log.clone())?);
        let topics = cluster.topics().iter().map(|t| t.name.clone()).collect();
        let replicas = Arc::new(ReplicaManager::new(config, log.clone(), cluster.clone(), alter, shutdown.clone()));
        // A cluster keeps groups and transactions in replicated topics, a lone node locally.
        let (group_store, txn_store) = if config.quorum_voters.is_empty() {
            (StateStore::Local(log.meta()), StateStore::Local(log.meta()))
        } else {
            let topic = |spec| Arc::new(StateTopic::new(spec, log.clone(), cluster.clone(), replicas.clone()));
            (StateStore::Replicated(topic(crate::group::offsets_topic(config))), StateStore::Replicated(topic(crate::txn::transaction_state_topic(config))))
        };
        let groups = Arc::new(GroupCoordinator::open(group_store, GroupConfig::new(config), &topics)?);
        let fetch_sessions = FetchSessions::new(config.fetch_session_cache_slots);
        let txns = Arc::new(TxnCoordinator::open(txn_store, log.clone(), cluster.clone(), replicas.clone(), groups.clone(), TxnConfig::new(config), shutdown)?);
        let metrics = Arc::new(Metrics::new(SUPPORTED.iter().map(|&(key, _, _)| key)));
        let authorizer = config.authorizer_enabled.then(|| Authorizer { super_users: config.super_users.clone(), allow_if_no_acl: config.allow_everyone_if_no_acl_found });
        let quotas = ClientQuotaManager::new(SampleWindows { windows: config.quota_window_num, window_ms: config.quota_window_size_seconds.saturating_mul(1000) });
        Ok(Api { config: config.clone(), log, cluster, groups, txns, fetch_sessions, replicas, metrics, authorizer, quotas })
    }

    /// Answers one request frame (without its size prefix). `queue_slot` is held while the
    /// request is handled, and given back when it parks. `Err` means the connection should be
    /// closed.
    pub async fn handle(&self, frame: Bytes, origin: &Origin, queue_slot: Option<OwnedSemaphorePermit>) -> Result<Answer, FrameError> {
        let started = std::time::Instant::now();
        let api = frame.get(..2).and_then(|key| ApiKey::try_from(i16::from_be_bytes([key[0], key[1]])).ok());
        let handled = self.dispatch(frame, origin, queue_slot).await;
        if let Some(api) = api {
            self.metrics.request(api, started.elapsed());
            if let Some(throttle) = handled.as_ref().ok().map(|a| a.throttle).filter(|t| !t.is_zero()) {
                self.metrics.throttled(api, throttle);
            }
        }
        handled
    }

    async fn dispatch(&self, mut frame: Bytes, origin: &Origin, queue_slot: Option<OwnedSemaphorePermit>) -> Result<Answer, FrameError> {
        let request_bytes = frame.len();
        if frame.len() < 8 {
            return Err(FrameError::TooShort(frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).map_err(|_| FrameError::UnknownApiKey(key))?;
        let Some((min, max)) = supported_range(api) else {
            return Err(FrameError::UnknownApiKey(key));
        };
        if api == ApiKey::ApiVersions && version > max {
            // KIP-511: answer in v0 so the client can learn our range and downgrade.
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let body = versions::unsupported_version_response();
            return encode_response(api, correlation_id, 0, &ResponseKind::ApiVersions(body), 0).map(Answer::unthrottled);
        }
        if version < min || version > max {
            return Err(FrameError::UnsupportedVersion { api, version, min, max });
        }
        let malformed = |reason: String| FrameError::Malformed { api, version, reason };
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| malformed(format!("header: {e}")))?;
        let body = RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
        if frame.has_remaining() {
            // Kafka ignores trailing bytes, and some clients send them (librdkafka's Metadata
            // v12 carries fields of other versions), so only note it.
            tracing::debug!("{api:?} v{version}: ignoring {} bytes after the request", frame.remaining());
        }
        let correlation_id = header.correlation_id;
        let req = Request { header, version, peer: origin.peer, listener: origin.listener.clone(), principal: origin.principal.clone(), queue_slot: Mutex::new(queue_slot) };
        // Kafka exempts replication and the brokers' own calls from the request quota.
        let exempt = match &body {
            RequestKind::Fetch(r) => (if version >= 15 { r.replica_state.replica_id } else { r.replica_id }).0 >= 0,
            RequestKind::WriteTxnMarkers(_) => true,
            _ => false,
        };
        // Boxed: every connection's task holds this future, idle or not, so the handlers' large
        // state lives on the heap only while a request is handled.
        let (handled, thread_time) = thread_time(Box::pin(self.respond(&req, body, request_bytes))).await;
        let request_throttle_ms = if exempt { 0 } else { self.request_throttle_ms(&req, thread_time) };
        let mut response = match handled {
            Handled::Response(response) => response,
            Handled::Unanswered(response) => {
                // Unanswered, but throttled all the same: the connection is muted.
                let throttle = Duration::from_millis(response.throttle_time_ms.max(request_throttle_ms) as u64);
                return produce::unacknowledged(&response).map(|()| Answer { response: None, throttle, throttle_first: false });
            }
        };
        self.metrics.errors(api, error_codes(&response));
        let (throttle_ms, throttle_first) = match &response {
            // KIP-219: clients of these versions hold back for the throttle themselves; older
            // ones do not, so their response waits it out, as in Kafka.
            ResponseKind::Produce(r) => (r.throttle_time_ms.max(request_throttle_ms), version < 6),
            ResponseKind::Fetch(r) => (r.throttle_time_ms.max(request_throttle_ms), version < 8),
            _ => (request_throttle_ms, false),
        };
        set_throttle_time(&mut response, throttle_ms);
        let response = encode_response(api, correlation_id, api.response_header_version(version), &response, version)?;
        Ok(Answer { response: Some(response), throttle: Duration::from_millis(throttle_ms.max(0) as u64), throttle_first })
    }

    /// Hands a decoded request to its API's handler.
    async fn respond(&self, req: &Request, body: RequestKind, request_bytes: usize) -> Handled {
        Handled::Response(match body {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(versions::handle(self.config.transaction_version, req.version)),
            RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(self, req, r).await),
            RequestKind::Produce(r) => {
                let acks = r.acks;
                let mut response = produce::handle(self, req, r).await;
                response.throttle_time_ms = self.produce_throttle_ms(req, request_bytes);
                if acks == 0 {
                    return Handled::Unanswered(response);
                }
                ResponseKind::Produce(response)
            }
            RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(produce::init_producer_id(self, req, r).await),
            RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(self, req, r).await),
            RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(offsets::list_offsets(self, req, r).await),
            RequestKind::OffsetForLeaderEpoch(r) => {
                ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(self, r).await)
            }
            RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(admin::create_topics(self, req, r).await),
            RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(admin::delete_topics(self, req, r).await),
            RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(groups::find_coordinator(self, req, r).await),
            RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join_group(self, req, r).await),
            RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync_group(self, req, r).await),
            RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(self, req, r).await),
            RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(self, req, r).await),
            RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(groups::offset_commit(self, req, r).await),
            RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(self, req, r)),
            RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(self, req, r)),
            RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe_groups(self, req, r)),
            RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete_groups(self, req, r).await),
            RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(groups::offset_delete(self, req, r).await),
            RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe_configs(self, req, r)),
            RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter_configs(self, r).await),
            RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(self, r).await),
            RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(admin::create_partitions(self, req, r).await),
            RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(metadata::describe_cluster(self, req, r)),
            RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(metadata::describe_quorum(self, req, r).await),
            RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(metadata::describe_topic_partitions(self, req, r)),
            RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(partitions::alter_reassignments(self, r).await),
            RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(partitions::list_reassignments(self, r)),
            RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(partitions::elect_leaders(self, req, r).await),
            RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(admin::delete_records(self, req, r).await),
            RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(admin::describe_log_dirs(self, req, r).await),
            RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(txn::add_partitions(self, req, r).await),
            RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(txn::add_offsets(self, req, r).await),
            RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(self, req, r).await),
            RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(self, req, r).await),
            RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(txn::describe_transactions(self, req, r)),
            RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list_transactions(self, req, r)),
            RequestKind::WriteTxnMarkers(r) => ResponseKind::WriteTxnMarkers(txn::write_txn_markers(self, req, r).await),
            RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(txn::describe_producers(self, req, r).await),
            RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(users::alter(self, req, r).await),
            RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(users::describe(self, req, r)),
            RequestKind::DescribeClientQuotas(r) => ResponseKind::DescribeClientQuotas(quotas::describe(self, req, r)),
            RequestKind::AlterClientQuotas(r) => ResponseKind::AlterClientQuotas(quotas::alter(self, req, r).await),
            RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(sasl::handshake_out_of_place()),
            RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(sasl::authenticate_out_of_place()),
            RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create_acls(self, req, r).await),
            RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe_acls(self, req, r)),
            RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete_acls(self, req, r).await),
            other => unreachable!("{other:?} passed the version table but has no handler"),
        })
    }

    /// Counts the time a request's handler took against the client's `request_percentage`;
    /// the throttle its response carries.
    fn request_throttle_ms(&self, req: &Request, thread_time: Duration) -> i32 {
        let throttle = self.cluster.with_image(|image| self.quotas.record_request_time(image, &req.principal.name, req.client_id(), thread_time));
        throttle.min(i32::MAX as u64) as i32
    }

    /// Counts a produce request's bytes against the client's `producer_byte_rate`; the
    /// throttle its response carries.
    fn produce_throttle_ms(&self, req: &Request, request_bytes: usize) -> i32 {
        let throttle = self.cluster.with_image(|image| self.quotas.record(image, QuotaKey::ProducerByteRate, &req.principal.name, req.client_id(), request_bytes));
        throttle.min(i32::MAX as u64) as i32
    }
}

/// What a handler gave: a response, or none for a Produce with acks=0.
enum Handled {
    Response(ResponseKind),
    Unanswered(ProduceResponse),
}

/// Runs `handler`, adding up the time its polls take: the time it kept a runtime thread busy,
/// as Kafka's request quota measures its handler threads, without the time it waited (long
/// polls, replication, the store's own threads).
async fn thread_time<F: std::future::Future>(handler: F) -> (F::Output, Duration) {
    let mut handler = std::pin::pin!(handler);
    let mut busy = Duration::ZERO;
    std::future::poll_fn(|cx| {
        let started = std::time::Instant::now();
        let polled = handler.as_mut().poll(cx);
        busy += started.elapsed();
        polled.map(|output| (output, busy))
    })
    .await
}

/// Sets `throttle_time_ms` in a response whose type has it (versions without it leave it out).
fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    macro_rules! set {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    set!(
        Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup,
        DescribeGroups, ListGroups, ApiVersions, CreateTopics, DeleteTopics, DeleteRecords, InitProducerId, OffsetForLeaderEpoch,
        AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeAcls, CreateAcls, DeleteAcls, DescribeConfigs, AlterConfigs,
        DescribeLogDirs, CreatePartitions, DeleteGroups, ElectLeaders, IncrementalAlterConfigs, AlterPartitionReassignments,
        ListPartitionReassignments, OffsetDelete, DescribeClientQuotas, AlterClientQuotas, DescribeUserScramCredentials,
        AlterUserScramCredentials, DescribeCluster, DescribeProducers, DescribeTransactions, ListTransactions, DescribeTopicPartitions,
    );
}

/// What the connection does with one handled request.
#[derive(Debug)]
pub struct Answer {
    /// `None`: no response is sent (Produce with acks=0).
    pub response: Option<BytesMut>,
    /// A client over its quota is muted this long (KIP-219): its connection reads no further
    /// request until the time has passed.
    pub throttle: Duration,
    /// The throttle passes before the response is sent rather than after.
    pub throttle_first: bool,
}

impl Answer {
    fn unthrottled(response: BytesMut) -> Answer {
        Answer { response: Some(response), throttle: Duration::ZERO, throttle_first: false }
    }
}

/// The error codes of a response, one per partition, topic or group it answers for, as
/// Kafka's `errorCounts` gives them; APIs not listed count none.
fn error_codes(response: &ResponseKind) -> Vec<i16> {
    match response {
        ResponseKind::Produce(r) => r.responses.iter().flat_map(|t| &t.partition_responses).map(|p| p.error_code).collect(),
        ResponseKind::Fetch(r) if r.error_code != 0 => vec![r.error_code],
        ResponseKind::Fetch(r) => r.responses.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).collect(),
        ResponseKind::ListOffsets(r) => r.topics.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).collect(),
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::OffsetCommit(r) => r.topics.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).collect(),
        ResponseKind::OffsetFetch(r) if r.groups.is_empty() => vec![r.error_code],
        ResponseKind::OffsetFetch(r) => r.groups.iter().map(|g| g.error_code).collect(),
        ResponseKind::FindCoordinator(r) if r.coordinators.is_empty() => vec![r.error_code],
        ResponseKind::FindCoordinator(r) => r.coordinators.iter().map(|c| c.error_code).collect(),
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::ApiVersions(r) => vec![r.error_code],
        ResponseKind::JoinGroup(r) => vec![r.error_code],
        ResponseKind::SyncGroup(r) => vec![r.error_code],
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => vec![r.error_code],
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::AddOffsetsToTxn(r) => vec![r.error_code],
        ResponseKind::EndTxn(r) => vec![r.error_code],
        _ => Vec::new(),
    }
}

/// Size prefix, response header, body.
fn encode_response(
    api: ApiKey,
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Result<BytesMut, FrameError> {
    // A fetch response is mostly record bytes: size it once rather than copy it while growing.
    let records: usize = match body {
        ResponseKind::Fetch(r) => r.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.as_ref()).map(|b| b.len()).sum(),
        _ => 0,
    };
    let mut buf = BytesMut::with_capacity(256 + records);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .and_then(|_| body.encode(&mut buf, version))
        .map_err(|e| FrameError::Encode { api, version, reason: e.to_string() })?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}
