//! One transactional id's state, its transitions, and its stored form.
//!
//! Transitions follow Kafka's TransactionMetadata: Empty -> Ongoing (AddPartitionsToTxn,
//! AddOffsetsToTxn) -> PrepareCommit | PrepareAbort (EndTxn, timeout, fencing) ->
//! CompleteCommit | CompleteAbort (markers written) -> Ongoing again with the next transaction.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka's DescribeTransactions and ListTransactions give the state.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub const ALL: [TxnState; 6] = [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::PrepareAbort, TxnState::CompleteCommit, TxnState::CompleteAbort];

    /// Markers are being written: the next request must wait (CONCURRENT_TRANSACTIONS).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset committed in a transaction, as format 1 held it here (the group holds them now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch before the last bump: a producer whose InitProducerId answer was lost,
    /// or whose transaction the coordinator aborted, may still name them (KIP-360).
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) the transaction wrote to, or may have; in a cluster also the
    /// `__consumer_offsets` partitions of its groups, whose markers complete their offsets.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
}

/// Format 1: the transaction held its groups' offsets itself.
#[derive(Deserialize)]
struct TxnMetaV1 {
    producer_id: i64,
    producer_epoch: i16,
    last_producer_id: i64,
    last_producer_epoch: i16,
    timeout_ms: i32,
    state: TxnState,
    partitions: BTreeSet<(String, i32)>,
    offsets: BTreeMap<String, Vec<PendingOffset>>,
    txn_start_ms: i64,
    last_update_ms: i64,
}

/// Offsets a format 1 state held, by group, for the groups to take over.
pub type LegacyOffsets = BTreeMap<String, Vec<PendingOffset>>;

/// Kafka bumps to a new producer id rather than reach the largest epoch.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// The first byte of the stored form, for a later change of it.
const FORMAT: u8 = 2;
const FORMAT_1: u8 = 1;

impl TxnMeta {
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMeta {
        TxnMeta {
            producer_id,
            producer_epoch: 0,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            txn_start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Whether the next epoch needs a new producer id.
    pub fn epoch_exhausted(&self) -> bool {
        self.producer_epoch >= MAX_EPOCH
    }

    /// A transaction has ended at an epoch that cannot be bumped again: the next one needs a
    /// new producer id (transactions v2 hand it on in the EndTxn answer).
    pub fn ended_at_last_epoch(&self) -> bool {
        self.epoch_exhausted() && matches!(self.state, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }

    /// Bumps the epoch, remembering the one before. The largest epoch is only ever reached by
    /// the bump that fences a transaction; the next InitProducerId then moves to a new id.
    pub fn bump_epoch(&mut self) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        self.producer_epoch = self.producer_epoch.saturating_add(1);
    }

    /// Moves to a new producer id at epoch 0.
    pub fn rotate_producer_id(&mut self, producer_id: i64) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        self.producer_id = producer_id;
        self.producer_epoch = 0;
    }

    /// Checks a request's producer id and epoch against this state: an unknown id is
    /// INVALID_PRODUCER_ID_MAPPING, an older epoch PRODUCER_FENCED, a newer one (which no
    /// coordinator handed out) INVALID_PRODUCER_EPOCH.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        match producer_epoch.cmp(&self.producer_epoch) {
            std::cmp::Ordering::Less => Err(ResponseError::ProducerFenced),
            std::cmp::Ordering::Greater => Err(ResponseError::InvalidProducerEpoch),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// A batch's epoch against this state's: an older one was fenced, a newer one was never
    /// handed out.
    pub fn check_producer_epoch(&self, producer_epoch: i16) -> Result<(), ResponseError> {
        match producer_epoch.cmp(&self.producer_epoch) {
            std::cmp::Ordering::Less => Err(ResponseError::InvalidProducerEpoch),
            std::cmp::Ordering::Greater => Err(ResponseError::InvalidTxnState),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Whether the open transaction holds the partition (a batch may be written there).
    pub fn check_holds(&self, topic: &str, partition: i32) -> Result<(), ResponseError> {
        if self.state != TxnState::Ongoing || !self.partitions.iter().any(|(t, p)| t == topic && *p == partition) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Whether partitions or a group may be added now (not while markers are written).
    pub fn check_can_add(&self) -> Result<(), ResponseError> {
        if self.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// Opens the transaction if it is not already.
    pub fn begin(&mut self, now_ms: i64) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.txn_start_ms = now_ms;
        }
        self.last_update_ms = now_ms;
    }

    /// Starts ending the transaction (EndTxn): `Ok(true)` when markers must now be written,
    /// `Ok(false)` for a retry of an end already done.
    pub fn prepare_end(&mut self, commit: bool, now_ms: i64) -> Result<bool, ResponseError> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                self.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                self.last_update_ms = now_ms;
                Ok(true)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(ResponseError::ConcurrentTransactions),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(false),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// EndTxn of transactions v2 (KIP-890 part 2), after the producer id is checked: every end
    /// bumps the epoch, so a late batch of the ended transaction is refused instead of joining
    /// the next, and the markers carry the new epoch. `Ok(true)` when markers must now be
    /// written. A retry names the epoch before the bump and finds its end begun or done. An
    /// abort at the current epoch with no transaction open (its batches never arrived) still
    /// bumps, fencing them, with nothing to mark.
    pub fn prepare_end_v2(&mut self, epoch: i16, commit: bool, now_ms: i64) -> Result<bool, ResponseError> {
        let current = epoch == self.producer_epoch;
        let retry = !current && self.last_producer_id == self.producer_id && epoch == self.last_producer_epoch;
        match (self.state, commit) {
            (TxnState::Ongoing, _) if current => {
                self.bump_epoch();
                self.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                self.last_update_ms = now_ms;
                Ok(true)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) if retry => Err(ResponseError::ConcurrentTransactions),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if retry => Ok(false),
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) if current => {
                self.bump_epoch();
                self.state = TxnState::CompleteAbort;
                self.last_update_ms = now_ms;
                Ok(false)
            }
            _ if !current => self.check_producer(self.producer_id, epoch).map(|()| false),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The markers are written (and the offsets stored): the transaction is over.
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        self.partitions.clear();
        self.groups.clear();
        self.txn_start_ms = -1;
        self.last_update_ms = now_ms;
    }

    /// Whether an open transaction has run past its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms.saturating_sub(self.txn_start_ms) > i64::from(self.timeout_ms)
    }

    /// Whether an idle id is old enough to forget (`transactional.id.expiration.ms`).
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(self.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort) && now_ms.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend(bincode::serialize(self).expect("a transaction state serializes"));
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TxnMeta> {
        Self::decode_with_offsets(bytes).map(|(m, _)| m)
    }

    /// Decodes either format; a format 1 state comes with the offsets it held.
    pub fn decode_with_offsets(bytes: &[u8]) -> Option<(TxnMeta, LegacyOffsets)> {
        match bytes.split_first() {
            Some((&FORMAT, rest)) => bincode::deserialize(rest).ok().map(|m| (m, LegacyOffsets::new())),
            Some((&FORMAT_1, rest)) => {
                let v1: TxnMetaV1 = bincode::deserialize(rest).ok()?;
                let meta = TxnMeta {
                    producer_id: v1.producer_id,
                    producer_epoch: v1.producer_epoch,
                    last_producer_id: v1.last_producer_id,
                    last_producer_epoch: v1.last_producer_epoch,
                    timeout_ms: v1.timeout_ms,
                    state: v1.state,
                    partitions: v1.partitions,
                    groups: v1.offsets.keys().cloned().collect(),
                    txn_start_ms: v1.txn_start_ms,
                    last_update_ms: v1.last_update_ms,
                };
                Some((meta, v1.offsets))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMeta {
        let mut m = TxnMeta::new(7, 60_000, 1000);
        m.begin(1000);
        m.partitions.insert(("t".into(), 0));
        m
    }

    #[test]
    fn end_txn_transitions_as_kafka() {
        let mut m = ongoing();
        assert_eq!(m.prepare_end(true, 2000), Ok(true));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(m.prepare_end(true, 2000), Err(ResponseError::ConcurrentTransactions), "a retry while markers are written");
        assert_eq!(m.prepare_end(false, 2000), Err(ResponseError::InvalidTxnState));
        assert_eq!(m.check_can_add(), Err(ResponseError::ConcurrentTransactions));
        m.complete(3000);
        assert_eq!((m.state, m.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(m.prepare_end(true, 3000), Ok(false), "a retry after the commit succeeds");
        assert_eq!(m.prepare_end(false, 3000), Err(ResponseError::InvalidTxnState));
        let empty = TxnMeta::new(8, 60_000, 0);
        assert_eq!(empty.clone().prepare_end(true, 0), Err(ResponseError::InvalidTxnState));
    }

    #[test]
    fn end_txn_v2_bumps_the_epoch_and_knows_its_retries() {
        let mut m = ongoing();
        assert_eq!(m.prepare_end_v2(0, true, 2000), Ok(true));
        assert_eq!((m.state, m.producer_epoch, m.last_producer_epoch), (TxnState::PrepareCommit, 1, 0));
        assert_eq!(m.prepare_end_v2(0, true, 2000), Err(ResponseError::ConcurrentTransactions), "a retry while markers are written");
        assert_eq!(m.prepare_end_v2(0, false, 2000), Err(ResponseError::ProducerFenced), "the old epoch only retries");
        m.complete(3000);
        assert_eq!(m.prepare_end_v2(0, true, 3000), Ok(false), "a retry after the commit succeeds");
        assert_eq!(m.producer_epoch, 1, "a retry bumps nothing");
        assert_eq!(m.prepare_end_v2(1, true, 3000), Err(ResponseError::InvalidTxnState), "nothing to commit at the new epoch");
        // An abort with nothing open fences what may still be on its way, writing no marker.
        assert_eq!(m.prepare_end_v2(1, false, 3000), Ok(false));
        assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, 2));
        // Fenced by InitProducerId (twice bumped with a transaction open): the zombie's end is refused.
        let mut fenced = ongoing();
        fenced.bump_epoch();
        fenced.state = TxnState::CompleteAbort;
        fenced.bump_epoch();
        fenced.state = TxnState::Empty;
        assert_eq!(fenced.prepare_end_v2(0, false, 3000), Err(ResponseError::ProducerFenced));
        assert_eq!(fenced.prepare_end_v2(3, true, 3000), Err(ResponseError::InvalidProducerEpoch));
        // The zombie of an ongoing transaction's next producer cannot end that transaction.
        fenced.begin(3000);
        assert_eq!(fenced.prepare_end_v2(1, true, 3000), Err(ResponseError::ProducerFenced));
    }

    #[test]
    fn producers_are_checked_by_id_and_epoch() {
        let mut m = ongoing();
        m.bump_epoch();
        assert_eq!(m.check_producer(7, 1), Ok(()));
        assert_eq!(m.check_producer(7, 0), Err(ResponseError::ProducerFenced));
        assert_eq!(m.check_producer(7, 2), Err(ResponseError::InvalidProducerEpoch));
        assert_eq!(m.check_producer(8, 1), Err(ResponseError::InvalidProducerIdMapping));
        assert_eq!((m.last_producer_id, m.last_producer_epoch), (7, 0));
    }

    #[test]
    fn timeouts_and_expiry() {
        let m = ongoing();
        assert!(!m.timed_out(61_000));
        assert!(m.timed_out(61_001));
        assert!(!m.expired(i64::MAX, 1), "an open transaction never expires");
        let mut done = m.clone();
        done.prepare_end(false, 2000).unwrap();
        done.complete(2000);
        assert!(done.expired(12_000, 10_000));
        assert!(!done.expired(11_999, 10_000));
    }

    #[test]
    fn stored_form_round_trips() {
        let mut m = ongoing();
        m.groups.insert("g".into());
        assert_eq!(TxnMeta::decode(&m.encode()), Some(m.clone()));
        // Format 1 held the offsets; they come back for the group to take.
        #[derive(Serialize)]
        struct V1<'a>(i64, i16, i64, i16, i32, TxnState, &'a BTreeSet<(String, i32)>, BTreeMap<String, Vec<PendingOffset>>, i64, i64);
        let held = PendingOffset { topic: "t".into(), partition: 1, offset: 5, leader_epoch: -1, metadata: None };
        let v1 = V1(m.producer_id, m.producer_epoch, m.last_producer_id, m.last_producer_epoch, m.timeout_ms, m.state, &m.partitions, [("g".to_string(), vec![held.clone()])].into(), m.txn_start_ms, m.last_update_ms);
        let stored = [vec![FORMAT_1], bincode::serialize(&v1).unwrap()].concat();
        assert_eq!(TxnMeta::decode_with_offsets(&stored), Some((m, [("g".to_string(), vec![held])].into())));
        assert_eq!(TxnMeta::decode(&[9, 1, 2]), None);
        assert_eq!(TxnMeta::decode(&[]), None);
    }
}
