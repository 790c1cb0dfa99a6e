//! Idempotent-producer state, per partition and producer id (Kafka's ProducerStateManager).
//!
//! Like Kafka, the broker remembers the last five batches of each producer, so a retried batch
//! (same epoch and sequence range) is answered with its original offset instead of being
//! written twice, and a gap in sequence numbers is refused. The checks answer as Kafka 3.x and
//! 4.x do (UnifiedLog.analyzeAndValidateProducerState, then ProducerAppendInfo's
//! `checkProducerEpoch` and `checkSequence`):
//!
//! | batch | answer |
//! |---|---|
//! | same epoch and sequence range as one of the last five batches | the original base offset and timestamp, no error |
//! | producer unknown here (new, or its state expired) | appended, whatever its sequence |
//! | epoch older than the last one seen | INVALID_PRODUCER_EPOCH |
//! | newer epoch, sequence 0 | appended; the new epoch starts over |
//! | newer epoch, another sequence | OUT_OF_ORDER_SEQUENCE_NUMBER |
//! | same epoch, next sequence | appended |
//! | same epoch, any other sequence (a gap, or a retry older than the last five) | OUT_OF_ORDER_SEQUENCE_NUMBER |
//!
//! Kafka has not answered a produce with UNKNOWN_PRODUCER_ID since KIP-360 (2.5): a producer
//! whose state expired keeps producing with its next sequence, and clients count on that.
//!
//! A producer is forgotten once its last batch's timestamp is `producer.id.expiration.ms` old
//! ([`expired`]), as Kafka's `removeExpiredProducers` does.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::ResponseError;

use super::batch::{BatchHeader, HEADER_LEN};

/// How many recent batches per producer are kept for duplicate detection (Kafka's value; it
/// matches the largest `max.in.flight.requests.per.connection` allowed with idempotence).
const RECENT_BATCHES: usize = 5;

/// Kafka's RecordBatch.NO_PRODUCER_EPOCH, NO_SEQUENCE and NO_TIMESTAMP.
const NO_EPOCH: i16 = -1;
const NO_SEQUENCE: i32 = -1;
const NO_TIMESTAMP: i64 = -1;
/// Kafka's RecordBatch.NO_PARTITION_LEADER_EPOCH, the coordinator epoch before any marker.
const NO_COORDINATOR_EPOCH: i32 = -1;

#[derive(Debug, Clone, PartialEq)]
pub struct ProducerState {
    epoch: i16,
    /// The last batch's max timestamp (Kafka's lastTimestamp); expiry counts from it.
    last_timestamp: i64,
    /// The coordinator epoch of the last transaction marker, -1 before any (Kafka's
    /// coordinatorEpoch): a marker from an older coordinator is refused.
    coordinator_epoch: i32,
    recent: VecDeque<BatchMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    /// The batch's max timestamp as stored (the append time on LogAppendTime topics).
    timestamp: i64,
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, PartialEq)]
pub enum SeqCheck {
    Append,
    /// Already written: Kafka answers the retry with the original batch's base offset, and with
    /// its timestamp as the log append time, whatever the topic's timestamp type.
    Duplicate { base_offset: i64, timestamp: i64 },
}

/// Kafka's `inSequence`: sequence numbers wrap from i32::MAX to 0.
fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

/// Kafka's RecordBatch.lastSequence.
fn last_seq(header: &BatchHeader) -> i32 {
    let first = header.base_sequence();
    if first == NO_SEQUENCE {
        return NO_SEQUENCE;
    }
    let last = first as i64 + header.last_offset_delta() as i64;
    (last % (i32::MAX as i64 + 1)) as i32
}

impl ProducerState {
    /// Checks a batch against this producer's state (`None`: not known on this partition).
    pub fn check(state: Option<&ProducerState>, header: &BatchHeader) -> Result<SeqCheck, ResponseError> {
        let epoch = header.producer_epoch();
        let first = header.base_sequence();
        if let Some(dup) = state.filter(|s| s.epoch == epoch).and_then(|s| s.recent.iter().find(|b| b.first_seq == first && b.last_seq == last_seq(header))) {
            return Ok(SeqCheck::Duplicate { base_offset: dup.base_offset, timestamp: dup.timestamp });
        }
        // Kafka checks an unknown producer against an empty entry of epoch -1.
        let current = state.map_or(NO_EPOCH, |s| s.epoch);
        if epoch < current {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if current == NO_EPOCH {
            return Ok(SeqCheck::Append);
        }
        let follows = if epoch > current { first == 0 } else { state.and_then(|s| s.recent.back()).is_none_or(|b| in_sequence(b.last_seq, first)) };
        if follows {
            Ok(SeqCheck::Append)
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber)
        }
    }

    /// The state after appending `header` at `base_offset`, with `timestamp` its max timestamp
    /// as stored.
    pub fn after_append(state: Option<&ProducerState>, header: &BatchHeader, base_offset: i64, timestamp: i64) -> ProducerState {
        let epoch = header.producer_epoch();
        let mut next = match state {
            Some(s) if s.epoch == epoch => s.clone(),
            _ => ProducerState { epoch, last_timestamp: timestamp, coordinator_epoch: state.map_or(NO_COORDINATOR_EPOCH, |s| s.coordinator_epoch), recent: VecDeque::new() },
        };
        if next.recent.len() == RECENT_BATCHES {
            next.recent.pop_front();
        }
        next.recent.push_back(BatchMeta { first_seq: header.base_sequence(), last_seq: last_seq(header), base_offset, timestamp });
        next.last_timestamp = timestamp;
        next
    }

    /// The state after a transaction marker of `epoch` from coordinator epoch
    /// `coordinator_epoch` (`None`: an unreadable control record): a marker is no batch of the
    /// producer's sequence (its next batch follows the last data batch), but a newer epoch (the
    /// coordinator's bump when it aborts a timed-out transaction) fences the older one here too.
    pub fn after_marker(state: Option<&ProducerState>, epoch: i16, coordinator_epoch: Option<i32>, timestamp: i64) -> ProducerState {
        let mut next = match state {
            Some(s) if s.epoch >= epoch => ProducerState { last_timestamp: s.last_timestamp.max(timestamp), ..s.clone() },
            _ => ProducerState { epoch, last_timestamp: timestamp, coordinator_epoch: state.map_or(NO_COORDINATOR_EPOCH, |s| s.coordinator_epoch), recent: VecDeque::new() },
        };
        if let Some(c) = coordinator_epoch {
            next.coordinator_epoch = c;
        }
        next
    }

    /// A leader's check of a marker before it is written (Kafka's appendEndTxnMarker): an
    /// epoch older than the producer's is INVALID_PRODUCER_EPOCH, a coordinator epoch older
    /// than the last marker's TRANSACTION_COORDINATOR_FENCED.
    pub fn check_marker(state: Option<&ProducerState>, epoch: i16, coordinator_epoch: i32) -> Result<(), ResponseError> {
        let Some(s) = state else { return Ok(()) };
        if epoch < s.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if coordinator_epoch < s.coordinator_epoch {
            return Err(ResponseError::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// DescribeProducers' view: (epoch, last sequence or -1, last timestamp, coordinator epoch).
    pub fn describe(&self) -> (i16, i32, i64, i32) {
        (self.epoch, self.recent.back().map_or(NO_SEQUENCE, |b| b.last_seq), self.last_timestamp, self.coordinator_epoch)
    }

    /// Whether a batch it remembers starts at or after `offset` (a truncation there changes it).
    pub fn remembers_from(&self, offset: i64) -> bool {
        self.recent.back().is_some_and(|b| b.base_offset >= offset)
    }

    /// The state with its batches from `offset` on forgotten, when that needs no reading: a
    /// batch is left, and the window was never full, so it held every batch of the epoch.
    /// `None` when the log must be read ([`Rebuild`]).
    pub fn truncated(&self, offset: i64) -> Option<ProducerState> {
        if self.recent.len() == RECENT_BATCHES {
            return None;
        }
        let recent: VecDeque<BatchMeta> = self.recent.iter().filter(|b| b.base_offset < offset).copied().collect();
        let last = recent.back()?.timestamp;
        // A state of the first stored form has no batch times: it keeps its load time.
        let last_timestamp = if last == NO_TIMESTAMP { self.last_timestamp } else { last };
        Some(ProducerState { epoch: self.epoch, last_timestamp, coordinator_epoch: self.coordinator_epoch, recent })
    }

    /// Kafka's `isProducerExpired` (the store keeps producers with an open transaction).
    fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_timestamp) >= expiration_ms
    }

    /// Stored form: a format byte, the epoch, the last timestamp, the coordinator epoch, then
    /// per recent batch its first and last sequence, base offset and timestamp. Its length is
    /// 15 more than a multiple of 24. The earlier forms: format 1 had no coordinator epoch (11
    /// more), the first form (epoch, then first and last sequence and base offset per batch,
    /// no times) is 2 more than a multiple of 16, so [`ProducerState::decode`] tells them apart.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_HEADER + self.recent.len() * BATCH_META);
        out.push(FORMAT);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.last_timestamp.to_be_bytes());
        out.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        for b in &self.recent {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.timestamp.to_be_bytes());
        }
        out
    }

    /// Reads either stored form. A state of the first form has no times: it counts as written
    /// at `loaded_at`, so it lasts a full expiration from the start that reads it, and its
    /// duplicates answer with no timestamp (-1).
    pub fn decode(bytes: &[u8], loaded_at: i64) -> Option<ProducerState> {
        let meta = |c: &[u8], timestamp: Option<i64>| {
            Some(BatchMeta {
                first_seq: i32::from_be_bytes(be(c, 0)?),
                last_seq: i32::from_be_bytes(be(c, 4)?),
                base_offset: i64::from_be_bytes(be(c, 8)?),
                timestamp: timestamp.or_else(|| be(c, 16).map(i64::from_be_bytes))?,
            })
        };
        for (format, header) in [(FORMAT, STATE_HEADER), (FORMAT_1, FORMAT_1_HEADER)] {
            if bytes.first() == Some(&format) && bytes.len() % BATCH_META == header {
                let recent = bytes[header..].chunks_exact(BATCH_META).map(|c| meta(c, None)).collect::<Option<_>>()?;
                let coordinator_epoch = if format == FORMAT { i32::from_be_bytes(be(bytes, 11)?) } else { NO_COORDINATOR_EPOCH };
                return Some(ProducerState { epoch: i16::from_be_bytes(be(bytes, 1)?), last_timestamp: i64::from_be_bytes(be(bytes, 3)?), coordinator_epoch, recent });
            }
        }
        if bytes.len() % FIRST_FORM_BATCH_META != 2 {
            return None;
        }
        let recent = bytes[2..].chunks_exact(FIRST_FORM_BATCH_META).map(|c| meta(c, Some(NO_TIMESTAMP))).collect::<Option<_>>()?;
        Some(ProducerState { epoch: i16::from_be_bytes(be(bytes, 0)?), last_timestamp: loaded_at, coordinator_epoch: NO_COORDINATOR_EPOCH, recent })
    }
}

/// Rebuilds producers' states from the batches left before a truncation point (Kafka's
/// truncateAndReload), fed newest first: each producer gets back its last [`RECENT_BATCHES`]
/// batches of its latest epoch, so retries after a leader change are deduplicated as before.
pub struct Rebuild {
    /// Per producer, the headers found so far (newest first) and whether it has all it needs.
    wanted: HashMap<i64, (Vec<[u8; HEADER_LEN]>, bool)>,
    open: usize,
}

impl Rebuild {
    pub fn new(producers: impl IntoIterator<Item = i64>) -> Rebuild {
        let wanted: HashMap<_, _> = producers.into_iter().map(|pid| (pid, (Vec::new(), false))).collect();
        Rebuild { open: wanted.len(), wanted }
    }

    /// Whether every producer has all it needs (reading further back would change nothing).
    pub fn complete(&self) -> bool {
        self.open == 0
    }

    /// Takes the next older batch.
    pub fn older(&mut self, header: &BatchHeader) {
        let Some((found, done)) = self.wanted.get_mut(&header.producer_id()) else { return };
        // A batch of an older epoch than the newest found: the newer epoch forgot it.
        let other_epoch = found.first().is_some_and(|h| BatchHeader::new(h).expect("a header").producer_epoch() != header.producer_epoch());
        if *done || other_epoch {
            self.open -= usize::from(!*done);
            *done = true;
            return;
        }
        found.push(header.header_bytes());
        if found.len() == RECENT_BATCHES {
            *done = true;
            self.open -= 1;
        }
    }

    /// The rebuilt states; `None` for a producer none of whose batches was found.
    pub fn finish(self) -> impl Iterator<Item = (i64, Option<ProducerState>)> {
        self.wanted.into_iter().map(|(pid, (found, _))| {
            let state = found.iter().rev().fold(None, |state, bytes| {
                let h = BatchHeader::new(bytes).expect("a header");
                Some(ProducerState::after_append(state.as_ref(), &h, h.base_offset(), h.max_timestamp()))
            });
            (pid, state)
        })
    }
}

/// `N` bytes at `at`, for a big-endian number.
fn be<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

/// The stored form's first byte, its header length, and the length of one batch in it.
const FORMAT: u8 = 2;
const STATE_HEADER: usize = 1 + 2 + 8 + 4;
/// Format 1: no coordinator epoch.
const FORMAT_1: u8 = 1;
const FORMAT_1_HEADER: usize = 1 + 2 + 8;
const BATCH_META: usize = 4 + 4 + 8 + 8;
/// One batch in the first stored form.
const FIRST_FORM_BATCH_META: usize = 4 + 4 + 8;

/// The producers whose last batch is `expiration_ms` old at `now_ms` (`producer.id.expiration.ms`).
pub fn expired(producers: &HashMap<i64, ProducerState>, now_ms: i64, expiration_ms: i64) -> Vec<i64> {
    producers.iter().filter(|(_, s)| s.is_expired(now_ms, expiration_ms)).map(|(&pid, _)| pid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{encode_batch, BatchSpec};

    fn batch(epoch: i16, seq: i32, count: i64) -> Vec<u8> {
        encode_batch(&BatchSpec { producer: Some((7, epoch, seq)), ..BatchSpec::values(count) })
    }

    fn check(state: Option<&ProducerState>, bytes: &[u8]) -> Result<SeqCheck, ResponseError> {
        ProducerState::check(state, &BatchHeader::new(bytes).unwrap())
    }

    /// The state after appending `batches` (epoch, first sequence, records) at offsets 100,
    /// 200, ... with timestamps 1000, 2000, ...
    fn state_after(batches: &[(i16, i32, i64)]) -> ProducerState {
        let mut state = None;
        for (i, &(epoch, seq, count)) in batches.iter().enumerate() {
            let bytes = batch(epoch, seq, count);
            let n = i as i64 + 1;
            state = Some(ProducerState::after_append(state.as_ref(), &BatchHeader::new(&bytes).unwrap(), 100 * n, 1000 * n));
        }
        state.expect("at least one batch")
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        assert_eq!(check(None, &batch(0, 0, 3)), Ok(SeqCheck::Append));
        // E.g. a producer whose state expired, going on with its next batch (Kafka: no
        // UNKNOWN_PRODUCER_ID since KIP-360).
        assert_eq!(check(None, &batch(0, 42, 1)), Ok(SeqCheck::Append));
        assert_eq!(check(None, &batch(3, i32::MAX, 1)), Ok(SeqCheck::Append));
        // Below Kafka's "no epoch" (-1) even an unknown producer's epoch is too old.
        assert_eq!(check(None, &batch(-2, 0, 1)), Err(ResponseError::InvalidProducerEpoch));
    }

    #[test]
    fn the_next_sequence_is_appended_and_a_gap_is_out_of_order() {
        let s = state_after(&[(0, 0, 3)]);
        assert_eq!(check(Some(&s), &batch(0, 3, 2)), Ok(SeqCheck::Append));
        assert_eq!(check(Some(&s), &batch(0, 4, 1)), Err(ResponseError::OutOfOrderSequenceNumber));
        assert_eq!(check(Some(&s), &batch(0, 1, 1)), Err(ResponseError::OutOfOrderSequenceNumber), "inside the last batch, not its range");
    }

    #[test]
    fn sequences_wrap_to_zero() {
        let s = state_after(&[(0, i32::MAX - 1, 2)]);
        assert_eq!(check(Some(&s), &batch(0, 0, 1)), Ok(SeqCheck::Append));
        assert_eq!(check(Some(&s), &batch(0, 1, 1)), Err(ResponseError::OutOfOrderSequenceNumber));
    }

    #[test]
    fn retries_of_the_last_five_batches_get_their_original_offset() {
        let batches: Vec<(i16, i32, i64)> = (0..6).map(|i| (0, 2 * i, 2)).collect();
        let s = state_after(&batches);
        // Batches 2..=6 (sequences 2..12) are remembered, at offsets 200..600.
        for n in 2..=6 {
            let seq = 2 * (n as i32 - 1);
            assert_eq!(check(Some(&s), &batch(0, seq, 2)), Ok(SeqCheck::Duplicate { base_offset: 100 * n, timestamp: 1000 * n }));
        }
        // The first one has dropped out: Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER (it has
        // no DUPLICATE_SEQUENCE_NUMBER answer any more).
        assert_eq!(check(Some(&s), &batch(0, 0, 2)), Err(ResponseError::OutOfOrderSequenceNumber));
        // Same first sequence, other length: not the same batch.
        assert_eq!(check(Some(&s), &batch(0, 10, 1)), Err(ResponseError::OutOfOrderSequenceNumber));
    }

    #[test]
    fn epochs_older_are_refused_newer_ones_start_at_zero() {
        let s = state_after(&[(0, 0, 3), (1, 0, 2)]);
        assert_eq!(check(Some(&s), &batch(0, 0, 3)), Err(ResponseError::InvalidProducerEpoch), "a retry from an older epoch is no duplicate");
        assert_eq!(check(Some(&s), &batch(0, 2, 1)), Err(ResponseError::InvalidProducerEpoch));
        assert_eq!(check(Some(&s), &batch(1, 0, 2)), Ok(SeqCheck::Duplicate { base_offset: 200, timestamp: 2000 }));
        assert_eq!(check(Some(&s), &batch(2, 0, 1)), Ok(SeqCheck::Append));
        assert_eq!(check(Some(&s), &batch(2, 2, 1)), Err(ResponseError::OutOfOrderSequenceNumber));
        // The new epoch forgets the old one's batches.
        assert_eq!(s.recent.len(), 1);
    }

    #[test]
    fn a_marker_of_an_older_producer_or_coordinator_epoch_is_refused() {
        assert_eq!(ProducerState::check_marker(None, 0, 0), Ok(()), "an unknown producer takes any marker");
        let s = ProducerState::after_marker(Some(&state_after(&[(1, 0, 3)])), 1, Some(4), 5000);
        assert_eq!(s.describe(), (1, 2, 5000, 4));
        assert_eq!(ProducerState::check_marker(Some(&s), 0, 4), Err(ResponseError::InvalidProducerEpoch));
        assert_eq!(ProducerState::check_marker(Some(&s), 1, 3), Err(ResponseError::TransactionCoordinatorFenced));
        assert_eq!(ProducerState::check_marker(Some(&s), 1, 4), Ok(()));
        assert_eq!(ProducerState::check_marker(Some(&s), 2, 5), Ok(()));
        // A data batch keeps the coordinator epoch; a new epoch's batch too.
        let next = ProducerState::after_append(Some(&s), &BatchHeader::new(&batch(2, 0, 1)).unwrap(), 10, 6000);
        assert_eq!(next.describe(), (2, 0, 6000, 4));
    }

    #[test]
    fn a_producer_expires_when_its_last_batch_is_old_enough() {
        let s = state_after(&[(0, 0, 1), (0, 1, 1)]);
        assert_eq!(s.last_timestamp, 2000);
        let producers = HashMap::from([(7, s.clone()), (8, state_after(&[(0, 0, 1)]))]);
        assert!(expired(&producers, 1499, 500).is_empty());
        assert_eq!(expired(&producers, 1500, 500), vec![8], "Kafka expires at exactly the expiration");
        let mut both = expired(&producers, 2500, 500);
        both.sort();
        assert_eq!(both, vec![7, 8]);
    }

    #[test]
    fn every_stored_form_decodes() {
        let s = state_after(&[(0, 0, 3), (0, 3, 2)]);
        assert_eq!(ProducerState::decode(&s.encode(), 0), Some(s.clone()));
        let empty = ProducerState { epoch: 2, last_timestamp: 9, coordinator_epoch: 3, recent: VecDeque::new() };
        assert_eq!(ProducerState::decode(&empty.encode(), 0), Some(empty.clone()));
        // Format 1 had no coordinator epoch: read as none yet.
        let mut format_1 = vec![FORMAT_1];
        format_1.extend_from_slice(&2i16.to_be_bytes());
        format_1.extend_from_slice(&9i64.to_be_bytes());
        assert_eq!(ProducerState::decode(&format_1, 0), Some(ProducerState { coordinator_epoch: NO_COORDINATOR_EPOCH, ..empty }));

        // What data directories written before expiry hold: epoch, then (first, last, offset).
        let mut first_form = 0i16.to_be_bytes().to_vec();
        for (first, last, offset) in [(0i32, 2i32, 100i64), (3, 4, 200)] {
            first_form.extend_from_slice(&first.to_be_bytes());
            first_form.extend_from_slice(&last.to_be_bytes());
            first_form.extend_from_slice(&offset.to_be_bytes());
        }
        let old = ProducerState::decode(&first_form, 5000).unwrap();
        assert_eq!(old.last_timestamp, 5000, "counts as written when loaded");
        assert_eq!(check(Some(&old), &batch(0, 3, 2)), Ok(SeqCheck::Duplicate { base_offset: 200, timestamp: NO_TIMESTAMP }));
        assert_eq!(check(Some(&old), &batch(0, 5, 1)), Ok(SeqCheck::Append));
        assert_eq!(ProducerState::decode(&old.encode(), 0), Some(old));

        assert_eq!(ProducerState::decode(&[], 0), None);
        assert_eq!(ProducerState::decode(&[FORMAT, 0, 0], 0), None);
        assert_eq!(ProducerState::decode(&first_form[..20], 0), None);
    }
}
