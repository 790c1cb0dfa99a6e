//! Leader/follower data replication, driven by explicit partition states (Kafka's
//! ReplicaManager and Partition).
//!
//! The metadata publisher tells [`ReplicaManager::apply`] each partition's leader, leader epoch,
//! replicas and ISR. A leader tracks its followers' log ends from their Fetch requests, keeps the
//! high watermark at the minimum log end over the ISR, and proposes ISR changes through an
//! [`AlterPartitionSender`]; a follower fetches from its leader in a [`fetcher`] task and appends
//! with the same store function as a leader's produce. A partition no state was applied to is led
//! by this node alone at [`INITIAL_LEADER_EPOCH`]: the single-node broker, whose high watermark
//! follows the log end.

mod fetcher;
mod leader;
mod throttle;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify, OwnedRwLockReadGuard};
use tokio::time::Instant;
use uuid::Uuid;

use crate::cluster::{now_ms, Cluster, Topic};
use crate::config::Config;
use crate::log::{AppendOptions, HighWatermark, LogStore, PartitionId, UNDEFINED_EPOCH_END};
use fetcher::{FetcherSettings, Fetchers};
use leader::LeaderState;
use throttle::Quota;

/// The leader epoch of a partition no state was applied to.
pub const INITIAL_LEADER_EPOCH: i32 = 0;

/// A partition as the cluster names it: the topic id is the controller's, the same on every
/// broker (followers fetch by it from Fetch v13 on).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What the metadata image says of one partition (Kafka's PartitionRegistration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's node id; -1 when the partition has none.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by the controller on every change of the partition (ISR included).
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Where each broker's replication listener is, `host:port` by node id.
pub type BrokerAddresses = HashMap<i32, String>;

/// A leader's request to change the ISR (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub partition: TopicPartition,
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch the change is based on; the controller refuses a stale one.
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// The ISR the controller committed for a partition (Kafka's AlterPartition response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// How a leader's ISR changes reach the controller. The controller wiring implements it with
/// AlterPartition; the leader applies the new ISR only once the answer comes (as Kafka does).
pub trait AlterPartitionSender: Send + Sync + 'static {
    fn alter_partition(&self, request: AlterPartition) -> BoxFuture<'static, Result<CommittedIsr, ResponseError>>;
}

/// For a broker without a controller: every change is accepted, as a one-voter controller
/// accepts a valid one, with the partition epoch bumped.
pub struct LocalAlterPartition;

impl AlterPartitionSender for LocalAlterPartition {
    fn alter_partition(&self, request: AlterPartition) -> BoxFuture<'static, Result<CommittedIsr, ResponseError>> {
        let committed = CommittedIsr { leader_epoch: request.leader_epoch, partition_epoch: request.partition_epoch + 1, isr: request.new_isr };
        Box::pin(std::future::ready(Ok(committed)))
    }
}

/// How a leader answers a follower's fetch of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerFetch {
    /// Read from its fetch offset; `throttled` bytes count against `leader.replication.throttled.rate`.
    Read { throttled: bool },
    /// Its log diverges from the leader's: (epoch, end offset) where (KIP-320).
    Diverging(i32, i64),
    /// A throttled replica, with the rate used up: nothing this time.
    Held,
}

/// How a write on a partition's leader is checked and answered.
pub struct LeaderWrite {
    /// The leader epoch the writer expects (a coordinator's, from when it loaded the
    /// partition); `None`: whichever this node leads at.
    pub epoch: Option<i32>,
    /// acks=all: refused while the ISR is smaller than `min.insync.replicas`, answered once the
    /// ISR has the write.
    pub acks_all: bool,
    /// An acks=all write not replicated by then is answered REQUEST_TIMED_OUT.
    pub deadline: Instant,
}

/// What a leader write needs to know of the partition's leader.
struct LeaderAppend {
    pub leader_epoch: i32,
    /// The ISR the controller committed, which `min.insync.replicas` is checked against.
    pub isr_size: usize,
    /// `None` when no state was applied: led alone, the high watermark follows the log end.
    replica: Option<Arc<Replica>>,
    /// Keeps the role until the batch is appended.
    role: Option<OwnedRwLockReadGuard<()>>,
}

/// One local partition's replica.
struct Replica {
    id: PartitionId,
    partition: TopicPartition,
    /// Held for reading by a leader's append, for writing by a change of role: no batch is
    /// appended at an epoch this node no longer leads (Kafka's leaderIsrUpdateLock).
    role: Arc<tokio::sync::RwLock<()>>,
    state: Mutex<ReplicaState>,
    /// Woken on every change of role or ISR: produces waiting for acks=all recheck.
    changed: Notify,
}

struct ReplicaState {
    applied: PartitionState,
    /// `Some` while this node leads the partition.
    leader: Option<LeaderState>,
}

/// Owns every local partition's replica role: leader (tracking followers, ISR and high
/// watermark) or follower (fetching from its leader).
pub struct ReplicaManager {
    node_id: i32,
    log: Arc<LogStore>,
    cluster: Arc<Cluster>,
    alter: Arc<dyn AlterPartitionSender>,
    replicas: RwLock<HashMap<PartitionId, Arc<Replica>>>,
    fetchers: Fetchers,
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long is removed.
    lag_time_max_ms: i64,
    /// A lone node leads every partition it has no state for; a cluster node leads none until
    /// the metadata publisher applies one (a restarted node must not take writes for a
    /// partition another broker leads now).
    lone: bool,
    /// What this node sends, as leader, to throttled followers.
    leader_quota: Quota,
}

impl ReplicaManager {
    pub fn new(config: &Config, log: Arc<LogStore>, cluster: Arc<Cluster>, alter: Arc<dyn AlterPartitionSender>, shutdown: watch::Receiver<bool>) -> ReplicaManager {
        let settings = FetcherSettings {
            node_id: config.node_id,
            wait_max_ms: config.replica_fetch_wait_max_ms,
            max_bytes: config.replica_fetch_max_bytes,
            response_max_bytes: config.replica_fetch_response_max_bytes,
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
        };
        ReplicaManager {
            node_id: config.node_id,
            fetchers: Fetchers::new(settings, log.clone(), cluster.clone(), Arc::new(Quota::new()), shutdown),
            log,
            cluster,
            alter,
            replicas: RwLock::new(HashMap::new()),
            lag_time_max_ms: config.replica_lag_time_max_ms,
            lone: config.quorum_voters.is_empty(),
            leader_quota: Quota::new(),
        }
    }

    fn replica(&self, id: PartitionId) -> Option<Arc<Replica>> {
        self.replicas.read().expect("replicas lock").get(&id).cloned()
    }

    /// Makes this node leader or follower of `partition` as `state` says, which the metadata
    /// publisher calls for every partition change that concerns this node. A state older than
    /// the one applied (lower leader or partition epoch) is ignored.
    pub async fn apply(&self, partition: &TopicPartition, state: PartitionState, addresses: &BrokerAddresses) -> Result<(), ResponseError> {
        let id = crate::cluster::partition_id(self.cluster.topic(&partition.topic).as_deref(), partition.partition)?;
        let replica = {
            let mut replicas = self.replicas.write().expect("replicas lock");
            replicas
                .entry(id)
                .or_insert_with(|| {
                    let applied = single_node_state(self.node_id);
                    let state = Mutex::new(ReplicaState { applied, leader: None });
                    Arc::new(Replica { id, partition: partition.clone(), role: Arc::default(), state, changed: Notify::new() })
                })
                .clone()
        };
        let _role = replica.role.write().await;
        {
            let current = replica.state.lock().expect("replica lock");
            let known = &current.applied;
            let was_applied = current.leader.is_some() || known.leader != self.node_id;
            if was_applied && (state.leader_epoch < known.leader_epoch || (state.leader_epoch == known.leader_epoch && state.partition_epoch < known.partition_epoch)) {
                tracing::debug!(?partition, ?state, ?known, "ignoring a stale partition state");
                return Ok(());
            }
        }
        if state.leader == self.node_id {
            // The fetcher lets go first: nothing it fetched is appended after this node leads.
            self.fetchers.remove(id).await;
            let log_end = self.log.log_end_offset(id)?;
            let mode = if state.replicas.len() > 1 { HighWatermark::Caller } else { HighWatermark::LogEnd };
            self.log.set_high_watermark_mode(id, mode)?;
            let mut current = replica.state.lock().expect("replica lock");
            let same_epoch = current.leader.is_some() && current.applied.leader_epoch == state.leader_epoch;
            match &mut current.leader {
                Some(leader) if same_epoch => leader.update_assignment(&state, self.node_id, now_ms()),
                _ => current.leader = Some(LeaderState::new(&state, self.node_id, log_end, now_ms())),
            }
            current.applied = state;
            tracing::info!(?partition, epoch = current.applied.leader_epoch, isr = ?current.applied.isr, "leading");
            self.advance_high_watermark(&replica, &mut current);
        } else {
            {
                let mut current = replica.state.lock().expect("replica lock");
                current.leader = None;
                current.applied = state.clone();
            }
            self.log.set_high_watermark_mode(id, HighWatermark::Caller)?;
            let replica_here = state.replicas.contains(&self.node_id);
            match addresses.get(&state.leader).filter(|_| replica_here) {
                Some(address) => self.fetchers.add(id, partition, &state, address).await,
                None => self.fetchers.remove(id).await,
            }
            // Reassigned away (maybe while this node was down): its copy goes, as Kafka deletes it.
            if !replica_here && self.log.log_end_offset(id)? > 0 {
                self.log.empty_partition(id).await?;
                self.log.set_high_watermark_mode(id, HighWatermark::Caller)?;
                tracing::info!(?partition, "no longer a replica here: deleted its local copy");
            }
            tracing::info!(?partition, leader = state.leader, epoch = state.leader_epoch, "following");
        }
        replica.changed.notify_waiters();
        Ok(())
    }

    /// Stops replicating partitions that are gone (a deleted topic).
    pub async fn remove(&self, ids: &[PartitionId]) {
        for id in ids {
            self.fetchers.remove(*id).await;
            if let Some(replica) = self.replicas.write().expect("replicas lock").remove(id) {
                replica.changed.notify_waiters();
            }
        }
    }

    /// The partition's state as this node knows it, for Metadata answers.
    pub fn describe(&self, id: PartitionId) -> PartitionState {
        match self.replica(id) {
            Some(replica) => replica.state.lock().expect("replica lock").applied.clone(),
            None if self.lone => single_node_state(self.node_id),
            None => PartitionState { leader: -1, leader_epoch: INITIAL_LEADER_EPOCH, partition_epoch: 0, replicas: vec![], isr: vec![] },
        }
    }

    /// Whether this node holds a replica of the partition, leader or follower (Kafka's
    /// DescribeProducers answers from either).
    pub fn hosts(&self, id: PartitionId) -> bool {
        self.describe(id).replicas.contains(&self.node_id)
    }

    /// A write on this partition's leader, as Kafka's Partition.appendRecordsToLeader makes
    /// it (produce, transaction markers, a group coordinator's records): refused unless this
    /// node leads (at `how.epoch`, if given) and, for acks=all, the ISR has
    /// `min.insync.replicas`; `write` appends with the options the topic's configs give at the
    /// leader's epoch and returns its value with the offset after what it wrote; with acks=all
    /// the answer waits for the ISR. The role cannot change between the checks and the write.
    pub async fn append_as_leader<T, E, Fut>(&self, topic: &Topic, id: PartitionId, how: LeaderWrite, write: impl FnOnce(AppendOptions) -> Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<(T, i64), E>>,
        E: From<ResponseError>,
    {
        let mut leader = self.leader_for_append(id).await?;
        if how.epoch.is_some_and(|epoch| epoch != leader.leader_epoch) {
            return Err(ResponseError::NotLeaderOrFollower.into());
        }
        let min_isr = if how.acks_all { topic.configs.min_insync_replicas() } else { 0 };
        if leader.isr_size < min_isr {
            return Err(ResponseError::NotEnoughReplicas.into());
        }
        let opts = AppendOptions {
            max_batch_bytes: topic.configs.max_message_bytes(),
            leader_epoch: leader.leader_epoch,
            log_append_time: topic.configs.log_append_time().then(now_ms),
            flush: topic.configs.flush_policy(),
            require_keys: topic.configs.compaction().is_some(),
        };
        let written = write(opts).await;
        self.appended(&mut leader);
        let (value, end_offset) = written?;
        if how.acks_all {
            self.wait_replicated(&leader, end_offset, min_isr, how.deadline).await?;
        }
        Ok(value)
    }

    /// This node must lead the partition; its epoch goes on the batch.
    async fn leader_for_append(&self, id: PartitionId) -> Result<LeaderAppend, ResponseError> {
        let Some(replica) = self.replica(id) else {
            if !self.lone {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            return Ok(LeaderAppend { leader_epoch: INITIAL_LEADER_EPOCH, isr_size: 1, replica: None, role: None });
        };
        let role = replica.role.clone().read_owned().await;
        let state = replica.state.lock().expect("replica lock");
        if state.leader.is_none() {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let (leader_epoch, isr_size) = (state.applied.leader_epoch, state.applied.isr.len());
        drop(state);
        Ok(LeaderAppend { leader_epoch, isr_size, replica: Some(replica), role: Some(role) })
    }

    /// After a leader's append: lets the role change again, and, with followers, moves the high
    /// watermark (an ISR of one).
    fn appended(&self, leader: &mut LeaderAppend) {
        leader.role.take();
        if let Some(replica) = &leader.replica {
            self.advance_high_watermark(replica, &mut replica.state.lock().expect("replica lock"));
        }
    }

    /// A client's request on the leader (consumer Fetch, ListOffsets, OffsetForLeaderEpoch):
    /// this node must lead, and the client's epoch (-1: no opinion) must be the leader's.
    pub fn check_leader(&self, id: PartitionId, client_epoch: i32) -> Result<(), ResponseError> {
        let Some(replica) = self.replica(id) else {
            if !self.lone {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            return check_epoch(client_epoch, INITIAL_LEADER_EPOCH);
        };
        let state = replica.state.lock().expect("replica lock");
        // Kafka checks the epoch first: a stale client learns that before who leads.
        check_epoch(client_epoch, state.applied.leader_epoch)?;
        state.leader.as_ref().map(|_| ()).ok_or(ResponseError::NotLeaderOrFollower)
    }

    /// The leader epoch to report with offsets.
    pub fn leader_epoch(&self, id: PartitionId) -> i32 {
        self.replica(id).map_or(INITIAL_LEADER_EPOCH, |r| r.state.lock().expect("replica lock").applied.leader_epoch)
    }

    /// A follower's Fetch on the leader, before its read: checks that this node leads at the
    /// follower's epoch and knows the follower, and finds where the follower's log diverges
    /// from the leader's (KIP-320: when its last fetched epoch ends earlier here). Otherwise
    /// records the fetch offset as the follower's log end, moving the high watermark and
    /// proposing to add it to the ISR once it has caught up; a follower out of the ISR that the
    /// topic throttles is held while `leader.replication.throttled.rate` is used up.
    pub async fn follower_fetch(&self, id: PartitionId, follower: i32, current_epoch: i32, fetch_offset: i64, last_fetched_epoch: i32) -> Result<FollowerFetch, ResponseError> {
        let replica = self.replica(id).ok_or(ResponseError::NotLeaderOrFollower)?;
        let leader_epoch = {
            let state = replica.state.lock().expect("replica lock");
            check_epoch(current_epoch, state.applied.leader_epoch)?;
            let leader = state.leader.as_ref().ok_or(ResponseError::NotLeaderOrFollower)?;
            if !leader.has_follower(follower) {
                // Kafka's answer: with an epoch, "not yet known at this epoch", so it retries.
                return Err(if current_epoch >= 0 { ResponseError::UnknownLeaderEpoch } else { ResponseError::NotLeaderOrFollower });
            }
            state.applied.leader_epoch
        };
        if last_fetched_epoch >= 0 && last_fetched_epoch < leader_epoch {
            let (epoch, end) = self.log.end_offset_for_epoch(id, last_fetched_epoch).await?;
            if (epoch, end) == UNDEFINED_EPOCH_END {
                return Err(ResponseError::OffsetOutOfRange);
            }
            if epoch < last_fetched_epoch || end < fetch_offset {
                return Ok(FollowerFetch::Diverging(epoch, end));
            }
        }
        let leader_end = self.log.log_end_offset(id)?;
        if fetch_offset > leader_end {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let hw = self.log.offsets(id)?.1;
        let mut guard = replica.state.lock().expect("replica lock");
        let state = &mut *guard;
        let Some(leader) = state.leader.as_mut().filter(|_| state.applied.leader_epoch == leader_epoch) else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        leader.record_fetch(follower, fetch_offset, leader_end, now_ms());
        if let Some(isr) = leader.expansion(follower, &state.applied.isr, hw) {
            tracing::info!(partition = ?replica.partition, follower, new_isr = ?isr, "follower caught up: expanding the ISR");
            self.propose_isr(&replica, state, isr);
        }
        self.advance_high_watermark(&replica, state);
        let out_of_sync = !state.applied.isr.contains(&follower);
        drop(guard);
        let throttled = out_of_sync && self.cluster.topic(&replica.partition.topic).is_some_and(|t| t.configs.leader_throttled(replica.partition.partition, follower));
        if throttled && self.leader_quota.exceeded(self.cluster.broker_settings().leader_replication_throttled_rate) {
            return Ok(FollowerFetch::Held);
        }
        Ok(FollowerFetch::Read { throttled })
    }

    /// Counts what a read sent to throttled followers.
    pub fn leader_throttled_sent(&self, bytes: usize) {
        self.leader_quota.record(self.cluster.broker_settings().leader_replication_throttled_rate, bytes);
    }

    /// acks=all: waits until the high watermark reaches `end_offset` (the offset after the
    /// batch), then checks the ISR still has `min_isr` members (else
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND). REQUEST_TIMED_OUT at `deadline`; NOT_LEADER_OR_FOLLOWER
    /// if this node stops leading at `leader_epoch` meanwhile.
    async fn wait_replicated(&self, leader: &LeaderAppend, end_offset: i64, min_isr: usize, deadline: Instant) -> Result<(), ResponseError> {
        let Some(replica) = &leader.replica else {
            // Led alone: the high watermark follows the log end, which the append has passed.
            return Ok(());
        };
        let (id, leader_epoch) = (replica.id, leader.leader_epoch);
        let appended = Arc::new(Notify::new());
        self.log.watch(&[id], &appended);
        loop {
            let changed = replica.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = replica.state.lock().expect("replica lock");
                let Some(leader) = state.leader.as_ref().filter(|_| state.applied.leader_epoch == leader_epoch) else {
                    return Err(ResponseError::NotLeaderOrFollower);
                };
                if self.log.offsets(id)?.1 >= end_offset {
                    return if leader.maximal_isr(&state.applied.isr).len() >= min_isr { Ok(()) } else { Err(ResponseError::NotEnoughReplicasAfterAppend) };
                }
            }
            tokio::select! {
                _ = appended.notified() => {}
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(deadline) => return Err(ResponseError::RequestTimedOut),
            }
        }
    }

    /// The ISR checker (Kafka's isr-shrink task): every half `replica.lag.time.max.ms`, proposes
    /// to remove the followers that have not caught up for that long. Runs until shutdown, then
    /// waits for the fetchers to stop.
    pub async fn run_isr_checker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let period = Duration::from_millis((self.lag_time_max_ms / 2).max(10) as u64);
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.shrink_isrs(),
                _ = shutdown.changed() => break,
            }
        }
        self.fetchers.stop_all().await;
    }

    fn shrink_isrs(&self) {
        let replicas: Vec<Arc<Replica>> = self.replicas.read().expect("replicas lock").values().cloned().collect();
        let now = now_ms();
        for replica in replicas {
            let Ok(leader_end) = self.log.log_end_offset(replica.id) else { continue };
            let mut state = replica.state.lock().expect("replica lock");
            let shrunk = state.leader.as_ref().and_then(|l| l.shrink(&state.applied.isr, self.node_id, leader_end, now, self.lag_time_max_ms));
            if let Some(isr) = shrunk {
                tracing::info!(partition = ?replica.partition, isr = ?state.applied.isr, new_isr = ?isr, "followers out of sync: shrinking the ISR");
                self.propose_isr(&replica, &mut state, isr);
            }
        }
    }

    /// Sends an ISR change to the controller, one at a time per partition; the answer is applied
    /// when it comes, if the leader epoch is still the one it was sent at.
    fn propose_isr(&self, replica: &Arc<Replica>, state: &mut ReplicaState, isr: Vec<i32>) {
        let Some(leader) = state.leader.as_mut() else { return };
        leader.pending = Some(isr.clone());
        let request = AlterPartition {
            partition: replica.partition.clone(),
            leader_id: self.node_id,
            leader_epoch: state.applied.leader_epoch,
            partition_epoch: state.applied.partition_epoch,
            new_isr: isr,
        };
        let sent = self.alter.alter_partition(request.clone());
        let (replica, log) = (replica.clone(), self.log.clone());
        tokio::spawn(async move {
            let answer = sent.await;
            let mut state = replica.state.lock().expect("replica lock");
            if state.applied.leader_epoch != request.leader_epoch {
                return;
            }
            let Some(leader) = state.leader.as_mut() else { return };
            leader.pending = None;
            match answer {
                Ok(committed) if committed.leader_epoch == request.leader_epoch && committed.partition_epoch > state.applied.partition_epoch => {
                    tracing::info!(partition = ?request.partition, isr = ?committed.isr, partition_epoch = committed.partition_epoch, "ISR changed");
                    state.applied.isr = committed.isr;
                    state.applied.partition_epoch = committed.partition_epoch;
                    leader::advance_high_watermark(&log, replica.id, &mut state);
                }
                Ok(stale) => tracing::debug!(partition = ?request.partition, ?stale, "AlterPartition answered with a state already superseded"),
                Err(e) => tracing::warn!(partition = ?request.partition, "AlterPartition refused: {e:?}"),
            }
            drop(state);
            replica.changed.notify_waiters();
        });
    }

    fn advance_high_watermark(&self, replica: &Replica, state: &mut ReplicaState) {
        leader::advance_high_watermark(&self.log, replica.id, state);
    }
}

/// A client's epoch (-1: no opinion) against the leader's.
fn check_epoch(client_epoch: i32, leader_epoch: i32) -> Result<(), ResponseError> {
    if client_epoch < 0 {
        return Ok(());
    }
    match client_epoch.cmp(&leader_epoch) {
        std::cmp::Ordering::Greater => Err(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Err(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn single_node_state(node_id: i32) -> PartitionState {
    PartitionState { leader: node_id, leader_epoch: INITIAL_LEADER_EPOCH, partition_epoch: 0, replicas: vec![node_id], isr: vec![node_id] }
}
