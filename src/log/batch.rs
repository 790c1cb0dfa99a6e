//! The v2 record batch header: enough to validate a producer's batch and to place it in the log,
//! without decoding (or decompressing) its records.

use kafka_protocol::ResponseError;

/// Byte offsets of the header fields (Kafka's DefaultRecordBatch layout).
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;
pub const HEADER_LEN: usize = 61;

/// Bytes before the batch length field ends; `batch_length` counts what follows.
const LOG_OVERHEAD: usize = 12;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// A view of one batch's header fields.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// Reads the header of a batch already known to be at least `HEADER_LEN` long.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= HEADER_LEN).then_some(BatchHeader { bytes })
    }

    fn i16_at(&self, at: usize) -> i16 {
        i16::from_be_bytes([self.bytes[at], self.bytes[at + 1]])
    }
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }
    fn i64_at(&self, at: usize) -> i64 {
        i64::from_be_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    pub fn base_offset(&self) -> i64 {
        self.i64_at(BASE_OFFSET)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(LEADER_EPOCH)
    }
    /// The CRC-32C the batch carries (over attributes to the end), as stored.
    pub fn crc(&self) -> u32 {
        self.i32_at(CRC) as u32
    }
    pub fn attributes(&self) -> i16 {
        self.i16_at(ATTRIBUTES)
    }
    pub fn compression(&self) -> i16 {
        self.attributes() & COMPRESSION_MASK
    }
    pub fn log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_LOG_APPEND != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        self.i64_at(PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        self.i16_at(PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        self.i32_at(RECORD_COUNT)
    }
    /// The records section (possibly compressed).
    pub fn records(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }
    /// The header's own bytes, to keep without the records.
    pub fn header_bytes(&self) -> [u8; HEADER_LEN] {
        self.bytes[..HEADER_LEN].try_into().expect("a header")
    }
}

/// The whole size a batch's length field gives, if the bytes hold a header and the length
/// covers one.
fn declared_len(records: &[u8]) -> Option<usize> {
    let length = i32::from_be_bytes(records.get(BATCH_LENGTH..LEADER_EPOCH)?.try_into().expect("4"));
    usize::try_from(length).ok()?.checked_add(LOG_OVERHEAD).filter(|&t| t >= HEADER_LEN && records.len() >= HEADER_LEN)
}

/// Checks a partition's record set from a produce request: exactly one batch (Kafka refuses
/// more since Produce v3, with INVALID_RECORD), v2 magic, lengths that add up, CRC-32C, a
/// record count that matches the offset delta, no control batch. Nothing is decompressed.
pub fn validate_produced(records: &[u8], message_max_bytes: usize) -> Result<&[u8], ResponseError> {
    let total = declared_len(records).filter(|&t| t <= records.len()).ok_or(ResponseError::CorruptMessage)?;
    if total > message_max_bytes {
        return Err(ResponseError::MessageTooLarge);
    }
    let batch = &records[..total];
    validate(batch)?;
    if total < records.len() {
        return Err(ResponseError::InvalidRecord);
    }
    Ok(batch)
}

fn validate(batch: &[u8]) -> Result<(), ResponseError> {
    if batch[MAGIC] != 2 {
        // Produce v3+ carries only v2 batches; older formats are not accepted.
        return Err(ResponseError::UnsupportedForMessageFormat);
    }
    let header = BatchHeader { bytes: batch };
    let stored_crc = u32::from_be_bytes(batch[CRC..ATTRIBUTES].try_into().expect("4"));
    if crc32c::crc32c(&batch[ATTRIBUTES..]) != stored_crc {
        return Err(ResponseError::CorruptMessage);
    }
    let count = header.record_count();
    if count <= 0 || header.last_offset_delta() != count - 1 {
        return Err(ResponseError::InvalidRecord);
    }
    // A record takes at least a few bytes even compressed; this stops absurd counts early.
    if header.compression() == 0 && (count as usize) > header.records().len() {
        return Err(ResponseError::CorruptMessage);
    }
    // Only the transaction coordinator writes control batches (markers).
    if header.is_control() {
        return Err(ResponseError::InvalidRecord);
    }
    Ok(())
}

/// Splits what a follower fetched from its leader into batches stored as they are (base
/// offsets and leader epochs already the leader's), checking each one's magic, length and
/// CRC-32C. Record counts are not held to the offset range: the cleaner's rewritten batches
/// keep their range with fewer records. A partial batch at the end (a fetch may stop inside
/// one) is left for the next fetch, as Kafka's followers do.
pub fn split_replicated(mut records: &[u8]) -> Result<Vec<&[u8]>, ResponseError> {
    let mut batches = Vec::new();
    while records.len() >= HEADER_LEN {
        let total = declared_len(records).ok_or(ResponseError::CorruptMessage)?;
        if total > records.len() {
            break;
        }
        let (batch, rest) = records.split_at(total);
        if batch[MAGIC] != 2 {
            return Err(ResponseError::UnsupportedForMessageFormat);
        }
        if !crc_matches(batch) {
            return Err(ResponseError::CorruptMessage);
        }
        batches.push(batch);
        records = rest;
    }
    Ok(batches)
}

/// Records in the data batches of a record set, from their headers alone (for metrics): control
/// batches and a partial batch at the end are not counted.
pub fn count_records(mut records: &[u8]) -> u64 {
    let mut count = 0;
    while let Some(total) = declared_len(records).filter(|&t| t <= records.len()) {
        let header = BatchHeader { bytes: &records[..total] };
        if !header.is_control() {
            count += header.record_count().max(0) as u64;
        }
        records = &records[total..];
    }
    count
}

/// Copies a batch into `stored` with the fields the broker owns rewritten: base offset and
/// leader epoch, which lie outside the CRC.
pub fn assign(batch: &[u8], base_offset: i64, leader_epoch: i32, stored: &mut Vec<u8>) {
    stored.clear();
    stored.extend_from_slice(batch);
    stored[BASE_OFFSET..BATCH_LENGTH].copy_from_slice(&base_offset.to_be_bytes());
    stored[LEADER_EPOCH..MAGIC].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Sets LogAppendTime on a stored batch: both timestamps become `now`, and the CRC (which
/// covers them) is recomputed.
pub fn set_log_append_time(stored: &mut [u8], now: i64) {
    let attributes = i16::from_be_bytes([stored[ATTRIBUTES], stored[ATTRIBUTES + 1]])
        | TIMESTAMP_TYPE_LOG_APPEND;
    stored[ATTRIBUTES..LAST_OFFSET_DELTA].copy_from_slice(&attributes.to_be_bytes());
    stored[BASE_TIMESTAMP..MAX_TIMESTAMP].copy_from_slice(&now.to_be_bytes());
    stored[MAX_TIMESTAMP..PRODUCER_ID].copy_from_slice(&now.to_be_bytes());
    let crc = crc32c::crc32c(&stored[ATTRIBUTES..]);
    stored[CRC..ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of a stored batch's header over new records (`count` of them, possibly compressed):
/// length, record count, max timestamp and CRC follow; base offset, last offset delta, base
/// timestamp and the producer fields stay (the cleaner's rewrite).
pub fn with_records(stored: &[u8], count: i32, max_timestamp: i64, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&stored[..HEADER_LEN]);
    out.extend_from_slice(records);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH..LEADER_EPOCH].copy_from_slice(&length.to_be_bytes());
    out[MAX_TIMESTAMP..PRODUCER_ID].copy_from_slice(&max_timestamp.to_be_bytes());
    out[RECORD_COUNT..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Whether a stored batch's CRC matches its content.
pub fn crc_matches(stored: &[u8]) -> bool {
    stored.len() >= HEADER_LEN && u32::from_be_bytes(stored[CRC..ATTRIBUTES].try_into().expect("4")) == crc32c::crc32c(&stored[ATTRIBUTES..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{encode_batch, BatchSpec};

    fn batch(n: i64, base_ts: i64) -> Vec<u8> {
        encode_batch(&BatchSpec { base_ts, ..BatchSpec::values(n) })
    }

    #[test]
    fn counts_records_of_whole_batches() {
        let mut set = [batch(3, 0), batch(2, 0)].concat();
        assert_eq!(count_records(&set), 5);
        set.extend_from_slice(&batch(4, 0)[..HEADER_LEN + 1]);
        assert_eq!(count_records(&set), 5, "a partial batch is not counted");
        assert_eq!(count_records(&[]), 0);
    }

    #[test]
    fn one_batch_per_partition_as_kafka_requires() {
        let one = batch(3, 1000);
        assert_eq!(BatchHeader::new(validate_produced(&one, 1 << 20).unwrap()).unwrap().record_count(), 3);
        let mut two = one.clone();
        two.extend(batch(2, 2000));
        assert_eq!(validate_produced(&two, 1 << 20), Err(ResponseError::InvalidRecord));
    }

    #[test]
    fn rejects_bad_crc_magic_length_and_size() {
        let good = batch(3, 1000);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert_eq!(validate_produced(&bad_crc, 1 << 20), Err(ResponseError::CorruptMessage));
        let mut bad_magic = good.clone();
        bad_magic[MAGIC] = 1;
        assert_eq!(
            validate_produced(&bad_magic, 1 << 20),
            Err(ResponseError::UnsupportedForMessageFormat)
        );
        assert_eq!(
            validate_produced(&good[..good.len() - 1], 1 << 20),
            Err(ResponseError::CorruptMessage)
        );
        let mut huge_len = good.clone();
        huge_len[BATCH_LENGTH..LEADER_EPOCH].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(validate_produced(&huge_len, 1 << 20), Err(ResponseError::CorruptMessage));
        assert_eq!(validate_produced(&good, 10), Err(ResponseError::MessageTooLarge));
        assert_eq!(validate_produced(&[], 1 << 20), Err(ResponseError::CorruptMessage));
    }

    #[test]
    fn assign_keeps_crc_valid_and_log_append_time_recomputes_it() {
        let good = batch(3, 1000);
        let mut stored = Vec::new();
        assign(&good, 42, 0, &mut stored);
        assert_eq!(BatchHeader::new(&stored).unwrap().base_offset(), 42);
        assert!(validate_produced(&stored, 1 << 20).is_ok());
        set_log_append_time(&mut stored, 5555);
        assert_eq!(BatchHeader::new(&stored).unwrap().max_timestamp(), 5555);
        assert!(validate_produced(&stored, 1 << 20).is_ok());
    }
}
