//! The group coordinator: consumer group membership, assignments and committed offsets.
//!
//! Each group is its own [`Group`] state machine behind its own lock; the map of groups is
//! locked only to find, add or remove one (map lock first, then a group's). Committed offsets
//! and each group's membership (as of its last Stable or Empty state) persist under keys
//! `o...` and `g...`: in the `meta` column family on a lone node, in the replicated
//! `__consumer_offsets` in a cluster ([`StateTopic`]), where this broker coordinates the
//! groups of the partitions it leads. Offsets past `offsets.retention.minutes` expire, and
//! Empty groups without offsets go, in a periodic pass.

mod codec;
mod state;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::state_topic::{Changes, StateStore, StateTopic, StateTopicSpec};
use crate::config::Config;
pub use state::{assigned_partitions, Committed, GroupConfig, GroupState, JoinRequest, JoinResult, TxnOffsets};
use state::{Group, Reply};

/// Where a cluster keeps groups and committed offsets, as Kafka does.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How a cluster's group coordinators keep `__consumer_offsets`.
pub fn offsets_topic(config: &Config) -> StateTopicSpec {
    StateTopicSpec {
        name: OFFSETS_TOPIC,
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        replication_factor_key: "offsets.topic.replication.factor",
        configs: Vec::new(),
        write_timeout: Duration::from_millis(config.offsets_commit_timeout_ms),
        too_large: ResponseError::InvalidCommitOffsetSize,
    }
}

const GROUP_PREFIX: &[u8] = b"g";
const OFFSET_PREFIX: &[u8] = b"o";
/// Offsets held for transactions (not `p`: the partitions' keys in `meta` start with it).
const TXN_OFFSETS_PREFIX: &[u8] = b"h/";

/// How often session and rebalance timeouts are checked.
const TICK: Duration = Duration::from_millis(100);

/// How long to wait before reading a partition again after a failed load.
const LOAD_RETRY: Duration = Duration::from_secs(1);

pub type TopicPartition = (String, i32);

/// The outcome of an operation on one partition's committed offset.
pub type PartitionResult = (TopicPartition, Result<(), ResponseError>);

/// What DescribeGroups reports about one group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Refuses group ids the stored keys cannot hold: offsets live under
/// `o<group>\0<topic>\0<partition>`, so a NUL in a group id would let one group's key prefix
/// cover another group's offsets. Kafka itself refuses only empty ids, and only in the APIs
/// that act on a group (`allow_empty` is false there).
pub fn check_group_id(id: &str, allow_empty: bool) -> Result<(), ResponseError> {
    if id.contains('\0') || (id.is_empty() && !allow_empty) {
        return Err(ResponseError::InvalidGroupId);
    }
    Ok(())
}

/// Removes a group's record, its committed offsets (`offsets`, those it has in memory;
/// locally, any other under its prefix too) and the offsets it holds for transactions.
fn remove_stored(store: &StateStore, group_id: &str, offsets: &[TopicPartition], producers: &[i64]) -> BoxFuture<'static, Result<(), ResponseError>> {
    let group_key = [GROUP_PREFIX, group_id.as_bytes()].concat();
    let mut others: Changes = producers.iter().map(|&p| (txn_offsets_key(group_id, p), None)).collect();
    others.push((group_key, None));
    match store {
        StateStore::Local(meta) => {
            let others: Vec<(&[u8], Option<&[u8]>)> = others.iter().map(|(k, _)| (k.as_slice(), None)).collect();
            let written = meta.delete_prefix(&offset_prefix(group_id), &others);
            Box::pin(async move { written.await.map_err(|_| ResponseError::KafkaStorageError) })
        }
        StateStore::Replicated(_) => {
            let mut changes: Changes = offsets.iter().map(|tp| (offset_key(group_id, tp), None)).collect();
            changes.extend(others);
            store.write(group_id, changes)
        }
    }
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    store: StateStore,
    config: GroupConfig,
    /// The guards of TxnOffsetCommits being verified: (offsets partition, producer id, guard).
    txn_guards: Arc<Mutex<HashSet<(i32, i64, u64)>>>,
    next_guard: AtomicU64,
}

/// KIP-890's verification guard for a TxnOffsetCommit: taken before the transaction's
/// coordinator is asked whether the producer's transaction holds the group's offsets, and gone
/// once a marker of that producer reaches the group's partition. So offsets checked against a
/// transaction that ends meanwhile are refused, not held for the producer's next transaction
/// (which, before transactions v2, has the same epoch).
pub struct TxnOffsetsGuard {
    guards: Arc<Mutex<HashSet<(i32, i64, u64)>>>,
    entry: (i32, i64, u64),
}

impl TxnOffsetsGuard {
    fn holds(&self) -> bool {
        self.guards.lock().expect("guards lock").contains(&self.entry)
    }
}

impl Drop for TxnOffsetsGuard {
    fn drop(&mut self) {
        self.guards.lock().expect("guards lock").remove(&self.entry);
    }
}

/// Groups decoded from stored (key, value) pairs, and the keys of offsets whose topic is gone.
fn decode_groups(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>, topics: &HashSet<String>, config: &GroupConfig) -> (HashMap<String, Group>, Vec<Vec<u8>>) {
    let now = Instant::now();
    let now_ms = crate::api::now_ms();
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut offsets = Vec::new();
    let mut held = Vec::new();
    for (key, value) in entries {
        if let Some(rest) = key.strip_prefix(TXN_OFFSETS_PREFIX) {
            match (codec::decode_txn_offsets_key(rest), codec::decode_txn_offsets(&value)) {
                (Some((group, producer_id)), Some(t)) => held.push((group, producer_id, t)),
                _ => tracing::warn!("ignoring an unreadable record of a transaction's offsets"),
            }
        } else if let Some(id) = key.strip_prefix(GROUP_PREFIX) {
            let id = String::from_utf8_lossy(id).to_string();
            match codec::decode_group(&id, &value, now) {
                Some(mut g) => {
                    g.shed_over_capacity(config.max_size, now);
                    groups.insert(id, g);
                }
                None => tracing::warn!(group = %id, "ignoring an unreadable group record"),
            }
        } else if key.starts_with(OFFSET_PREFIX) {
            offsets.push((key, value));
        }
    }
    let mut orphans = Vec::new();
    for (key, value) in offsets {
        let Some((group, tp)) = codec::decode_offset_key(&key[OFFSET_PREFIX.len()..]) else { continue };
        if !topics.contains(&tp.0) {
            orphans.push(key);
            continue;
        }
        let Some(committed) = codec::decode_committed(&value, now_ms) else { continue };
        groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now)).offsets.insert(tp, committed);
    }
    for (group, producer_id, t) in held {
        groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now)).txn_offsets.insert(producer_id, t);
    }
    (groups, orphans)
}

/// What a group looked like before an operation, to know whether to persist it after.
#[derive(PartialEq)]
struct Snapshot {
    state: GroupState,
    generation: i32,
    members: Vec<String>,
}

fn snapshot(g: &Group) -> Snapshot {
    Snapshot { state: g.state, generation: g.generation, members: g.members.keys().cloned().collect() }
}

impl GroupCoordinator {
    /// Opens the coordinator on its store. A lone node loads every group's membership and
    /// committed offsets; offsets of topics not in `topics` (deleted while the broker was down,
    /// or before their offsets were removed) are deleted, so a topic recreated later starts
    /// clean. In a cluster, groups load as this broker comes to lead their partitions.
    pub fn open(store: StateStore, config: GroupConfig, topics: &HashSet<String>) -> Result<GroupCoordinator> {
        let mut groups = HashMap::new();
        match &store {
            StateStore::Local(meta) => {
                let entries = meta.scan(GROUP_PREFIX)?.into_iter().chain(meta.scan(OFFSET_PREFIX)?).chain(meta.scan(TXN_OFFSETS_PREFIX)?);
                let (loaded, orphans) = decode_groups(entries, topics, &config);
                if !orphans.is_empty() {
                    tracing::info!(offsets = orphans.len(), "removing committed offsets of deleted topics");
                    let deletes: Vec<(&[u8], Option<&[u8]>)> = orphans.iter().map(|k| (k.as_slice(), None)).collect();
                    meta.write_now(&deletes)?;
                }
                groups = loaded.into_iter().map(|(k, g)| (k, Arc::new(Mutex::new(g)))).collect();
            }
            StateStore::Replicated(_) => {}
        }
        Ok(GroupCoordinator { groups: Mutex::new(groups), store, config, txn_guards: Default::default(), next_guard: AtomicU64::new(0) })
    }

    /// FindCoordinator for a group: the broker that coordinates it, `None` for this lone node.
    pub async fn coordinator(&self, group_id: &str) -> Result<Option<i32>, ResponseError> {
        self.store.coordinator(group_id).await
    }

    /// Follows the `__consumer_offsets` partitions this broker leads (index, leader epoch), as
    /// the metadata publisher sees them: loads the groups of new ones in the background, and
    /// forgets those of partitions it no longer leads.
    pub fn follow_partitions(self: &Arc<Self>, led: &[(i32, i32)]) {
        let StateStore::Replicated(topic) = &self.store else { return };
        let (load, forget) = topic.follow(led);
        for index in forget {
            let mut groups = self.groups.lock().expect("groups lock");
            let gone: Vec<String> = groups.keys().filter(|id| topic.partition_of(id) == index).cloned().collect();
            for id in &gone {
                if let Some(group) = groups.remove(id) {
                    // Waiting members get NOT_COORDINATOR and look for the new coordinator.
                    let mut g = group.lock().expect("group lock");
                    g.kill();
                    g.members.clear();
                }
            }
            tracing::info!(partition = index, groups = gone.len(), "no longer coordinating the groups of {OFFSETS_TOPIC}-{index}");
        }
        for (index, epoch) in load {
            tokio::spawn(self.clone().load_partition(topic.clone(), index, epoch));
        }
    }

    /// Replays a partition this broker now leads and takes its groups; retried while the
    /// partition is still this broker's to load.
    async fn load_partition(self: Arc<Self>, topic: Arc<StateTopic>, index: i32, epoch: i32) {
        let started = std::time::Instant::now();
        let entries = loop {
            if !topic.loading(index, epoch) {
                return;
            }
            match topic.read(index).await {
                Ok(entries) => break entries,
                Err(e) => {
                    tracing::warn!(partition = index, "loading {OFFSETS_TOPIC}-{index}: {e:?}; retrying");
                    tokio::time::sleep(LOAD_RETRY).await;
                }
            }
        };
        let (loaded, orphans) = decode_groups(entries, &topic.topic_names(), &self.config);
        let count = loaded.len();
        {
            // Under the map lock: no request finds the partition served before its groups are in.
            let mut groups = self.groups.lock().expect("groups lock");
            if !topic.loaded(index, epoch) {
                return;
            }
            for (id, g) in loaded {
                groups.insert(id, Arc::new(Mutex::new(g)));
            }
        }
        tracing::info!(partition = index, epoch, groups = count, elapsed = ?started.elapsed(), "coordinating the groups of {OFFSETS_TOPIC}-{index}");
        if !orphans.is_empty() {
            let deletes = orphans.into_iter().map(|k| (k, None)).collect();
            if let Err(e) = topic.write_partition(index, deletes).await {
                tracing::warn!(partition = index, "removing offsets of deleted topics: {e:?}");
            }
        }
    }

    fn group(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().expect("groups lock").get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        let mut groups = self.groups.lock().expect("groups lock");
        groups.entry(id.to_string()).or_insert_with(|| Arc::new(Mutex::new(Group::new(id, Instant::now())))).clone()
    }

    /// Runs `f` on the group under its lock, then persists its membership if a rebalance
    /// settled (Stable) or the group emptied. The write is queued under the lock, so writes of
    /// one group land in the order of its changes, and awaited after it.
    async fn update<R>(&self, group: &Mutex<Group>, f: impl FnOnce(&mut Group, Instant) -> R) -> R {
        let (result, persisted) = {
            let mut g = group.lock().expect("group lock");
            let before = snapshot(&g);
            let result = f(&mut g, Instant::now());
            let after = snapshot(&g);
            let persisted = (after != before && matches!(g.state, GroupState::Stable | GroupState::Empty)).then(|| {
                let key = [GROUP_PREFIX, g.id.as_bytes()].concat();
                (g.id.clone(), self.store.write(&g.id, vec![(key, Some(codec::encode_group(&g)))]))
            });
            (result, persisted)
        };
        if let Some((id, written)) = persisted {
            if let Err(e) = written.await {
                tracing::warn!(group = %id, "group membership not persisted: {e:?}");
            }
        }
        result
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let member_id = req.member_id.clone();
        let failed = |e| JoinResult { error: Some(e), member_id: member_id.clone(), generation: -1, ..Default::default() };
        if let Err(e) = check_group_id(group_id, false).and_then(|()| self.store.check(group_id).map(|_| ())) {
            return failed(e);
        }
        // Only a new member (no member id yet) creates the group.
        let group = if member_id.is_empty() {
            self.group_or_create(group_id)
        } else {
            match self.group(group_id) {
                Some(g) => g,
                None => return failed(ResponseError::UnknownMemberId),
            }
        };
        match self.update(&group, |g, now| g.join(req, now, &self.config)).await {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| failed(self.gone(group_id))),
        }
    }

    /// SyncGroup; returns the member's assignment.
    pub async fn sync(
        &self,
        group_id: &str,
        member: (&str, Option<&str>),
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> Result<(Option<String>, Option<String>, Bytes), ResponseError> {
        self.check(group_id, false)?;
        let group = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let reply = self.update(&group, |g, now| g.sync(member.0, member.1, generation, protocol, assignments, now)).await;
        let assignment = match reply {
            Reply::Now(r) => r?,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| Err(self.gone(group_id)))?,
        };
        let g = group.lock().expect("group lock");
        Ok((g.protocol_type.clone(), g.protocol.clone(), assignment))
    }

    pub async fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        self.check(group_id, false)?;
        let group = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        self.update(&group, |g, now| g.heartbeat(member_id, instance_id, generation, now)).await
    }

    /// LeaveGroup for each (member id, instance id); one result per member.
    pub async fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        self.check(group_id, false)?;
        let group = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        Ok(self.update(&group, |g, now| members.iter().map(|(m, i)| g.leave(m, i.as_deref(), now)).collect()).await)
    }

    /// OffsetCommit. A negative generation with no member id is a "simple" commit, allowed
    /// only while the group has no members. Returns one result per partition, in order.
    pub async fn commit(
        &self,
        group_id: &str,
        member: (&str, Option<&str>),
        generation: i32,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        self.check(group_id, false)?;
        let group = if generation < 0 { self.group_or_create(group_id) } else { self.group(group_id).ok_or(ResponseError::IllegalGeneration)? };
        self.store_offsets(&group, group_id, offsets, |g| g.check_commit(member.0, member.1, generation)).await
    }

    /// TxnOffsetCommit's check of the committing member (KIP-447): a producer that names no
    /// generation and no member (an older client) is not checked, as in Kafka.
    pub fn check_txn_member(&self, group_id: &str, member: (&str, Option<&str>), generation: i32) -> Result<(), ResponseError> {
        self.check(group_id, false)?;
        if generation < 0 && member.0.is_empty() && member.1.is_none() {
            return Ok(());
        }
        let group = self.group(group_id).ok_or(ResponseError::IllegalGeneration)?;
        let g = group.lock().expect("group lock");
        g.check_member(member.0, member.1, generation)
    }

    /// TxnOffsetCommit, once checked: the offsets wait in the group, stored, until the
    /// transaction's marker; OffsetFetch shows them only after a COMMIT. Offsets of an older
    /// epoch of the producer (a transaction its fencing aborted) are replaced.
    pub async fn hold_txn_offsets(&self, group_id: &str, producer: (i64, i16), offsets: Vec<(TopicPartition, Committed)>, guard: Option<&TxnOffsetsGuard>) -> Result<(), ResponseError> {
        self.check(group_id, false)?;
        if offsets.iter().any(|(_, c)| c.metadata.as_ref().is_some_and(|m| m.len() > self.config.max_metadata_bytes)) {
            return Err(ResponseError::OffsetMetadataTooLarge);
        }
        let group = self.group_or_create(group_id);
        let written = {
            let mut g = group.lock().expect("group lock");
            if guard.is_some_and(|guard| !guard.holds()) {
                return Err(ResponseError::InvalidTxnState);
            }
            let held = g.txn_offsets.entry(producer.0).or_default();
            if producer.1 < held.producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
            if producer.1 > held.producer_epoch {
                *held = TxnOffsets { producer_epoch: producer.1, offsets: Default::default() };
            }
            held.offsets.extend(offsets);
            let value = codec::encode_txn_offsets(held);
            self.store.write(group_id, vec![(txn_offsets_key(group_id, producer.0), Some(value))])
        };
        written.await
    }

    /// The guard a TxnOffsetCommit of `producer_id` takes before its transaction is verified.
    pub fn guard_txn_offsets(&self, group_id: &str, producer_id: i64) -> TxnOffsetsGuard {
        let entry = (self.offsets_partition(group_id).unwrap_or(0), producer_id, self.next_guard.fetch_add(1, Ordering::Relaxed));
        self.txn_guards.lock().expect("guards lock").insert(entry);
        TxnOffsetsGuard { guards: self.txn_guards.clone(), entry }
    }

    /// A marker of `producer_id` reached the offsets partition `index`: the transactions being
    /// verified there may have ended.
    fn release_txn_guards(&self, index: i32, producer_id: i64) {
        self.txn_guards.lock().expect("guards lock").retain(|&(i, p, _)| (i, p) != (index, producer_id));
    }

    /// A transaction's marker reached the group: COMMIT makes the producer's held offsets the
    /// group's committed ones, ABORT drops them. A marker of an older epoch than the offsets
    /// (of a transaction before them) is refused (INVALID_PRODUCER_EPOCH, as the log refuses
    /// it), and a repeated one finds nothing to do.
    pub async fn complete_txn(&self, group_id: &str, producer: (i64, i16), commit: bool) -> Result<(), ResponseError> {
        self.check(group_id, false)?;
        self.release_txn_guards(self.offsets_partition(group_id).unwrap_or(0), producer.0);
        let Some(group) = self.group(group_id) else { return Ok(()) };
        let (held, queued, written) = {
            let mut g = group.lock().expect("group lock");
            match g.txn_offsets.get(&producer.0) {
                None => return Ok(()),
                Some(held) if held.producer_epoch > producer.1 => return Err(ResponseError::InvalidProducerEpoch),
                Some(_) => {}
            }
            let held = g.txn_offsets.remove(&producer.0).expect("checked above");
            let mut changes: Changes = vec![(txn_offsets_key(group_id, producer.0), None)];
            let mut queued = Vec::new();
            if commit {
                for (tp, committed) in &held.offsets {
                    changes.push((offset_key(group_id, tp), Some(codec::encode_committed(committed))));
                    queued.push((g.queue_commit(tp), tp.clone(), committed.clone()));
                }
            }
            (held, queued, self.store.write(group_id, changes))
        };
        let written = written.await;
        let mut g = group.lock().expect("group lock");
        for (number, tp, committed) in queued {
            g.commit_done(tp, number, written.is_ok().then_some(committed));
        }
        if written.is_err() {
            // Held again for the marker's retry.
            g.txn_offsets.entry(producer.0).or_insert(held);
        }
        written
    }

    /// A marker on a `__consumer_offsets` partition: completes the producer's offsets in
    /// every group of that partition this broker coordinates.
    pub async fn complete_txn_partition(&self, index: i32, producer: (i64, i16), commit: bool) -> Result<(), ResponseError> {
        let StateStore::Replicated(topic) = &self.store else { return Ok(()) };
        topic.check_partition(index)?;
        self.release_txn_guards(index, producer.0);
        let holding: Vec<String> = {
            let groups = self.groups.lock().expect("groups lock");
            groups.iter().filter(|(id, g)| topic.partition_of(id) == index && g.lock().expect("group lock").txn_offsets.contains_key(&producer.0)).map(|(id, _)| id.clone()).collect()
        };
        for group_id in holding {
            self.complete_txn(&group_id, producer, commit).await?;
        }
        Ok(())
    }

    /// The `__consumer_offsets` partition of a group, which a transaction committing its
    /// offsets adds (Kafka's AddOffsetsToTxn); `None` on a lone node, which has no such topic.
    pub fn offsets_partition(&self, group_id: &str) -> Option<i32> {
        match &self.store {
            StateStore::Local(_) => None,
            StateStore::Replicated(topic) => Some(topic.partition_of(group_id)),
        }
    }

    /// Whether an open transaction holds offsets of the group for a partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn has_txn_offsets(&self, group_id: &str, tp: &TopicPartition) -> bool {
        let Some(group) = self.group(group_id) else { return false };
        let g = group.lock().expect("group lock");
        g.txn_offsets.values().any(|held| held.offsets.contains_key(tp))
    }

    /// Stores offsets durably once `check` passes on the group, then in the group: OffsetFetch
    /// shows a commit only once it is written, as Kafka's cache does, never one a failover loses.
    async fn store_offsets(
        &self,
        group: &Arc<Mutex<Group>>,
        group_id: &str,
        offsets: Vec<(TopicPartition, Committed)>,
        check: impl FnOnce(&Group) -> Result<(), ResponseError>,
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let (results, queued, written) = {
            let mut g = group.lock().expect("group lock");
            check(&g)?;
            let mut changes: Changes = Vec::new();
            let mut queued = Vec::new();
            let results: Vec<_> = offsets
                .into_iter()
                .map(|(tp, committed)| {
                    if committed.metadata.as_ref().is_some_and(|m| m.len() > self.config.max_metadata_bytes) {
                        return Err(ResponseError::OffsetMetadataTooLarge);
                    }
                    changes.push((offset_key(group_id, &tp), Some(codec::encode_committed(&committed))));
                    queued.push((g.queue_commit(&tp), tp, committed));
                    Ok(())
                })
                .collect();
            // Queued under the lock: commits are written in the order they are numbered.
            (results, queued, self.store.write(group_id, changes))
        };
        let written = written.await;
        let mut g = group.lock().expect("group lock");
        for (number, tp, committed) in queued {
            g.commit_done(tp, number, written.is_ok().then_some(committed));
        }
        written?;
        Ok(results)
    }

    /// Committed offsets of the given partitions (None where nothing is committed), or of
    /// every partition the group committed when `partitions` is None.
    pub fn committed(&self, group_id: &str, partitions: Option<Vec<TopicPartition>>) -> Result<Vec<(TopicPartition, Option<Committed>)>, ResponseError> {
        self.check(group_id, true)?;
        let Some(group) = self.group(group_id) else {
            return Ok(partitions.unwrap_or_default().into_iter().map(|tp| (tp, None)).collect());
        };
        let g = group.lock().expect("group lock");
        Ok(match partitions {
            Some(list) => list.into_iter().map(|tp| {
                let c = g.offsets.get(&tp).cloned();
                (tp, c)
            }).collect(),
            None => g.offsets.iter().map(|(tp, c)| (tp.clone(), Some(c.clone()))).collect(),
        })
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups: Vec<_> = self.groups.lock().expect("groups lock").values().cloned().collect();
        let mut out: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = g.lock().expect("group lock");
                (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DescribeGroups for one group; `None` for a group that does not exist (Kafka: Dead).
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, ResponseError> {
        self.check(group_id, true)?;
        let Some(group) = self.group(group_id) else { return Ok(None) };
        let g = group.lock().expect("group lock");
        let members = g
            .members
            .values()
            .map(|m| {
                (m.id.clone(), m.instance_id.clone(), m.client_id.clone(), m.client_host.clone(), m.metadata(g.protocol.as_deref()), m.assignment.clone())
            })
            .collect();
        Ok(Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance { g.protocol.clone().unwrap_or_default() } else { String::new() },
            members,
        }))
    }

    /// Takes a group out of the map and queues the deletion of its record and offsets.
    /// Called with the map locked and then the group, so no one finds it half removed; whoever
    /// still holds it sees it Dead.
    fn remove_group(&self, groups: &mut HashMap<String, Arc<Mutex<Group>>>, g: &mut Group) -> BoxFuture<'static, Result<(), ResponseError>> {
        let offsets: Vec<TopicPartition> = g.offsets.keys().cloned().collect();
        let producers: Vec<i64> = g.txn_offsets.keys().copied().collect();
        let written = remove_stored(&self.store, &g.id, &offsets, &producers);
        groups.remove(&g.id);
        g.kill();
        written
    }

    /// DeleteGroups: only a group without members can go; its offsets go with it.
    pub async fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        self.check(group_id, true)?;
        let written = {
            let mut groups = self.groups.lock().expect("groups lock");
            let group = groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?.clone();
            let mut g = group.lock().expect("group lock");
            if !g.members.is_empty() {
                return Err(ResponseError::NonEmptyGroup);
            }
            self.remove_group(&mut groups, &mut g)
        };
        written.await.inspect_err(|e| tracing::error!(group = group_id, "cannot delete group: {e:?}"))
    }

    /// OffsetDelete: drops committed offsets, except of topics an active member subscribes to.
    pub async fn delete_offsets(&self, group_id: &str, partitions: Vec<TopicPartition>) -> Result<Vec<PartitionResult>, ResponseError> {
        self.check(group_id, false)?;
        let group = self.group(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let (results, written) = {
            let mut g = group.lock().expect("group lock");
            let mut deletes = Vec::new();
            let results: Vec<_> = partitions
                .into_iter()
                .map(|tp| {
                    if g.is_subscribed_to(&tp.0) {
                        return (tp, Err(ResponseError::GroupSubscribedToTopic));
                    }
                    g.remove_offset(&tp);
                    deletes.push((offset_key(group_id, &tp), None));
                    (tp, Ok(()))
                })
                .collect();
            (results, self.store.write(group_id, deletes))
        };
        written.await?;
        Ok(results)
    }

    /// Drops every group's committed offsets of a deleted topic (Kafka's onPartitionsDeleted),
    /// so a topic recreated under the same name starts clean for existing groups.
    pub async fn remove_topic_offsets(&self, topic: &str) {
        let groups: Vec<_> = self.groups.lock().expect("groups lock").values().cloned().collect();
        for group in groups {
            let written = {
                let mut g = group.lock().expect("group lock");
                let gone = g.committed_partitions(topic);
                if gone.is_empty() {
                    continue;
                }
                for tp in &gone {
                    g.remove_offset(tp);
                }
                self.delete_offset_keys(&g.id, &gone)
            };
            if let Err(e) = written.await {
                // Start-up removes them if this write was lost.
                tracing::error!(topic, "cannot delete committed offsets of a deleted topic: {e:?}");
            }
        }
    }

    fn delete_offset_keys(&self, group_id: &str, partitions: &[TopicPartition]) -> BoxFuture<'static, Result<(), ResponseError>> {
        self.store.write(group_id, partitions.iter().map(|tp| (offset_key(group_id, tp), None)).collect())
    }

    /// The group id is valid and this broker coordinates the group.
    fn check(&self, group_id: &str, allow_empty: bool) -> Result<(), ResponseError> {
        check_group_id(group_id, allow_empty)?;
        self.store.check(group_id).map(|_| ())
    }

    /// Why a member's wait ended without an answer: the group moved away, or it was removed.
    fn gone(&self, group_id: &str) -> ResponseError {
        self.store.check(group_id).err().unwrap_or(ResponseError::UnknownMemberId)
    }

    /// One pass of offset retention at `now_ms`: expired offsets are deleted, and an Empty
    /// group left without offsets is removed (ListGroups no longer shows it).
    pub async fn expire_offsets(&self, now_ms: i64) {
        let groups: Vec<_> = self.groups.lock().expect("groups lock").values().cloned().collect();
        let (mut expired_offsets, mut removed_groups) = (0, 0);
        for group in groups {
            let (written, emptied) = {
                let mut g = group.lock().expect("group lock");
                let expired = g.expired_offsets(now_ms, self.config.offsets_retention_ms);
                for tp in &expired {
                    g.remove_offset(tp);
                }
                expired_offsets += expired.len();
                let written = (!expired.is_empty()).then(|| self.delete_offset_keys(&g.id, &expired));
                (written, g.offsets.is_empty() && g.txn_offsets.is_empty() && g.state == GroupState::Empty && g.is_idle())
            };
            if let Some(written) = written {
                if let Err(e) = written.await {
                    tracing::error!("cannot delete expired offsets: {e:?}");
                    continue;
                }
            }
            if !emptied {
                continue;
            }
            let written = {
                let mut groups = self.groups.lock().expect("groups lock");
                let mut g = group.lock().expect("group lock");
                // Checked again under both locks: someone may have joined or committed since.
                if !(g.offsets.is_empty() && g.txn_offsets.is_empty() && g.state == GroupState::Empty && g.is_idle()) {
                    continue;
                }
                removed_groups += 1;
                self.remove_group(&mut groups, &mut g)
            };
            if let Err(e) = written.await {
                tracing::error!("cannot delete an expired group: {e:?}");
            }
        }
        if expired_offsets > 0 || removed_groups > 0 {
            tracing::info!(expired_offsets, removed_groups, "offset retention pass");
        }
    }

    /// Runs offset retention every `offsets.retention.check.interval.ms` until shutdown.
    pub async fn run_offset_expiry(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.expire_offsets(crate::api::now_ms()).await;
        }
    }

    /// Checks session, rebalance and sync timeouts until shutdown.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.check_timeouts().await;
        }
    }

    /// One round of the timers: removes members whose session or sync timed out and ends
    /// rebalances that are due (a harness without `run_timers` calls it, fuzz/request_frame).
    pub async fn check_timeouts(&self) {
        let groups: Vec<_> = self.groups.lock().expect("groups lock").values().cloned().collect();
        for group in groups {
            let idle = group.lock().expect("group lock").is_idle();
            if !idle {
                self.update(&group, |g, now| g.tick(now)).await;
            }
        }
    }
}

fn offset_prefix(group_id: &str) -> Vec<u8> {
    [OFFSET_PREFIX, group_id.as_bytes(), b"\0"].concat()
}

fn txn_offsets_key(group_id: &str, producer_id: i64) -> Vec<u8> {
    [TXN_OFFSETS_PREFIX, group_id.as_bytes(), b"\0", &producer_id.to_be_bytes()].concat()
}

fn offset_key(group_id: &str, tp: &TopicPartition) -> Vec<u8> {
    [offset_prefix(group_id).as_slice(), tp.0.as_bytes(), b"\0", &tp.1.to_be_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogStore;

    const MINUTE_MS: i64 = 60_000;
    const RETENTION_MS: i64 = 10 * MINUTE_MS;

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(1),
            max_session_timeout: Duration::from_secs(600),
            max_metadata_bytes: 4096,
            max_size: usize::MAX,
            offsets_retention_ms: RETENTION_MS,
        }
    }

    fn topics(names: &[&str]) -> HashSet<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    /// A consumer-protocol subscription to `topics`, as a Java client sends it.
    fn subscription(topics: &[&str]) -> Bytes {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let s = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect());
        let mut out = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut out, 1);
        s.encode(&mut out, 1).unwrap();
        out.freeze()
    }

    #[test]
    fn assigned_partitions_reads_a_consumer_assignment_of_any_version() {
        use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
        use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default().with_topic(TopicName(StrBytes::from_static_str("t"))).with_partitions(vec![0, 2])]);
        for version in [0, 3] {
            let mut out = bytes::BytesMut::new();
            bytes::BufMut::put_i16(&mut out, version);
            assignment.encode(&mut out, version).unwrap();
            assert_eq!(assigned_partitions(out.freeze()), Some(vec![("t".to_string(), vec![0, 2])]));
        }
        assert_eq!(assigned_partitions(Bytes::new()), None);
    }

    fn join_request(topics: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 60_000,
            rebalance_timeout_ms: 60_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(topics))],
            require_known_member_id: false,
            supports_skip_assignment: true,
        }
    }

    fn offset(offset: i64, commit_timestamp_ms: i64) -> Committed {
        Committed { offset, leader_epoch: -1, metadata: None, commit_timestamp_ms, expire_timestamp_ms: None }
    }

    async fn commit(c: &GroupCoordinator, group: &str, member: (&str, i32), offsets: &[(&str, Committed)]) {
        let offsets = offsets.iter().map(|(t, o)| ((t.to_string(), 0), o.clone())).collect();
        let results = c.commit(group, (member.0, None), member.1, offsets).await.unwrap();
        assert!(results.iter().all(Result::is_ok));
    }

    fn committed_topics(c: &GroupCoordinator, group: &str) -> Vec<String> {
        c.committed(group, None).unwrap().into_iter().map(|((t, _), _)| t).collect()
    }

    /// Joins a one-member consumer group and completes its rebalance; returns (member, generation).
    async fn stable_member(c: &GroupCoordinator, group: &str, subscribed: &[&str]) -> (String, i32) {
        let joined = c.join(group, join_request(subscribed)).await;
        assert_eq!(joined.error, None);
        c.sync(group, (&joined.member_id, None), joined.generation, (None, None), vec![]).await.unwrap();
        (joined.member_id, joined.generation)
    }

    #[tokio::test]
    async fn transaction_offsets_are_held_across_a_restart_until_their_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        // A partition's own `meta` keys (they start with `p`) are not read as held offsets.
        log.meta().write_now(&[(b"p\0\0\0\x07b".as_slice(), Some(b"12345678".as_slice()))]).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        let tp = ("t".to_string(), 0);
        c.hold_txn_offsets("g", (3, 1), vec![(tp.clone(), offset(5, 0))], None).await.unwrap();
        c.hold_txn_offsets("g", (4, 0), vec![(tp.clone(), offset(6, 0))], None).await.unwrap();
        assert_eq!(c.hold_txn_offsets("g", (3, 0), vec![], None).await, Err(ResponseError::ProducerFenced));
        assert!(c.has_txn_offsets("g", &tp));
        assert_eq!(c.committed("g", None).unwrap(), vec![]);
        c.expire_offsets(crate::api::now_ms() + 10 * RETENTION_MS).await;
        drop(c);
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        assert!(c.has_txn_offsets("g", &tp), "held across the restart, and not expired");
        assert_eq!(c.complete_txn("g", (3, 0), true).await, Err(ResponseError::InvalidProducerEpoch), "an older epoch's marker");
        c.complete_txn("g", (4, 0), false).await.unwrap();
        c.complete_txn("g", (3, 1), true).await.unwrap();
        c.complete_txn("g", (3, 1), true).await.unwrap();
        assert!(!c.has_txn_offsets("g", &tp));
        assert_eq!(c.committed("g", Some(vec![tp.clone()])).unwrap()[0].1.as_ref().map(|o| o.offset), Some(5));
        drop(c);
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        assert!(!c.has_txn_offsets("g", &tp), "completed for good");
        assert_eq!(c.committed("g", Some(vec![tp])).unwrap()[0].1.as_ref().map(|o| o.offset), Some(5));
    }

    #[tokio::test]
    async fn offsets_verified_against_a_transaction_that_ended_meanwhile_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        let tp = ("t".to_string(), 0);
        let late = c.guard_txn_offsets("g", 3);
        let other_producer = c.guard_txn_offsets("g", 4);
        // The transaction ends (its abort marker) while the late commit is being verified.
        c.complete_txn("g", (3, 0), false).await.unwrap();
        let current = c.guard_txn_offsets("g", 3);
        assert_eq!(c.hold_txn_offsets("g", (3, 0), vec![(tp.clone(), offset(5, 0))], Some(&late)).await, Err(ResponseError::InvalidTxnState));
        assert!(!c.has_txn_offsets("g", &tp), "not held for the producer's next transaction");
        c.hold_txn_offsets("g", (4, 0), vec![(tp.clone(), offset(6, 0))], Some(&other_producer)).await.unwrap();
        c.hold_txn_offsets("g", (3, 0), vec![(tp.clone(), offset(7, 0))], Some(&current)).await.unwrap();
        drop((late, other_producer, current));
        assert!(c.txn_guards.lock().unwrap().is_empty(), "guards go with their requests");
    }

    #[tokio::test]
    async fn an_empty_groups_offsets_expire_a_retention_period_after_it_emptied_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        let (member, generation) = stable_member(&c, "g", &["t"]).await;
        // Committed long ago: an Empty group's retention counts from when it emptied, not this.
        let now = crate::api::now_ms();
        commit(&c, "g", (&member, generation), &[("t", offset(5, now - 30 * MINUTE_MS))]).await;
        c.expire_offsets(now + RETENTION_MS).await;
        assert_eq!(committed_topics(&c, "g"), ["t"], "a Stable group keeps offsets of subscribed topics");
        c.leave("g", &[(member, None)]).await.unwrap().remove(0).unwrap();
        let emptied = crate::api::now_ms();
        drop(c);

        // The time it emptied is stored with the group.
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        c.expire_offsets(emptied + RETENTION_MS - 1_000).await;
        assert_eq!(committed_topics(&c, "g"), ["t"]);
        assert_eq!(c.list().len(), 1);
        c.expire_offsets(emptied + RETENTION_MS + 1_000).await;
        assert!(committed_topics(&c, "g").is_empty());
        assert!(c.list().is_empty(), "an Empty group without offsets disappears");
        assert!(c.describe("g").unwrap().is_none());
        drop(c);
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["t"])).unwrap();
        assert!(c.list().is_empty(), "the expiry was stored");
    }

    #[tokio::test]
    async fn a_simple_groups_offsets_expire_by_commit_time_or_their_own_retention() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["old", "new", "short"])).unwrap();
        let now = crate::api::now_ms();
        let short = Committed { expire_timestamp_ms: Some(now + 1_000), ..offset(3, now) };
        commit(&c, "simple", ("", -1), &[("old", offset(1, now - 9 * MINUTE_MS)), ("new", offset(2, now)), ("short", short)]).await;
        c.expire_offsets(now + 2_000).await;
        assert_eq!(committed_topics(&c, "simple"), ["new", "old"], "an offset's own retention time counts");
        c.expire_offsets(now + MINUTE_MS + 1_000).await;
        assert_eq!(committed_topics(&c, "simple"), ["new"]);
        assert_eq!(c.list().len(), 1);
        c.expire_offsets(now + RETENTION_MS).await;
        assert!(c.list().is_empty());
    }

    #[tokio::test]
    async fn a_stable_group_loses_only_offsets_of_topics_it_no_longer_subscribes_to() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["kept", "dropped"])).unwrap();
        let (member, generation) = stable_member(&c, "g", &["kept"]).await;
        let now = crate::api::now_ms();
        commit(&c, "g", (&member, generation), &[("kept", offset(1, now)), ("dropped", offset(2, now))]).await;
        c.expire_offsets(now + RETENTION_MS - 1).await;
        assert_eq!(committed_topics(&c, "g"), ["dropped", "kept"]);
        c.expire_offsets(now + RETENTION_MS).await;
        assert_eq!(committed_topics(&c, "g"), ["kept"]);
        c.expire_offsets(now + 100 * RETENTION_MS).await;
        assert_eq!(committed_topics(&c, "g"), ["kept"], "subscribed topics never expire while the group is Stable");
        assert_eq!(c.list()[0].2, GroupState::Stable);
    }

    #[tokio::test]
    async fn offsets_of_deleted_topics_go_at_once_or_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["a", "b", "c"])).unwrap();
        let now = crate::api::now_ms();
        for group in ["g1", "g2"] {
            commit(&c, group, ("", -1), &[("a", offset(1, now)), ("b", offset(2, now)), ("c", offset(3, now))]).await;
        }
        c.remove_topic_offsets("a").await;
        assert_eq!(committed_topics(&c, "g1"), ["b", "c"]);
        assert_eq!(committed_topics(&c, "g2"), ["b", "c"]);
        drop(c);
        // "b" was deleted while its offsets stayed (a crash between the two): start-up drops them.
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["a", "b", "c"])).unwrap();
        assert_eq!(committed_topics(&c, "g1"), ["b", "c"], "the removal of a's offsets was stored");
        drop(c);
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["a", "c"])).unwrap();
        assert_eq!(committed_topics(&c, "g2"), ["c"]);
        drop(c);
        let c = GroupCoordinator::open(StateStore::Local(log.meta()), config(), &topics(&["a", "b", "c"])).unwrap();
        assert_eq!(committed_topics(&c, "g2"), ["c"], "a recreated b starts clean");
    }
}
