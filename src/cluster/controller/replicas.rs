//! Where a partition's replicas live and which one leads, on the active controller: replica
//! reassignments (KIP-455, as `kafka-reassign-partitions` drives them) and leader elections
//! (KIP-460: preferred and unclean), with the preferred-leader rebalance of
//! `auto.leader.rebalance.enable`.
//!
//! A reassignment first makes the replicas the target ones plus those it removes; the leader
//! adds the new ones to the ISR as they catch up (AlterPartition), and the ISR change that
//! brings in the last of them also completes it: the removed replicas go, and a leader among
//! them hands over to the first target replica in the ISR (Kafka's PartitionChangeBuilder).

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::topics::rejected;
use super::{Controller, WriteError};
use crate::cluster::metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionChange, PartitionRecord, Reassignment, ReassignmentRecord, NO_LEADER};

/// One partition of an AlterPartitionReassignments request; `target: None` cancels the
/// reassignment in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reassign {
    pub topic: String,
    pub index: i32,
    pub target: Option<Vec<BrokerId>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterReassignments {
    pub partitions: Vec<Reassign>,
    /// KIP-860: `false` refuses a target of another size than the current replicas.
    pub allow_replication_factor_change: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica leads again, if it is in the ISR.
    Preferred,
    /// A partition without a leader takes any live replica, in sync or not (data may be lost).
    Unclean,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElectLeaders {
    pub election: ElectionType,
    /// `None`: every partition; only those elected or failing are answered then.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// Per partition, in request order: `Ok` or Kafka's error.
pub type PartitionResults = Vec<((String, i32), Result<(), WriteError>)>;

impl Controller {
    /// Starts, replaces or cancels partitions' reassignments; all changes in one batch.
    pub async fn alter_reassignments(&self, request: AlterReassignments) -> Result<PartitionResults, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let mut work = (*self.image.borrow().clone()).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(request.partitions.len());
        for r in request.partitions {
            let planned = plan_reassignment(&work, &r, request.allow_replication_factor_change);
            let result = planned.and_then(|planned| {
                work.apply(MetadataRecord::Batch(planned.clone())).map_err(WriteError::Refused)?;
                records.extend(planned);
                Ok(())
            });
            results.push(((r.topic, r.index), result));
        }
        if !records.is_empty() {
            self.write(MetadataRecord::Batch(records)).await?;
        }
        for ((topic, index), result) in &results {
            if result.is_ok() {
                tracing::info!(topic, partition = index, "reassignment changed");
            }
        }
        Ok(results)
    }

    /// Elects leaders as `request` says; all changes in one batch.
    pub async fn elect_leaders(&self, request: ElectLeaders) -> Result<PartitionResults, WriteError> {
        self.check_leader()?;
        let _writes = self.writes.lock().await;
        let image = self.image.borrow().clone();
        let all = request.partitions.is_none();
        let wanted = request.partitions.unwrap_or_else(|| image.topics().flat_map(|t| t.partitions.keys().map(|&i| (t.name.clone(), i))).collect());
        let mut work = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(wanted.len());
        for (topic, index) in wanted {
            let result = elect(&work, &topic, index, request.election).and_then(|change| {
                let record = MetadataRecord::PartitionChange(change);
                work.apply(record.clone()).map_err(WriteError::Refused)?;
                records.push(record);
                Ok(())
            });
            let not_needed = matches!(&result, Err(WriteError::Rejected { code, .. }) if *code == ResponseError::ElectionNotNeeded.code());
            if !(all && not_needed) {
                results.push(((topic, index), result));
            }
        }
        if !records.is_empty() {
            let elected = records.len();
            self.write(MetadataRecord::Batch(records)).await?;
            tracing::info!(partitions = elected, election = ?request.election, "elected leaders");
        }
        Ok(results)
    }

    /// The preferred-leader rebalance (`auto.leader.rebalance.enable`): every partition whose
    /// first replica is live, in the ISR and not leading gets it back as leader. A named
    /// background task on every controller; only the active one acts.
    pub async fn run_leader_rebalance(self, interval: std::time::Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if self.leader() != Some(self.id) || !has_imbalance(&self.image.borrow()) {
                continue;
            }
            if let Err(e) = self.elect_leaders(ElectLeaders { election: ElectionType::Preferred, partitions: None }).await {
                tracing::warn!("preferred leader rebalance: {e}; retrying at the next check");
            }
        }
    }
}

/// The records that start, replace or cancel one partition's reassignment.
fn plan_reassignment(image: &MetadataImage, r: &Reassign, allow_rf_change: bool) -> Result<Vec<MetadataRecord>, WriteError> {
    let unknown = || rejected(ResponseError::UnknownTopicOrPartition, format!("Unable to find partition {}-{}.", r.topic, r.index));
    let topic = image.topic(&r.topic).ok_or_else(unknown)?;
    let current = topic.partitions.get(&r.index).ok_or_else(unknown)?;
    let ongoing = topic.reassignments.get(&r.index);
    let Some(target) = &r.target else {
        let ongoing = ongoing.ok_or_else(|| rejected(ResponseError::NoReassignmentInProgress, format!("No ongoing reassignment for partition {}-{}.", r.topic, r.index)))?;
        return cancel(image, topic.id, current, ongoing);
    };
    check_target(image, target)?;
    let original = ongoing.map_or_else(|| current.replicas.clone(), |o| o.original(&current.replicas));
    if !allow_rf_change && target.len() != original.len() {
        return Err(rejected(
            ResponseError::InvalidReplicationFactor,
            format!("The replication factor is changed from {} to {} using reassignment, which is not allowed.", original.len(), target.len()),
        ));
    }
    let adding: Vec<BrokerId> = target.iter().copied().filter(|b| !current.replicas.contains(b)).collect();
    let removing: Vec<BrokerId> = current.replicas.iter().copied().filter(|b| !target.contains(b)).collect();
    let replicas: Vec<BrokerId> = target.iter().chain(&removing).copied().collect();
    let mut records = vec![MetadataRecord::PartitionChange(PartitionChange { topic_id: topic.id, index: r.index, leader: None, isr: None, replicas: Some(replicas.clone()) })];
    let reassignment = Reassignment { adding, removing };
    let mut after = current.clone();
    after.replicas = replicas;
    match completion(image, topic.id, &after, &reassignment) {
        // Nothing to copy (a new order, or only removals): done at once.
        Some(done) => records.extend(done),
        None => records.push(reassignment_record(topic.id, r.index, reassignment)),
    }
    Ok(records)
}

/// A target as Kafka's controller checks it: not empty, no broker twice, every broker registered.
fn check_target(image: &MetadataImage, target: &[BrokerId]) -> Result<(), WriteError> {
    let invalid = |message: String| Err(rejected(ResponseError::InvalidReplicaAssignment, message));
    if target.is_empty() {
        return invalid("The target replica list is empty.".into());
    }
    for (i, b) in target.iter().enumerate() {
        if target[..i].contains(b) {
            return invalid(format!("The target replica list contains broker {b} more than once."));
        }
        if image.broker(*b).is_none() {
            return invalid(format!("The target replica list includes broker {b}, but no such broker is registered."));
        }
    }
    Ok(())
}

fn reassignment_record(topic_id: Uuid, index: i32, r: Reassignment) -> MetadataRecord {
    MetadataRecord::Reassignment(ReassignmentRecord { topic_id, index, adding: r.adding, removing: r.removing })
}

/// The records that complete `reassignment` of `p` (whose replicas are the target plus the
/// removed ones), if every added replica is in the ISR and some target replica is: the
/// replicas become the target, the removed ones leave the ISR, and a removed leader hands over.
pub(super) fn completion(image: &MetadataImage, topic_id: Uuid, p: &PartitionRecord, reassignment: &Reassignment) -> Option<Vec<MetadataRecord>> {
    let target = reassignment.target(&p.replicas);
    let isr: Vec<BrokerId> = p.isr.iter().copied().filter(|b| target.contains(b)).collect();
    if isr.is_empty() || reassignment.adding.iter().any(|b| !p.isr.contains(b)) {
        return None;
    }
    let leader = if isr.contains(&p.leader) { p.leader } else { first_live(image, &target, &isr) };
    let change = PartitionChange {
        topic_id,
        index: p.index,
        leader: (leader != p.leader).then_some(leader),
        isr: (isr != p.isr).then_some(isr),
        replicas: (target != p.replicas).then_some(target),
    };
    let cleared = Reassignment { adding: vec![], removing: vec![] };
    Some(vec![MetadataRecord::PartitionChange(change), reassignment_record(topic_id, p.index, cleared)])
}

/// Back to the replicas before the reassignment: the added ones leave (ISR included), and an
/// added leader hands over to an original ISR member.
fn cancel(image: &MetadataImage, topic_id: Uuid, p: &PartitionRecord, ongoing: &Reassignment) -> Result<Vec<MetadataRecord>, WriteError> {
    let original = ongoing.original(&p.replicas);
    let isr: Vec<BrokerId> = p.isr.iter().copied().filter(|b| original.contains(b)).collect();
    if isr.is_empty() {
        return Err(rejected(ResponseError::InvalidReplicaAssignment, "Unable to revert partition assignment because it would leave the partition with an empty ISR."));
    }
    let leader = if isr.contains(&p.leader) { p.leader } else { first_live(image, &original, &isr) };
    let change = PartitionChange { topic_id, index: p.index, leader: (leader != p.leader).then_some(leader), isr: Some(isr), replicas: Some(original) };
    Ok(vec![MetadataRecord::PartitionChange(change), reassignment_record(topic_id, p.index, Reassignment { adding: vec![], removing: vec![] })])
}

/// The first replica, in replica order, that is in `isr` and live; none if no such.
fn first_live(image: &MetadataImage, replicas: &[BrokerId], isr: &[BrokerId]) -> BrokerId {
    let live = |b: &BrokerId| isr.contains(b) && image.broker(*b).is_some_and(|b| !b.fenced);
    replicas.iter().copied().find(live).unwrap_or(NO_LEADER)
}

/// The leader change one election makes, or why it makes none (Kafka's error codes).
fn elect(image: &MetadataImage, topic: &str, index: i32, election: ElectionType) -> Result<PartitionChange, WriteError> {
    let unknown = || rejected(ResponseError::UnknownTopicOrPartition, format!("The partition {topic}-{index} does not exist."));
    let t = image.topic(topic).ok_or_else(unknown)?;
    let p = t.partitions.get(&index).ok_or_else(unknown)?;
    let live = |b: &BrokerId| image.broker(*b).is_some_and(|b| !b.fenced);
    let change = |leader, isr| PartitionChange { topic_id: t.id, index, leader: Some(leader), isr, replicas: None };
    match election {
        ElectionType::Preferred => {
            let preferred = p.replicas[0];
            if p.leader == preferred {
                return Err(rejected(ResponseError::ElectionNotNeeded, format!("Leader {preferred} is already the preferred replica of {topic}-{index}.")));
            }
            if !p.isr.contains(&preferred) || !live(&preferred) {
                return Err(rejected(ResponseError::PreferredLeaderNotAvailable, format!("Failed to elect leader for partition {topic}-{index} under strategy PreferredReplicaPartitionLeaderElectionStrategy: replica {preferred} is not live and in sync.")));
            }
            Ok(change(preferred, None))
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER && live(&p.leader) {
                return Err(rejected(ResponseError::ElectionNotNeeded, format!("Partition {topic}-{index} has leader {} already.", p.leader)));
            }
            if let Some(clean) = p.replicas.iter().copied().find(|b| p.isr.contains(b) && live(b)) {
                return Ok(change(clean, None));
            }
            let Some(unclean) = p.replicas.iter().copied().find(live) else {
                return Err(rejected(ResponseError::EligibleLeadersNotAvailable, format!("Failed to elect leader for partition {topic}-{index}: no replica is live.")));
            };
            tracing::warn!(topic, partition = index, broker = unclean, "unclean leader election: records only the old ISR had are lost");
            Ok(change(unclean, Some(vec![unclean])))
        }
    }
}

/// Some partition's first replica is live and in sync but not leading.
fn has_imbalance(image: &MetadataImage) -> bool {
    image.topics().flat_map(|t| t.partitions.values().map(move |p| (t, p))).any(|(t, p)| elect(image, &t.name, p.index, ElectionType::Preferred).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{BrokerEndpoint, BrokerRegistration, TopicRecord};

    /// Brokers 1..=4 live; topic "t" with one partition on `replicas`, all in sync, led by the first.
    fn image(replicas: &[BrokerId]) -> (MetadataImage, Uuid) {
        let mut image = MetadataImage::default();
        for id in 1..=4 {
            let endpoints = vec![BrokerEndpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 1 }];
            image.apply(MetadataRecord::RegisterBroker(BrokerRegistration { id, endpoints, rack: None })).unwrap();
            image.apply(MetadataRecord::UnfenceBroker { id }).unwrap();
        }
        let topic_id = Uuid::new_v4();
        image.apply(MetadataRecord::Topic(TopicRecord { name: "t".into(), id: topic_id, configs: vec![] })).unwrap();
        let p = PartitionRecord { topic_id, index: 0, replicas: replicas.to_vec(), isr: replicas.to_vec(), leader: replicas[0], leader_epoch: 0, partition_epoch: 0 };
        image.apply(MetadataRecord::Partition(p)).unwrap();
        (image, topic_id)
    }

    fn reassign(target: Option<Vec<BrokerId>>) -> Reassign {
        Reassign { topic: "t".into(), index: 0, target }
    }

    fn code(result: Result<Vec<MetadataRecord>, WriteError>) -> i16 {
        match result {
            Err(WriteError::Rejected { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reassignment_adds_first_and_completes_when_the_new_replicas_are_in_sync() {
        let (mut image, id) = image(&[1, 2, 3]);
        let records = plan_reassignment(&image, &reassign(Some(vec![2, 3, 4])), true).unwrap();
        image.apply(MetadataRecord::Batch(records)).unwrap();
        let t = image.topic("t").unwrap();
        assert_eq!(t.partitions[&0].replicas, vec![2, 3, 4, 1]);
        assert_eq!(t.reassignments[&0], Reassignment { adding: vec![4], removing: vec![1] });
        assert_eq!(t.partitions[&0].leader, 1, "the leader stays until the new replica is in sync");

        // Broker 4 joins the ISR: the reassignment completes, and leader 1 hands over to 2.
        let joined = PartitionChange { topic_id: id, index: 0, leader: None, isr: Some(vec![1, 2, 3, 4]), replicas: None };
        image.apply(MetadataRecord::PartitionChange(joined)).unwrap();
        let p = image.topic("t").unwrap().partitions[&0].clone();
        let done = completion(&image, id, &p, &image.topic("t").unwrap().reassignments[&0]).expect("complete");
        image.apply(MetadataRecord::Batch(done)).unwrap();
        let t = image.topic("t").unwrap();
        let p = &t.partitions[&0];
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![2, 3, 4], vec![2, 3, 4], 2));
        assert!(t.reassignments.is_empty());
    }

    #[test]
    fn a_new_order_completes_at_once_and_a_cancel_goes_back() {
        let (mut image, _) = image(&[1, 2, 3]);
        let records = plan_reassignment(&image, &reassign(Some(vec![3, 1, 2])), true).unwrap();
        image.apply(MetadataRecord::Batch(records)).unwrap();
        let t = image.topic("t").unwrap();
        assert_eq!((t.partitions[&0].replicas.clone(), t.partitions[&0].leader), (vec![3, 1, 2], 1));
        assert!(t.reassignments.is_empty());

        let records = plan_reassignment(&image, &reassign(Some(vec![4])), true).unwrap();
        image.apply(MetadataRecord::Batch(records)).unwrap();
        assert_eq!(image.topic("t").unwrap().partitions[&0].replicas, vec![4, 3, 1, 2]);
        let records = plan_reassignment(&image, &reassign(None), true).unwrap();
        image.apply(MetadataRecord::Batch(records)).unwrap();
        let t = image.topic("t").unwrap();
        assert_eq!((t.partitions[&0].replicas.clone(), t.partitions[&0].isr.clone()), (vec![3, 1, 2], vec![1, 2, 3]));
        assert!(t.reassignments.is_empty());
    }

    #[test]
    fn bad_reassignments_get_kafkas_errors() {
        let (image, _) = image(&[1, 2, 3]);
        assert_eq!(code(plan_reassignment(&image, &reassign(None), true)), ResponseError::NoReassignmentInProgress.code());
        assert_eq!(code(plan_reassignment(&image, &reassign(Some(vec![1, 9])), true)), ResponseError::InvalidReplicaAssignment.code());
        assert_eq!(code(plan_reassignment(&image, &reassign(Some(vec![1, 1])), true)), ResponseError::InvalidReplicaAssignment.code());
        assert_eq!(code(plan_reassignment(&image, &reassign(Some(vec![])), true)), ResponseError::InvalidReplicaAssignment.code());
        assert_eq!(code(plan_reassignment(&image, &reassign(Some(vec![1, 2])), false)), ResponseError::InvalidReplicationFactor.code());
        let other = Reassign { topic: "t".into(), index: 5, target: Some(vec![1]) };
        assert_eq!(code(plan_reassignment(&image, &other, true)), ResponseError::UnknownTopicOrPartition.code());
    }

    #[test]
    fn preferred_and_unclean_elections() {
        let (mut image, id) = image(&[1, 2, 3]);
        let not_needed = |r: Result<PartitionChange, WriteError>| matches!(r, Err(WriteError::Rejected { code, .. }) if code == ResponseError::ElectionNotNeeded.code());
        assert!(not_needed(elect(&image, "t", 0, ElectionType::Preferred)));
        image.apply(MetadataRecord::PartitionChange(PartitionChange { topic_id: id, index: 0, leader: Some(2), isr: None, replicas: None })).unwrap();
        assert!(has_imbalance(&image));
        assert_eq!(elect(&image, "t", 0, ElectionType::Preferred).unwrap().leader, Some(1));
        // 1 out of sync: not available; unclean elections are not needed with a live leader.
        image.apply(MetadataRecord::PartitionChange(PartitionChange { topic_id: id, index: 0, leader: None, isr: Some(vec![2]), replicas: None })).unwrap();
        assert!(!has_imbalance(&image));
        assert!(matches!(elect(&image, "t", 0, ElectionType::Preferred), Err(WriteError::Rejected { code, .. }) if code == ResponseError::PreferredLeaderNotAvailable.code()));
        assert!(not_needed(elect(&image, "t", 0, ElectionType::Unclean)));
        // Leader 2 is fenced and leaves no one in sync: an unclean election picks live replica 1.
        image.apply(MetadataRecord::FenceBroker { id: 2 }).unwrap();
        image.apply(MetadataRecord::PartitionChange(PartitionChange { topic_id: id, index: 0, leader: Some(NO_LEADER), isr: None, replicas: None })).unwrap();
        let change = elect(&image, "t", 0, ElectionType::Unclean).unwrap();
        assert_eq!((change.leader, change.isr), (Some(1), Some(vec![1])));
    }
}
