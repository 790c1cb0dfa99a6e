//! Broker lifecycle on the active controller (Kafka's ClusterControlManager and
//! BrokerHeartbeatManager): registration, heartbeats, unfencing a broker once it has caught up
//! with the metadata log, and fencing one whose heartbeats stopped, with its partition
//! leaderships moved to another ISR member.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Controller, NodeId, WriteError};
use crate::cluster::metadata::{BrokerId, BrokerRegistration, MetadataImage, MetadataRecord, PartitionChange, NO_LEADER};

/// A broker's registration request: who it is, and where the controller reaches its copy of the
/// metadata log when it is not a voter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterBroker {
    pub cluster_id: String,
    pub registration: BrokerRegistration,
    /// The broker's controller listener (`host:port`); `None` for the lone node of a cluster.
    pub raft_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub id: BrokerId,
    /// The last metadata log index the broker applied.
    pub applied_index: Option<u64>,
    /// The broker is stopping: fence it now rather than after its session times out (Kafka's
    /// controlled shutdown), so its leaderships move at once.
    pub want_shutdown: bool,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub fenced: bool,
    /// The controller does not know the broker (it never registered): register again.
    pub unknown: bool,
}

/// What the active controller knows of live brokers, in memory: a new active controller starts
/// with every broker's session fresh, as Kafka's does, but the previous active controller's
/// node's from the last time it was heard from (its broker heartbeated itself).
#[derive(Default)]
pub(super) struct Sessions {
    inner: Mutex<SessionsInner>,
    /// The leader of the last AppendEntries this node received, and when.
    leader_contact: Mutex<Option<(NodeId, Instant)>>,
}

#[derive(Default)]
struct SessionsInner {
    last_heartbeat: HashMap<BrokerId, Instant>,
    /// The log index of each broker's latest registration: it is caught up once it applied it.
    registered_at: HashMap<BrokerId, u64>,
}

impl Sessions {
    fn touch(&self, id: BrokerId) {
        self.inner.lock().expect("sessions lock").last_heartbeat.insert(id, Instant::now());
    }

    /// Forgets every session (this node just became the active controller): each known broker
    /// gets a full session timeout from now.
    fn restart(&self, brokers: impl Iterator<Item = BrokerId>) {
        let mut inner = self.inner.lock().expect("sessions lock");
        let now = Instant::now();
        let last_leader = *self.leader_contact.lock().expect("contact lock");
        inner.last_heartbeat = brokers
            .map(|id| match last_leader {
                // A node that led until it went silent is fenced a session after its silence
                // began, not after this election: a killed leader's partitions move sooner.
                Some((leader, at)) if leader == id as NodeId => (id, at),
                _ => (id, now),
            })
            .collect();
        inner.registered_at.clear();
    }

    /// Notes an AppendEntries (or heartbeat) from `leader`.
    pub(super) fn heard_from_leader(&self, leader: NodeId) {
        *self.leader_contact.lock().expect("contact lock") = Some((leader, Instant::now()));
    }

    fn expired(&self, timeout: Duration) -> Vec<BrokerId> {
        let inner = self.inner.lock().expect("sessions lock");
        inner.last_heartbeat.iter().filter(|(_, at)| at.elapsed() >= timeout).map(|(&id, _)| id).collect()
    }
}

impl Controller {
    /// A broker (re)registers: it becomes a learner of the metadata log unless it is a voter,
    /// and is recorded, fenced until its heartbeats show it caught up.
    pub async fn register_broker(&self, request: RegisterBroker) -> Result<(), WriteError> {
        self.check_leader()?;
        if request.cluster_id != self.cluster_id {
            return Err(WriteError::WrongCluster { controller: self.cluster_id.clone(), broker: request.cluster_id });
        }
        let id = request.registration.id;
        let node = NodeId::try_from(id).map_err(|_| WriteError::Refused(format!("bad broker id {id}")))?;
        if !self.is_voter(node) {
            let address = request.raft_address.ok_or_else(|| WriteError::Refused(format!("broker {id} is not a voter and has no controller listener")))?;
            self.add_learner(node, address).await?;
        }
        let log_id = self.write(MetadataRecord::RegisterBroker(request.registration)).await?;
        self.sessions.touch(id);
        self.sessions.inner.lock().expect("sessions lock").registered_at.insert(id, log_id.index);
        tracing::info!(broker = id, "broker registered");
        Ok(())
    }

    /// A broker's heartbeat: keeps its session, and unfences it once it has applied the log up
    /// to its registration.
    pub async fn broker_heartbeat(&self, heartbeat: BrokerHeartbeat) -> Result<HeartbeatReply, WriteError> {
        self.check_leader()?;
        let image = self.image.borrow().clone();
        let Some(broker) = image.broker(heartbeat.id) else {
            return Ok(HeartbeatReply { fenced: true, unknown: true });
        };
        if heartbeat.want_shutdown {
            self.fence(heartbeat.id, "controlled shutdown").await?;
            return Ok(HeartbeatReply { fenced: true, unknown: false });
        }
        self.sessions.touch(heartbeat.id);
        if !broker.fenced {
            return Ok(HeartbeatReply { fenced: false, unknown: false });
        }
        // Registered under an earlier active controller: caught up once it has what this one applied.
        let needed = self.sessions.inner.lock().expect("sessions lock").registered_at.get(&heartbeat.id).copied();
        let needed = needed.or(self.status().last_applied_index);
        if heartbeat.applied_index < needed {
            return Ok(HeartbeatReply { fenced: true, unknown: false });
        }
        let _writes = self.writes.lock().await;
        // Partitions left without a leader come back with it, if it is in their ISR.
        let image = self.image.borrow().clone();
        let mut records = vec![MetadataRecord::UnfenceBroker { id: heartbeat.id }];
        records.extend(leaderless_partitions_for(&image, heartbeat.id).into_iter().map(MetadataRecord::PartitionChange));
        self.write(MetadataRecord::Batch(records)).await?;
        tracing::info!(broker = heartbeat.id, "broker unfenced");
        Ok(HeartbeatReply { fenced: false, unknown: false })
    }

    /// The active controller's session check, every tenth of `broker.session.timeout.ms`:
    /// fences each broker whose heartbeats stopped. A named background task, started from
    /// lib.rs; it ends at shutdown.
    pub async fn run_broker_sessions(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let timeout = Duration::from_millis(self.session_timeout_ms);
        let mut tick = tokio::time::interval((timeout / 10).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let leader = self.leader() == Some(self.id);
            if leader && !was_leader {
                self.sessions.restart(self.image.borrow().brokers().map(|b| b.registration.id));
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            for id in self.sessions.expired(timeout) {
                if let Err(e) = self.fence(id, "no heartbeat within the session timeout").await {
                    tracing::warn!(broker = id, "fencing failed, will retry: {e}");
                }
            }
        }
    }

    /// Fences `id`: it leaves every ISR it is in (the last member stays, for the data is
    /// there), and the partitions it led get another ISR member as leader, or none.
    async fn fence(&self, id: BrokerId, why: &str) -> Result<(), WriteError> {
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        match image.broker(id) {
            Some(b) if !b.fenced => {}
            // Already fenced (or gone): nothing more to track.
            _ => {
                self.sessions.inner.lock().expect("sessions lock").last_heartbeat.remove(&id);
                return Ok(());
            }
        }
        let mut image = (*image).clone();
        image.apply(MetadataRecord::FenceBroker { id }).map_err(WriteError::Refused)?;
        let changes = partitions_without(&image, id);
        let moved = changes.len();
        let mut records = vec![MetadataRecord::FenceBroker { id }];
        records.extend(changes.into_iter().map(MetadataRecord::PartitionChange));
        self.write(MetadataRecord::Batch(records)).await?;
        self.sessions.inner.lock().expect("sessions lock").last_heartbeat.remove(&id);
        tracing::warn!(broker = id, partitions = moved, "broker fenced: {why}");
        Ok(())
    }
}

/// The changes that take fenced broker `id` out of every ISR and leadership (Kafka's
/// `ReplicationControlManager.handleBrokerFenced`): a new leader only from the ISR, never an
/// unclean one.
pub(super) fn partitions_without(image: &MetadataImage, id: BrokerId) -> Vec<PartitionChange> {
    let live = |b: &BrokerId| *b != id && image.broker(*b).is_some_and(|b| !b.fenced);
    let mut changes = Vec::new();
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let isr: Vec<BrokerId> = p.isr.iter().copied().filter(|b| *b != id).collect();
            // The last ISR member stays in it: it has every acknowledged record.
            let isr = if isr.is_empty() { p.isr.clone() } else { isr };
            let leader = if p.leader == id || p.leader == NO_LEADER { isr.iter().copied().find(|b| live(b)).unwrap_or(NO_LEADER) } else { p.leader };
            changes.push(PartitionChange { topic_id: topic.id, index: p.index, leader: (leader != p.leader).then_some(leader), isr: (isr != p.isr).then_some(isr), replicas: None });
        }
    }
    changes
}

/// Partitions without a leader whose ISR holds `id`, which is unfenced now: it leads them again.
fn leaderless_partitions_for(image: &MetadataImage, id: BrokerId) -> Vec<PartitionChange> {
    image
        .topics()
        .flat_map(|t| t.partitions.values().map(move |p| (t.id, p)))
        .filter(|(_, p)| p.leader == NO_LEADER && p.isr.contains(&id))
        .map(|(topic_id, p)| PartitionChange { topic_id, index: p.index, leader: Some(id), isr: None, replicas: None })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::cluster::metadata::{BrokerEndpoint, PartitionRecord, TopicRecord};

    #[test]
    fn a_new_controller_times_the_previous_leaders_session_from_its_last_append() {
        let sessions = Sessions::default();
        sessions.heard_from_leader(2);
        std::thread::sleep(Duration::from_millis(60));
        sessions.restart([1, 2, 3].into_iter());
        assert_eq!(sessions.expired(Duration::from_millis(50)), [2], "the others' sessions begin now");
    }

    fn image(brokers: &[BrokerId], partitions: &[(Vec<BrokerId>, BrokerId)]) -> (MetadataImage, Uuid) {
        let mut image = MetadataImage::default();
        for &id in brokers {
            let endpoints = vec![BrokerEndpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 1 }];
            image.apply(MetadataRecord::RegisterBroker(BrokerRegistration { id, endpoints, rack: None })).unwrap();
            image.apply(MetadataRecord::UnfenceBroker { id }).unwrap();
        }
        let topic_id = Uuid::new_v4();
        image.apply(MetadataRecord::Topic(TopicRecord { name: "t".into(), id: topic_id, configs: vec![] })).unwrap();
        for (index, (isr, leader)) in partitions.iter().enumerate() {
            let record = PartitionRecord { topic_id, index: index as i32, replicas: isr.clone(), isr: isr.clone(), leader: *leader, leader_epoch: 0, partition_epoch: 0 };
            image.apply(MetadataRecord::Partition(record)).unwrap();
        }
        (image, topic_id)
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_never_uncleanly() {
        let (mut image, _) = image(&[1, 2, 3], &[(vec![1, 2, 3], 1), (vec![2, 1], 2), (vec![1], 1), (vec![3], 3)]);
        image.apply(MetadataRecord::FenceBroker { id: 1 }).unwrap();
        let changes = partitions_without(&image, 1);
        assert_eq!(changes.len(), 3, "partition 3 does not involve broker 1");
        assert_eq!((changes[0].leader, changes[0].isr.clone()), (Some(2), Some(vec![2, 3])));
        assert_eq!((changes[1].leader, changes[1].isr.clone()), (None, Some(vec![2])));
        assert_eq!((changes[2].leader, changes[2].isr.clone()), (Some(NO_LEADER), None), "the last ISR member stays, leaderless");
        for change in changes {
            image.apply(MetadataRecord::PartitionChange(change)).unwrap();
        }
        let p0 = &image.topic("t").unwrap().partitions[&0];
        assert_eq!((p0.leader, p0.leader_epoch), (2, 1));
        image.apply(MetadataRecord::UnfenceBroker { id: 1 }).unwrap();
        let back = leaderless_partitions_for(&image, 1);
        assert_eq!(back.iter().map(|c| (c.index, c.leader)).collect::<Vec<_>>(), [(2, Some(1))]);
    }
}
