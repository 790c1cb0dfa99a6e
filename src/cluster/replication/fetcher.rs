//! Follower fetchers (Kafka's ReplicaFetcherThread): one task per leader broker fetches every
//! partition this node follows there, with real Fetch requests carrying its replica id, and
//! appends what comes back with the store's follower append. It truncates where the leader's
//! log diverges: from the Fetch answer's diverging epoch (v12+), or by asking OffsetForLeaderEpoch
//! (an older leader, or an append the log refused).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::throttle::Quota;
use super::{PartitionState, TopicPartition};
use crate::cluster::broker_client::BrokerConnection;
use crate::cluster::Cluster;
use crate::log::{LogStore, PartitionId, ReplicaAppendError, ReplicaAppendOptions, UNDEFINED_EPOCH_END};

/// How followers fetch (the broker's `replica.fetch.*` settings).
pub(super) struct FetcherSettings {
    pub node_id: i32,
    pub wait_max_ms: i32,
    pub max_bytes: i32,
    pub response_max_bytes: i32,
    /// After an error, a partition (or a failed connection) waits this long.
    pub backoff: Duration,
}

/// A partition a fetcher replicates.
struct Fetched {
    partition: TopicPartition,
    leader_epoch: i32,
    /// This replica is in the ISR: never throttled.
    in_sync: bool,
    /// Ask the leader where our log diverges before fetching.
    truncate_first: Option<Ask>,
    retry_at: Option<Instant>,
}

/// When to ask OffsetForLeaderEpoch before fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Newly followed: only a leader whose Fetch lacks diverging epochs (before v12) needs it.
    IfNoDivergingEpoch,
    /// The log refused the leader's batches, or the leader our fetch offset.
    Always,
}

/// The partitions one fetcher replicates. Its lock is held while a response is applied, so a
/// partition removed from it gets no append after [`Fetchers::remove`] returns.
struct Assigned {
    partitions: Mutex<HashMap<PartitionId, Fetched>>,
    changed: Notify,
}

struct Fetcher {
    assigned: Arc<Assigned>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The fetcher tasks by leader (node id and address): at most one per broker this node follows.
pub(super) struct Fetchers {
    settings: Arc<FetcherSettings>,
    /// What this node fetches for throttled replicas, across its fetchers.
    quota: Arc<Quota>,
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    shutdown: watch::Receiver<bool>,
    by_leader: Mutex<HashMap<(i32, String), Fetcher>>,
}

/// The retry delay while a leader change is in flight (see [`Fetched::delay`]).
const LEADER_CHANGE_BACKOFF: Duration = Duration::from_millis(20);

/// How long a leader may take to answer, beyond a fetch's own wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl FetcherSettings {
    fn request_timeout(&self) -> Duration {
        REQUEST_TIMEOUT + Duration::from_millis(self.wait_max_ms.max(0) as u64)
    }
}

impl Fetchers {
    pub(super) fn new(settings: FetcherSettings, log: Arc<LogStore>, cluster: Arc<Cluster>, quota: Arc<Quota>, shutdown: watch::Receiver<bool>) -> Fetchers {
        Fetchers { settings: Arc::new(settings), quota, log, cluster, shutdown, by_leader: Mutex::new(HashMap::new()) }
    }

    /// Fetches `id` from `state.leader` at `address`, moving it off any other fetcher.
    pub(super) async fn add(&self, id: PartitionId, partition: &TopicPartition, state: &PartitionState, address: &str) {
        let key = (state.leader, address.to_string());
        let mut by_leader = self.by_leader.lock().await;
        remove_from(&mut by_leader, id, Some(&key)).await;
        let fetcher = by_leader.entry(key.clone()).or_insert_with(|| {
            let assigned = Arc::new(Assigned { partitions: Mutex::new(HashMap::new()), changed: Notify::new() });
            let (stop, stopped) = watch::channel(false);
            let task = FetcherTask {
                leader: key.0,
                address: key.1.clone(),
                settings: self.settings.clone(),
                quota: self.quota.clone(),
                log: self.log.clone(),
                cluster: self.cluster.clone(),
                assigned: assigned.clone(),
                stopped,
                shutdown: self.shutdown.clone(),
                unreachable: std::sync::Mutex::new(None),
            };
            Fetcher { assigned, stop, task: tokio::spawn(task.run()) }
        });
        let in_sync = state.isr.contains(&self.settings.node_id);
        let fetched = Fetched { partition: partition.clone(), leader_epoch: state.leader_epoch, in_sync, truncate_first: Some(Ask::IfNoDivergingEpoch), retry_at: None };
        fetcher.assigned.partitions.lock().await.insert(id, fetched);
        fetcher.assigned.changed.notify_one();
    }

    /// Stops fetching `id`; returns once no fetcher will append to it.
    pub(super) async fn remove(&self, id: PartitionId) {
        remove_from(&mut *self.by_leader.lock().await, id, None).await;
    }

    /// Stops every fetcher and waits for them (broker shutdown).
    pub(super) async fn stop_all(&self) {
        let fetchers: Vec<Fetcher> = self.by_leader.lock().await.drain().map(|(_, f)| f).collect();
        for f in fetchers {
            let _ = f.stop.send(true);
            let _ = f.task.await;
        }
    }
}

/// Takes `id` off every fetcher but `keep`; a fetcher left with nothing stops.
async fn remove_from(by_leader: &mut HashMap<(i32, String), Fetcher>, id: PartitionId, keep: Option<&(i32, String)>) {
    let mut idle = Vec::new();
    for (key, fetcher) in by_leader.iter() {
        if Some(key) == keep {
            continue;
        }
        let mut partitions = fetcher.assigned.partitions.lock().await;
        if partitions.remove(&id).is_some() && partitions.is_empty() {
            idle.push(key.clone());
        }
    }
    for key in idle {
        if let Some(f) = by_leader.remove(&key) {
            let _ = f.stop.send(true);
        }
    }
}

/// One fetcher's loop and what it needs.
struct FetcherTask {
    leader: i32,
    address: String,
    settings: Arc<FetcherSettings>,
    quota: Arc<Quota>,
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    assigned: Arc<Assigned>,
    stopped: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    /// Since when the leader is unreachable as last logged, and the failures since.
    unreachable: std::sync::Mutex<Option<(Instant, u32)>>,
}

/// How often a leader that stays unreachable (down, or refusing this broker's login) is
/// logged again; the fetcher keeps retrying every backoff.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// What was asked of one partition in a Fetch, to match the answer.
struct Asked {
    id: PartitionId,
    key: (TopicKey, i32),
    leader_epoch: i32,
    /// Its bytes count against `follower.replication.throttled.rate`.
    throttled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TopicKey {
    Id(uuid::Uuid),
    Name(String),
}

impl FetcherTask {
    /// Fetch rounds until the fetcher is stopped. Only waits (for the network, or a pause) are
    /// cut short by a stop: an append or truncation always completes.
    async fn run(self) {
        let span = tracing::info_span!("replica-fetcher", leader = self.leader, address = %self.address);
        let _ = tracing::Instrument::instrument(
            async {
                let mut peer: Option<Peer> = None;
                while !self.is_stopped() {
                    if let Some(pause) = self.round(&mut peer).await {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = self.assigned.changed.notified() => {}
                            _ = self.stop_requested() => {}
                        }
                    }
                }
            },
            span,
        )
        .await;
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.borrow() || *self.shutdown.borrow()
    }

    /// Returns once this fetcher is to stop (or the broker shuts down).
    async fn stop_requested(&self) {
        let (mut stopped, mut shutdown) = (self.stopped.clone(), self.shutdown.clone());
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    }

    /// One request to the leader, given up when the fetcher stops.
    async fn call<R: Request>(&self, peer: &mut Peer, request: &R, version: i16) -> Result<R::Response> {
        tokio::select! {
            response = peer.call(request, version, self.settings.request_timeout()) => response,
            _ = self.stop_requested() => bail!("stopping"),
        }
    }

    /// Logs why nothing can be fetched from the leader (no connection, a refused login or
    /// authorization): the first at once, then at most one every [`UNREACHABLE_LOG_INTERVAL`],
    /// counting those not logged.
    fn log_unreachable(&self, why: impl std::fmt::Display) {
        let mut unreachable = self.unreachable.lock().expect("unreachable lock");
        let now = Instant::now();
        match unreachable.as_mut() {
            Some((logged, failures)) if now.duration_since(*logged) < UNREACHABLE_LOG_INTERVAL => *failures += 1,
            previous => {
                let since = previous.map_or(String::new(), |(_, failures)| format!(" ({} failed attempts not logged since)", *failures));
                tracing::warn!("cannot fetch from the leader, retrying{since}: {why}");
                *unreachable = Some((now, 0));
            }
        }
    }

    /// One fetch round; returns how long to pause before the next (`None`: go on at once).
    async fn round(&self, peer: &mut Option<Peer>) -> Option<Duration> {
        let (ready, next_retry) = self.ready().await;
        if ready.is_empty() {
            return Some(next_retry.map_or(self.settings.backoff, |at| at.saturating_duration_since(Instant::now())));
        }
        if peer.is_none() {
            let connected = tokio::select! {
                connected = Peer::connect(&self.cluster, &self.address, self.settings.node_id) => connected,
                _ = self.stop_requested() => return None,
            };
            match connected {
                Ok(p) => {
                    if self.unreachable.lock().expect("unreachable lock").take().is_some() {
                        tracing::info!("reached the leader again");
                    }
                    *peer = Some(p);
                }
                Err(e) => {
                    self.log_unreachable(format_args!("{e:#}"));
                    return Some(self.settings.backoff);
                }
            }
        }
        let conn = peer.as_mut().expect("connected above");
        let result = match self.truncate_first(conn, &ready).await {
            Ok(()) => self.fetch(conn).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(true) => None,
            // Every partition waits out an error.
            Ok(false) => Some(self.settings.backoff),
            Err(e) => {
                tracing::warn!("fetch failed: {e:#}");
                *peer = None;
                Some(self.settings.backoff)
            }
        }
    }

    /// The partitions not waiting out a backoff, and when the next of the others may go.
    async fn ready(&self) -> (Vec<PartitionId>, Option<Instant>) {
        let now = Instant::now();
        let partitions = self.assigned.partitions.lock().await;
        let ready = partitions.iter().filter(|(_, f)| f.retry_at.is_none_or(|t| t <= now)).map(|(id, _)| *id).collect();
        (ready, partitions.values().filter_map(|f| f.retry_at).filter(|&t| t > now).min())
    }

    /// For partitions just assigned (or whose append was refused): against a leader without
    /// diverging epochs in Fetch, or after a refused append, asks OffsetForLeaderEpoch for the
    /// end of our last epoch and truncates there.
    async fn truncate_first(&self, peer: &mut Peer, ready: &[PartitionId]) -> Result<()> {
        let mut partitions = self.assigned.partitions.lock().await;
        for id in ready {
            let Some(f) = partitions.get_mut(id) else { continue };
            match f.truncate_first {
                None => continue,
                Some(Ask::IfNoDivergingEpoch) if peer.fetch_version >= 12 => {
                    f.truncate_first = None;
                    continue;
                }
                Some(_) => {}
            }
            let latest = match self.log.latest_epoch(*id).await {
                Ok(epoch) => epoch,
                Err(e) => {
                    f.delay(self.settings.backoff, e);
                    continue;
                }
            };
            if latest < 0 {
                f.truncate_first = None;
                continue;
            }
            let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(self.settings.node_id)).with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(f.partition.topic.clone())))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(f.partition.partition)
                    .with_current_leader_epoch(f.leader_epoch)
                    .with_leader_epoch(latest)])]);
            let version = peer.offset_for_leader_epoch_version;
            let response = self.call(peer, &request, version).await?;
            let answer = response.topics.first().and_then(|t| t.partitions.first()).context("OffsetForLeaderEpoch answer without the partition")?;
            match ResponseError::try_from_code(answer.error_code) {
                Some(e) => f.delay(self.settings.backoff, e),
                None => match truncate(&self.log, *id, answer.leader_epoch, answer.end_offset).await {
                    Ok(()) => f.truncate_first = None,
                    Err(e) => f.delay(self.settings.backoff, e),
                },
            }
        }
        Ok(())
    }

    /// One Fetch for the partitions ready; false if none was.
    async fn fetch(&self, peer: &mut Peer) -> Result<bool> {
        let (request, asked) = self.request(peer.fetch_version).await;
        if asked.is_empty() {
            return Ok(false);
        }
        let response = self.call(peer, &request, peer.fetch_version).await?;
        if let Some(e) = ResponseError::try_from_code(response.error_code) {
            bail!("the leader refused the fetch: {e:?}");
        }
        let mut answers = HashMap::new();
        for topic in response.responses {
            let key = if peer.fetch_version >= 13 { TopicKey::Id(topic.topic_id) } else { TopicKey::Name(topic.topic.to_string()) };
            for p in topic.partitions {
                answers.insert((key.clone(), p.partition_index), p);
            }
        }
        let mut partitions = self.assigned.partitions.lock().await;
        for a in asked {
            let Some(p) = answers.remove(&a.key) else { continue };
            // Reassigned, or moved to another epoch, while the fetch was out.
            let Some(f) = partitions.get_mut(&a.id).filter(|f| f.leader_epoch == a.leader_epoch) else { continue };
            if let Some(e) = ResponseError::try_from_code(p.error_code) {
                match e {
                    ResponseError::OffsetOutOfRange => f.truncate_first = Some(Ask::Always),
                    ResponseError::TopicAuthorizationFailed | ResponseError::ClusterAuthorizationFailed => self.log_unreachable(format_args!(
                        "{e:?} for {:?}: this broker's principal needs CLUSTER_ACTION on the cluster (super.users, or an ACL)",
                        f.partition
                    )),
                    _ => {}
                }
                f.delay(self.settings.backoff, e);
                continue;
            }
            let diverging = &p.diverging_epoch;
            let applied = if diverging.epoch >= 0 || diverging.end_offset >= 0 {
                truncate(&self.log, a.id, diverging.epoch, diverging.end_offset).await.map_err(ReplicaAppendError::Refused)
            } else {
                let records = p.records.as_deref().unwrap_or_default();
                if a.throttled {
                    self.quota.record(self.cluster.broker_settings().follower_replication_throttled_rate, records.len());
                }
                self.append(a.id, &f.partition, records).await
            };
            match applied {
                Ok(()) => {
                    // Fails only for a deleted partition.
                    let _ = self.log.set_high_watermark(a.id, p.high_watermark);
                }
                Err(ReplicaAppendError::Refused(e)) => f.delay(self.settings.backoff, e),
                Err(misplaced) => {
                    tracing::info!(partition = ?f.partition, "the leader's batches do not follow our log ({misplaced:?}): asking where it diverges");
                    f.truncate_first = Some(Ask::Always);
                }
            }
        }
        Ok(true)
    }

    /// A Fetch for the ready partitions, each from its log end.
    async fn request(&self, version: i16) -> (FetchRequest, Vec<Asked>) {
        let now = Instant::now();
        let partitions = self.assigned.partitions.lock().await;
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut asked = Vec::new();
        let quota_used_up = self.quota.exceeded(self.cluster.broker_settings().follower_replication_throttled_rate);
        for (&id, f) in partitions.iter() {
            if f.truncate_first.is_some() || f.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let throttled = !f.in_sync && self.cluster.topic(&f.partition.topic).is_some_and(|t| t.configs.follower_throttled(f.partition.partition, self.settings.node_id));
            if throttled && quota_used_up {
                continue;
            }
            let (Ok((log_start, _)), Ok(log_end), Ok(last_epoch)) = (self.log.offsets(id), self.log.log_end_offset(id), self.log.latest_epoch(id).await) else { continue };
            let key = if version >= 13 { TopicKey::Id(f.partition.topic_id) } else { TopicKey::Name(f.partition.topic.clone()) };
            let partition = FetchPartition::default()
                .with_partition(f.partition.partition)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(log_end)
                .with_last_fetched_epoch(if version >= 12 { last_epoch } else { -1 })
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(self.settings.max_bytes);
            let topic = FetchTopic::default().with_topic(TopicName(StrBytes::from_string(f.partition.topic.clone()))).with_topic_id(f.partition.topic_id);
            match topics.iter_mut().find(|t| t.topic_id == topic.topic_id && t.topic == topic.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(topic.with_partitions(vec![partition])),
            }
            asked.push(Asked { id, key: (key, f.partition.partition), leader_epoch: f.leader_epoch, throttled });
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(if version < 15 { self.settings.node_id } else { -1 }))
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(if version >= 15 { self.settings.node_id } else { -1 })))
            .with_max_wait_ms(self.settings.wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.settings.response_max_bytes)
            // Sessionless: every fetch names all its partitions.
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        (request, asked)
    }

    /// Appends fetched batches as the topic's configs ask.
    async fn append(&self, id: PartitionId, partition: &TopicPartition, records: &[u8]) -> Result<(), ReplicaAppendError> {
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.cluster.topic(&partition.topic).ok_or(ResponseError::UnknownTopicOrPartition)?;
        let opts = ReplicaAppendOptions { flush: topic.configs.flush_policy(), allow_gaps: topic.configs.compaction().is_some() };
        self.log.append_replicated(id, records, opts).await.map(|_| ())
    }
}

impl Fetched {
    fn delay(&mut self, backoff: Duration, e: ResponseError) {
        // A new leader answers these until it has applied the metadata that made it leader,
        // which takes milliseconds: waiting out the whole backoff would stall acks=all writes.
        let backoff = match e {
            ResponseError::NotLeaderOrFollower | ResponseError::UnknownLeaderEpoch => backoff.min(LEADER_CHANGE_BACKOFF),
            _ => backoff,
        };
        tracing::debug!(partition = ?self.partition, "fetch error {e:?}: retrying in {backoff:?}");
        self.retry_at = Some(Instant::now() + backoff);
    }
}

/// Truncates where the leader's log diverges from ours (KIP-101/279): the leader's last epoch at
/// most ours ends at `leader_end`; our own log's part of that epoch ends at some offset too, and
/// the log keeps what both have.
async fn truncate(log: &LogStore, id: PartitionId, leader_epoch: i32, leader_end: i64) -> Result<(), ResponseError> {
    let (log_start, _) = log.offsets(id)?;
    let target = if (leader_epoch, leader_end) == UNDEFINED_EPOCH_END {
        // The leader has no epoch as old as ours: nothing of our log is on it.
        log_start
    } else {
        let (epoch, end) = log.end_offset_for_epoch(id, leader_epoch).await?;
        if (epoch, end) == UNDEFINED_EPOCH_END {
            log_start
        } else {
            end.min(leader_end)
        }
    };
    if target < log.log_end_offset(id)? {
        log.truncate_to(id, target.max(log_start)).await?;
    }
    Ok(())
}

/// A connection to the leader, with the versions of the requests a follower sends.
struct Peer {
    conn: BrokerConnection,
    fetch_version: i16,
    offset_for_leader_epoch_version: i16,
}

impl Peer {
    async fn connect(cluster: &Cluster, address: &str, node_id: i32) -> Result<Peer> {
        let conn = BrokerConnection::connect(address, cluster.inter_broker(), format!("broker-{node_id}-fetcher"), REQUEST_TIMEOUT).await?;
        let fetch_version = conn.version::<FetchRequest>(0)?;
        let offset_for_leader_epoch_version = conn.version::<OffsetForLeaderEpochRequest>(3)?;
        Ok(Peer { conn, fetch_version, offset_for_leader_epoch_version })
    }

    async fn call<R: Request>(&mut self, request: &R, version: i16, timeout: Duration) -> Result<R::Response> {
        self.conn.call(request, version, timeout).await
    }
}
