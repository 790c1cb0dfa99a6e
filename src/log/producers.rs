//! Idempotent-producer sequence checks, per partition and producer id.
//!
//! Like Kafka, the broker remembers the last five batches of each producer, so a retried batch
//! (same sequence range) is answered with its original offset instead of being written twice,
//! and a gap in sequence numbers is refused.

use std::collections::VecDeque;

use kafka_protocol::ResponseError;

use super::batch::BatchHeader;

/// How many recent batches per producer are kept for duplicate detection (Kafka's value; it
/// matches the largest `max.in.flight.requests.per.connection` allowed with idempotence).
const RECENT_BATCHES: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct ProducerState {
    pub epoch: i16,
    recent: VecDeque<SeqRange>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct SeqRange {
    first: i32,
    last: i32,
    base_offset: i64,
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, PartialEq)]
pub enum SeqCheck {
    Append,
    /// Already written at this base offset.
    Duplicate(i64),
}

/// Sequence numbers wrap from i32::MAX to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq(header: &BatchHeader) -> i32 {
    let last = header.base_sequence() as i64 + header.last_offset_delta() as i64;
    (last % (i32::MAX as i64 + 1)) as i32
}

impl ProducerState {
    /// Checks a batch against this producer's state (`None`: never seen on this partition).
    pub fn check(state: Option<&ProducerState>, header: &BatchHeader) -> Result<SeqCheck, ResponseError> {
        let epoch = header.producer_epoch();
        let first = header.base_sequence();
        let Some(state) = state else {
            return if first == 0 { Ok(SeqCheck::Append) } else { Err(ResponseError::UnknownProducerId) };
        };
        if epoch < state.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if epoch > state.epoch {
            // A bumped epoch restarts the sequence.
            return if first == 0 { Ok(SeqCheck::Append) } else { Err(ResponseError::OutOfOrderSequenceNumber) };
        }
        let last = last_seq(header);
        if let Some(dup) = state.recent.iter().find(|r| r.first == first && r.last == last) {
            return Ok(SeqCheck::Duplicate(dup.base_offset));
        }
        match state.recent.back() {
            Some(prev) if first != next_seq(prev.last) => Err(ResponseError::OutOfOrderSequenceNumber),
            _ => Ok(SeqCheck::Append),
        }
    }

    /// The state after appending `header` at `base_offset`.
    pub fn after_append(state: Option<&ProducerState>, header: &BatchHeader, base_offset: i64) -> ProducerState {
        let mut next = match state {
            Some(s) if s.epoch == header.producer_epoch() => s.clone(),
            _ => ProducerState { epoch: header.producer_epoch(), recent: VecDeque::new() },
        };
        if next.recent.len() == RECENT_BATCHES {
            next.recent.pop_front();
        }
        next.recent.push_back(SeqRange { first: header.base_sequence(), last: last_seq(header), base_offset });
        next
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.recent.len() * 16);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        for r in &self.recent {
            out.extend_from_slice(&r.first.to_be_bytes());
            out.extend_from_slice(&r.last.to_be_bytes());
            out.extend_from_slice(&r.base_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ProducerState> {
        let (epoch, rest) = bytes.split_first_chunk::<2>()?;
        if rest.len() % 16 != 0 {
            return None;
        }
        let recent = rest
            .chunks_exact(16)
            .map(|c| SeqRange {
                first: i32::from_be_bytes(c[0..4].try_into().expect("4")),
                last: i32::from_be_bytes(c[4..8].try_into().expect("4")),
                base_offset: i64::from_be_bytes(c[8..16].try_into().expect("8")),
            })
            .collect();
        Some(ProducerState { epoch: i16::from_be_bytes(*epoch), recent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{encode_batch, BatchSpec};

    fn header_bytes(epoch: i16, seq: i32, count: i64) -> Vec<u8> {
        encode_batch(&BatchSpec { producer: Some((7, epoch, seq)), ..BatchSpec::values(count) })
    }

    #[test]
    fn sequence_rules() {
        let b0 = header_bytes(0, 0, 3);
        let h0 = BatchHeader::new(&b0).unwrap();
        assert_eq!(ProducerState::check(None, &h0), Ok(SeqCheck::Append));
        let s = ProducerState::after_append(None, &h0, 100);
        // The same batch again is a duplicate of offset 100.
        assert_eq!(ProducerState::check(Some(&s), &h0), Ok(SeqCheck::Duplicate(100)));
        // The next batch must start at sequence 3.
        let b1 = header_bytes(0, 3, 2);
        assert_eq!(ProducerState::check(Some(&s), &BatchHeader::new(&b1).unwrap()), Ok(SeqCheck::Append));
        let gap = header_bytes(0, 4, 1);
        assert_eq!(
            ProducerState::check(Some(&s), &BatchHeader::new(&gap).unwrap()),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        let late = header_bytes(0, 5, 1);
        assert_eq!(ProducerState::check(None, &BatchHeader::new(&late).unwrap()), Err(ResponseError::UnknownProducerId));
        let s1 = ProducerState::after_append(Some(&s), &BatchHeader::new(&header_bytes(1, 0, 1)).unwrap(), 200);
        assert_eq!(ProducerState::check(Some(&s1), &h0), Err(ResponseError::InvalidProducerEpoch));
        assert_eq!(ProducerState::decode(&s1.encode()), Some(s1));
    }
}
