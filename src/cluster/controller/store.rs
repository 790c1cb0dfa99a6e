//! openraft's storage over the store's Raft log facade ([`RaftLog`]): entries in the `raft`
//! column family, the vote and the committed and purged log ids in `meta` keys, and the state
//! machine (the metadata image with its last applied log id and membership) in one `meta` value
//! written atomically after each batch of entries applied.
//!
//! A snapshot is the serialized image of the state machine as it is when asked for: the state
//! is persisted on every apply, so there is no separate snapshot file to keep.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use anyhow::Context;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{rpc, Applied, NodeId, TypeConfig};
use crate::cluster::metadata::{MetadataImage, MetadataImageV1, MetadataImageV2, MetadataImageV3};
use crate::log::{RaftLog, RaftWrite};

const VOTE_KEY: &[u8] = b"q/vote";
const COMMITTED_KEY: &[u8] = b"q/committed";
const PURGED_KEY: &[u8] = b"q/purged";
const STATE_KEY: &[u8] = b"q/state";

type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// Encoded with [`rpc::codec`], as RPCs are, behind one format byte so a later layout can
/// be told apart. Format 2 added reassignments to the image, format 3 ACLs and SCRAM
/// credentials, format 4 client quotas; every other value reads the same in the older formats.
const FORMAT: u8 = 4;
const FORMAT_V3: u8 = 3;
const FORMAT_V2: u8 = 2;
const FORMAT_V1: u8 = 1;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rpc::encode(FORMAT, value)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    match bytes.split_first() {
        Some((&(FORMAT | FORMAT_V3 | FORMAT_V2 | FORMAT_V1), body)) => rpc::decode(body),
        _ => anyhow::bail!("stored controller state in an unknown format"),
    }
}

/// A metadata image (a snapshot's), in any format.
fn decode_image(bytes: &[u8]) -> anyhow::Result<MetadataImage> {
    match bytes.first() {
        Some(&FORMAT_V1) => decode::<MetadataImageV1>(bytes).map(Into::into),
        Some(&FORMAT_V2) => decode::<MetadataImageV2>(bytes).map(Into::into),
        Some(&FORMAT_V3) => decode::<MetadataImageV3>(bytes).map(Into::into),
        _ => decode(bytes),
    }
}

fn storage_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(format!("{e:#}"))).into()
}

/// The Raft log, vote and commit point.
#[derive(Clone)]
pub(super) struct LogStorage {
    log: RaftLog,
}

impl LogStorage {
    pub(super) fn new(log: RaftLog) -> LogStorage {
        LogStorage { log }
    }

    async fn read<T: DeserializeOwned>(&self, key: &[u8], subject: ErrorSubject<NodeId>) -> Result<Option<T>, StorageError<NodeId>> {
        let read = async { self.log.get(key).await?.map(|v| decode(&v)).transpose() };
        read.await.map_err(|e| storage_error(subject, ErrorVerb::Read, e))
    }

    async fn write(&self, write: RaftWrite, subject: ErrorSubject<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.log.write(write).await.map_err(|e| storage_error(subject, ErrorVerb::Write, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStorage {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let entries = self.log.entries(from, to).await.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let mut decoded = Vec::with_capacity(entries.len());
        for (index, bytes) in entries {
            decoded.push(decode(&bytes).map_err(|e| storage_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, e))?);
        }
        Ok(decoded)
    }
}

impl RaftLogStorage<TypeConfig> for LogStorage {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last = self.log.last().await.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let last = match last {
            Some((index, bytes)) => Some(decode::<Entry<TypeConfig>>(&bytes).map_err(|e| storage_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, e))?.log_id),
            None => None,
        };
        let last_purged_log_id: Option<LogId<NodeId>> = self.read(PURGED_KEY, ErrorSubject::Logs).await?;
        // Everything purged: the last entry is the last purged one.
        Ok(LogState { last_log_id: last.or(last_purged_log_id), last_purged_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(RaftWrite::durable().meta(VOTE_KEY, Some(encode(vote))), ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read(VOTE_KEY, ErrorSubject::Vote).await
    }

    /// Only shortens a restart (fewer entries wait for the leader to be re-applied), so it
    /// need not be synced.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.write(RaftWrite::lazy().meta(COMMITTED_KEY, Some(encode(&committed))), ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.read::<Option<LogId<NodeId>>>(COMMITTED_KEY, ErrorSubject::Store).await?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = entries.into_iter().fold(RaftWrite::durable(), |w, entry| w.append(entry.log_id.index, encode(&entry)));
        let written = self.log.write(write).await;
        let result = written.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(format!("{e:#}")));
        callback.log_io_completed(result);
        written.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!("truncating the metadata log from {log_id}");
        self.write(RaftWrite::durable().truncate_from(log_id.index), ErrorSubject::Log(log_id)).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let write = RaftWrite::durable().meta(PURGED_KEY, Some(encode(&log_id))).purge_up_to(log_id.index);
        self.write(write, ErrorSubject::Log(log_id)).await
    }
}

/// What the state machine persists, in one value.
#[derive(Clone, Default, Serialize, Deserialize)]
struct State {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    image: MetadataImage,
}

/// [`State`] as format 1 stored it.
#[derive(Deserialize)]
struct StateV1 {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    image: MetadataImageV1,
}

/// [`State`] as format 2 stored it.
#[derive(Deserialize)]
struct StateV2 {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    image: MetadataImageV2,
}

/// [`State`] as format 3 stored it.
#[derive(Deserialize)]
struct StateV3 {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    image: MetadataImageV3,
}

impl State {
    fn decode(bytes: &[u8]) -> anyhow::Result<State> {
        match bytes.first() {
            Some(&FORMAT_V1) => decode::<StateV1>(bytes).map(|v1| State { applied: v1.applied, membership: v1.membership, image: v1.image.into() }),
            Some(&FORMAT_V2) => decode::<StateV2>(bytes).map(|v2| State { applied: v2.applied, membership: v2.membership, image: v2.image.into() }),
            Some(&FORMAT_V3) => decode::<StateV3>(bytes).map(|v3| State { applied: v3.applied, membership: v3.membership, image: v3.image.into() }),
            _ => decode(bytes),
        }
    }
}

/// Applies committed records to the image, persists it, and publishes it.
pub(super) struct StateMachine {
    log: RaftLog,
    state: State,
    published: watch::Sender<Arc<MetadataImage>>,
}

impl StateMachine {
    /// Loads the persisted state; the receiver follows the image from then on.
    pub(super) async fn open(log: RaftLog) -> anyhow::Result<(StateMachine, watch::Receiver<Arc<MetadataImage>>)> {
        let state: State = match log.get(STATE_KEY).await? {
            Some(bytes) => State::decode(&bytes).context("the stored metadata image")?,
            None => State::default(),
        };
        let (published, image) = watch::channel(Arc::new(state.image.clone()));
        Ok((StateMachine { log, state, published }, image))
    }

    async fn persist(&self, durable: bool) -> Result<(), StorageError<NodeId>> {
        let write = if durable { RaftWrite::durable() } else { RaftWrite::lazy() };
        let write = write.meta(STATE_KEY, Some(encode(&self.state)));
        self.log.write(write).await.map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        self.published.send_replace(Arc::new(self.state.image.clone()));
        Ok(())
    }

    fn snapshot(&self) -> Option<Snapshot<TypeConfig>> {
        let last = self.state.applied?;
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: self.state.membership.clone(),
            snapshot_id: format!("{}-{}", last.leader_id, last.index),
        };
        Some(Snapshot { meta, snapshot: Box::new(Cursor::new(encode(&self.state.image))) })
    }
}

/// The snapshot of the state at the time it was asked for.
pub(super) struct SnapshotBuilder(Option<Snapshot<TypeConfig>>);

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.0.take().ok_or_else(|| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, "nothing applied yet to snapshot"))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.state.applied, self.state.membership.clone()))
    }

    /// Not synced: after a crash, the entries whose effect was lost are applied again from
    /// the log, which a later durable write (append, vote, purge) has made durable together
    /// with this.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            self.state.applied = Some(entry.log_id);
            outcomes.push(match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(record) => self.state.image.apply(record).inspect_err(|reason| tracing::warn!(log_id = %entry.log_id, "metadata record refused: {reason}")),
                EntryPayload::Membership(membership) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
            });
        }
        self.persist(false).await?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder(self.snapshot())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<NodeId, openraft::BasicNode>, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError<NodeId>> {
        let image = decode_image(snapshot.get_ref()).map_err(|e| storage_error(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, e))?;
        self.state = State { applied: meta.last_log_id, membership: meta.last_membership.clone(), image };
        tracing::info!(snapshot = %meta, "installed a metadata snapshot");
        self.persist(true).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::cluster::metadata::{BrokerId, BrokerImage, PartitionRecord};

    #[test]
    fn a_state_stored_in_format_1_is_read() {
        // Format 1's image had the same fields, and topics without reassignments; bincode lays a
        // struct out as the tuple of its fields.
        let id = Uuid::new_v4();
        let partition = PartitionRecord { topic_id: id, index: 0, replicas: vec![1], isr: vec![1], leader: 1, leader_epoch: 3, partition_epoch: 4 };
        let topics = BTreeMap::from([(id, ("t".to_string(), id, BTreeMap::<String, String>::new(), BTreeMap::from([(0, partition.clone())])))]);
        let image = (BTreeMap::<BrokerId, BrokerImage>::new(), topics, BTreeMap::from([("t".to_string(), id)]), BTreeMap::<Option<BrokerId>, BTreeMap<String, String>>::new(), 1000i64);
        let bytes = rpc::encode(FORMAT_V1, &(None::<LogId<NodeId>>, Membership::default(), image));
        let state = State::decode(&bytes).expect("format 1 reads");
        let topic = state.image.topic("t").expect("the topic");
        assert_eq!(topic.partitions[&0], partition);
        assert!(topic.reassignments.is_empty());
        assert_eq!(state.image.next_producer_id(), 1000);
        assert_eq!(State::decode(&encode(&state)).expect("format 4 reads").image, state.image);
    }

    #[test]
    fn acls_are_kept_in_the_stored_state() {
        let mut state = State::default();
        let acl = crate::security::acl::codes::binding(2, "t", 3, "User:a", "*", 3, 2).expect("valid");
        state.image.apply(crate::cluster::metadata::MetadataRecord::Acl(acl.clone())).expect("applies");
        assert!(State::decode(&encode(&state)).expect("format 4 reads").image.acls().contains(&acl));
        // Format 2 had the same image without ACLs.
        let image = (BTreeMap::<BrokerId, BrokerImage>::new(), BTreeMap::<Uuid, crate::cluster::metadata::TopicImage>::new(), BTreeMap::<String, Uuid>::new(), BTreeMap::<Option<BrokerId>, BTreeMap<String, String>>::new(), 7i64);
        let v2 = State::decode(&rpc::encode(FORMAT_V2, &(None::<LogId<NodeId>>, Membership::default(), image))).expect("format 2 reads");
        assert_eq!(v2.image.next_producer_id(), 7);
        assert!(v2.image.acls().matching(&crate::security::acl::codes::filter(1, None, 1, None, None, 1, 1).expect("any")).next().is_none());
        assert!(v2.image.scram_users().is_empty());
    }

    #[test]
    fn client_quotas_are_kept_in_the_stored_state() {
        use crate::cluster::metadata::{ClientQuotaRecord, MetadataRecord};
        use crate::quota::{EntityName, QuotaEntity, QuotaKey};
        let mut state = State::default();
        let entity = QuotaEntity { user: Some(EntityName::Default), client_id: Some(EntityName::Named("app".into())) };
        state.image.apply(MetadataRecord::ClientQuota(ClientQuotaRecord { entity: entity.clone(), key: QuotaKey::ProducerByteRate, value: Some(1024.0) })).expect("applies");
        let read = State::decode(&encode(&state)).expect("format 4 reads").image;
        assert_eq!(read.client_quotas()[&entity][&QuotaKey::ProducerByteRate], 1024.0);
        // Format 3 had the same image without client quotas.
        let image = (
            BTreeMap::<BrokerId, BrokerImage>::new(),
            BTreeMap::<Uuid, crate::cluster::metadata::TopicImage>::new(),
            BTreeMap::<String, Uuid>::new(),
            BTreeMap::<Option<BrokerId>, BTreeMap<String, String>>::new(),
            9i64,
            crate::security::acl::Acls::default(),
            BTreeMap::<String, BTreeMap<crate::security::scram::ScramMechanism, crate::security::scram::ScramCredential>>::new(),
        );
        let v3 = State::decode(&rpc::encode(FORMAT_V3, &(None::<LogId<NodeId>>, Membership::default(), image))).expect("format 3 reads");
        assert_eq!(v3.image.next_producer_id(), 9);
        assert!(v3.image.client_quotas().is_empty());
    }
}
