//! The group coordinator: consumer group membership, assignments and committed offsets.
//!
//! Each group is its own [`Group`] state machine behind its own lock; the map of groups is
//! locked only to find or add one. Committed offsets and each group's membership (as of its
//! last Stable or Empty state) persist in the `meta` column family, under `o...` and `g...`.

mod codec;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::log::Meta;
pub use state::{Committed, GroupConfig, GroupState, JoinRequest, JoinResult};
use state::{Group, Reply};

const GROUP_PREFIX: &[u8] = b"g";
const OFFSET_PREFIX: &[u8] = b"o";

/// How often session and rebalance timeouts are checked.
const TICK: Duration = Duration::from_millis(100);

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

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    meta: Meta,
    config: GroupConfig,
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
    /// Loads every group's membership and committed offsets.
    pub fn open(meta: Meta, config: GroupConfig) -> Result<GroupCoordinator> {
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (key, value) in meta.scan(GROUP_PREFIX)? {
            let id = String::from_utf8_lossy(&key[GROUP_PREFIX.len()..]).to_string();
            match codec::decode_group(&id, &value, now) {
                Some(g) => {
                    groups.insert(id, g);
                }
                None => tracing::warn!(group = %id, "ignoring an unreadable group record"),
            }
        }
        for (key, value) in meta.scan(OFFSET_PREFIX)? {
            let Some((group, tp)) = codec::decode_offset_key(&key[OFFSET_PREFIX.len()..]) else { continue };
            let Some(committed) = codec::decode_committed(&value) else { continue };
            groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now)).offsets.insert(tp, committed);
        }
        let groups = groups.into_iter().map(|(k, g)| (k, Arc::new(Mutex::new(g)))).collect();
        Ok(GroupCoordinator { groups: Mutex::new(groups), meta, config })
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
                (g.id.clone(), self.meta.write(&[(&key, Some(&codec::encode_group(&g)))]))
            });
            (result, persisted)
        };
        if let Some((id, written)) = persisted {
            if let Err(e) = written.await {
                tracing::error!(group = %id, "cannot persist group membership: {e:#}");
            }
        }
        result
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let member_id = req.member_id.clone();
        let group = self.group_or_create(group_id);
        match self.update(&group, |g, now| g.join(req, now, &self.config)).await {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| JoinResult {
                error: Some(ResponseError::UnknownMemberId),
                member_id,
                generation: -1,
                ..Default::default()
            }),
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
        let group = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let reply = self.update(&group, |g, now| g.sync(member.0, member.1, generation, protocol, assignments, now)).await;
        let assignment = match reply {
            Reply::Now(r) => r?,
            Reply::Later(rx) => rx.await.unwrap_or(Err(ResponseError::UnknownMemberId))?,
        };
        let g = group.lock().expect("group lock");
        Ok((g.protocol_type.clone(), g.protocol.clone(), assignment))
    }

    pub async fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        let group = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        self.update(&group, |g, now| g.heartbeat(member_id, instance_id, generation, now)).await
    }

    /// LeaveGroup for each (member id, instance id); one result per member.
    pub async fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
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
        let group = if generation < 0 { self.group_or_create(group_id) } else { self.group(group_id).ok_or(ResponseError::IllegalGeneration)? };
        let (results, written) = {
            let mut g = group.lock().expect("group lock");
            if generation >= 0 || !member.0.is_empty() || !g.members.is_empty() {
                g.check_commit(member.0, member.1, generation)?;
            }
            let mut changes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let results: Vec<_> = offsets
                .into_iter()
                .map(|(tp, committed)| {
                    if committed.metadata.as_ref().is_some_and(|m| m.len() > self.config.max_metadata_bytes) {
                        return Err(ResponseError::OffsetMetadataTooLarge);
                    }
                    changes.push((offset_key(group_id, &tp), codec::encode_committed(&committed)));
                    g.offsets.insert(tp, committed);
                    Ok(())
                })
                .collect();
            let writes: Vec<(&[u8], Option<&[u8]>)> = changes.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice()))).collect();
            // Queued under the lock: the last commit of a partition is the one stored.
            (results, self.meta.write(&writes))
        };
        written.await.map_err(|e| {
            tracing::error!(group = group_id, "cannot persist committed offsets: {e:#}");
            ResponseError::KafkaStorageError
        })?;
        Ok(results)
    }

    /// Committed offsets of the given partitions (None where nothing is committed), or of
    /// every partition the group committed when `partitions` is None.
    pub fn committed(&self, group_id: &str, partitions: Option<Vec<TopicPartition>>) -> Vec<(TopicPartition, Option<Committed>)> {
        let Some(group) = self.group(group_id) else {
            return partitions.unwrap_or_default().into_iter().map(|tp| (tp, None)).collect();
        };
        let g = group.lock().expect("group lock");
        match partitions {
            Some(list) => list.into_iter().map(|tp| {
                let c = g.offsets.get(&tp).cloned();
                (tp, c)
            }).collect(),
            None => g.offsets.iter().map(|(tp, c)| (tp.clone(), Some(c.clone()))).collect(),
        }
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

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.group(group_id)?;
        let g = group.lock().expect("group lock");
        let members = g
            .members
            .values()
            .map(|m| {
                (m.id.clone(), m.instance_id.clone(), m.client_id.clone(), m.client_host.clone(), m.metadata(g.protocol.as_deref()), m.assignment.clone())
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance { g.protocol.clone().unwrap_or_default() } else { String::new() },
            members,
        })
    }

    /// DeleteGroups: only a group without members can go; its offsets go with it.
    pub async fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        let written = {
            let mut groups = self.groups.lock().expect("groups lock");
            let group = groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?.clone();
            let g = group.lock().expect("group lock");
            if !g.members.is_empty() {
                return Err(ResponseError::NonEmptyGroup);
            }
            let group_key = [GROUP_PREFIX, group_id.as_bytes()].concat();
            let written = self.meta.delete_prefix(&offset_prefix(group_id), &[(&group_key, None)]);
            drop(g);
            groups.remove(group_id);
            written
        };
        written.await.map_err(|e| {
            tracing::error!(group = group_id, "cannot delete group: {e:#}");
            ResponseError::KafkaStorageError
        })
    }

    /// OffsetDelete: drops committed offsets, except of topics an active member subscribes to.
    pub async fn delete_offsets(&self, group_id: &str, partitions: Vec<TopicPartition>) -> Result<Vec<PartitionResult>, ResponseError> {
        let group = self.group(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let (results, written) = {
            let mut g = group.lock().expect("group lock");
            let subscribed = g.subscribed_topics();
            let mut deletes = Vec::new();
            let results: Vec<_> = partitions
                .into_iter()
                .map(|tp| {
                    if subscribed.contains(&tp.0) {
                        return (tp, Err(ResponseError::GroupSubscribedToTopic));
                    }
                    g.offsets.remove(&tp);
                    deletes.push(offset_key(group_id, &tp));
                    (tp, Ok(()))
                })
                .collect();
            let writes: Vec<(&[u8], Option<&[u8]>)> = deletes.iter().map(|k| (k.as_slice(), None)).collect();
            (results, self.meta.write(&writes))
        };
        written.await.map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(results)
    }

    /// Checks session and rebalance timeouts until shutdown.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let groups: Vec<_> = self.groups.lock().expect("groups lock").values().cloned().collect();
            for group in groups {
                let idle = group.lock().expect("group lock").is_idle();
                if !idle {
                    self.update(&group, |g, now| g.tick(now)).await;
                }
            }
        }
    }
}

fn offset_prefix(group_id: &str) -> Vec<u8> {
    [OFFSET_PREFIX, group_id.as_bytes(), b"\0"].concat()
}

fn offset_key(group_id: &str, tp: &TopicPartition) -> Vec<u8> {
    [offset_prefix(group_id).as_slice(), tp.0.as_bytes(), b"\0", &tp.1.to_be_bytes()].concat()
}
