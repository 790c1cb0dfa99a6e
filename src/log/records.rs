//! The records inside a stored batch, for the few features that need them (ListOffsets by
//! time, the cleaner, the key check of compacted topics); produce and fetch never look inside.
//!
//! Records are walked as raw bytes: only their offset and timestamp deltas, key and whether the
//! value is null are read, and a record the cleaner keeps is copied byte for byte, so headers
//! (duplicate keys included) and anything a client put there survive compaction exactly. The
//! codecs are kafka-protocol's.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE};
use kafka_protocol::ResponseError;

use super::batch::{self, BatchHeader};

/// One record, as it lies in the (decompressed) records section.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// `None` is a null value: a tombstone on a compacted topic.
    pub value: Option<&'a [u8]>,
    /// The whole record, its length prefix included.
    pub bytes: &'a [u8],
}

/// Codec ids of the attributes field.
pub(super) const NONE: i16 = 0;
pub(super) const GZIP: i16 = 1;
pub(super) const SNAPPY: i16 = 2;
pub(super) const LZ4: i16 = 3;
pub(super) const ZSTD: i16 = 4;

fn corrupt(e: impl std::fmt::Display) -> ResponseError {
    tracing::debug!("undecodable records: {e}");
    ResponseError::CorruptMessage
}

/// The batch's records section, decompressed.
pub fn section(header: &BatchHeader) -> Result<Bytes, ResponseError> {
    let mut raw = header.records();
    let keep = |buf: &mut Bytes| Ok(buf.split_off(0));
    let section = match header.compression() {
        NONE => return Ok(Bytes::copy_from_slice(raw)),
        GZIP => codec::Gzip::decompress(&mut raw, keep),
        SNAPPY => codec::Snappy::decompress(&mut raw, keep),
        LZ4 => codec::Lz4::decompress(&mut raw, keep),
        ZSTD => codec::Zstd::decompress(&mut raw, keep),
        other => return Err(corrupt(format!("unknown compression codec {other}"))),
    };
    section.map_err(corrupt)
}

/// Compresses a records section with the codec of `header`'s batch.
pub fn compress(header: &BatchHeader, section: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let mut out = BytesMut::new();
    let copy = |buf: &mut BytesMut| {
        buf.extend_from_slice(section);
        Ok(())
    };
    let done = match header.compression() {
        NONE => {
            out.extend_from_slice(section);
            Ok(())
        }
        GZIP => codec::Gzip::compress(&mut out, copy),
        SNAPPY => codec::Snappy::compress(&mut out, copy),
        LZ4 => codec::Lz4::compress(&mut out, copy),
        ZSTD => codec::Zstd::compress(&mut out, copy),
        other => return Err(corrupt(format!("unknown compression codec {other}"))),
    };
    done.map_err(corrupt)?;
    Ok(out.to_vec())
}

/// The records of a decompressed section, in order; an error at the first malformed one.
pub fn walk(section: &[u8], count: i32) -> impl Iterator<Item = Result<RawRecord<'_>, ResponseError>> {
    let mut rest = section;
    let mut left = count.max(0);
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left -= 1;
        let record = next_record(&mut rest);
        if record.is_err() {
            left = 0;
        }
        Some(record)
    })
}

fn next_record<'a>(rest: &mut &'a [u8]) -> Result<RawRecord<'a>, ResponseError> {
    let whole = *rest;
    let length = varint(rest)?;
    let length = usize::try_from(length).map_err(corrupt)?;
    let prefix = whole.len() - rest.len();
    let body = rest.get(..length).ok_or_else(|| corrupt("record longer than its batch"))?;
    *rest = &rest[length..];
    // A record of length 0 has not even its attributes byte (found by fuzz/record_batch).
    let (_attributes, mut body) = body.split_first().ok_or_else(|| corrupt("empty record"))?;
    let timestamp_delta = varint(&mut body)?;
    let offset_delta = varint(&mut body)?;
    let key = bytes_field(&mut body)?;
    let value = bytes_field(&mut body)?;
    Ok(RawRecord { offset_delta, timestamp_delta, key, value, bytes: &whole[..prefix + length] })
}

/// A length-prefixed field; `None` for length -1.
fn bytes_field<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, ResponseError> {
    let length = varint(buf)?;
    if length < 0 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(corrupt)?;
    let field = buf.get(..length).ok_or_else(|| corrupt("field longer than its record"))?;
    *buf = &buf[length..];
    Ok(Some(field))
}

/// A zig-zag varint (Kafka's record encoding).
fn varint(buf: &mut &[u8]) -> Result<i64, ResponseError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = buf.split_first() else { break };
        *buf = rest;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(corrupt("bad varint"))
}

/// (offset, timestamp) of each record of a stored batch. LogAppendTime batches carry the
/// broker's time for every record, in the batch's max timestamp.
pub fn offsets_and_timestamps(stored: &[u8]) -> Result<Vec<(i64, i64)>, ResponseError> {
    let header = BatchHeader::new(stored).ok_or_else(|| corrupt("short batch"))?;
    let section = section(&header)?;
    walk(&section, header.record_count())
        .map(|r| {
            let r = r?;
            let timestamp = if header.log_append_time() { header.max_timestamp() } else { header.base_timestamp() + r.timestamp_delta };
            Ok((header.base_offset() + r.offset_delta, timestamp))
        })
        .collect()
}

/// The index (in the batch) of each record without a key.
pub fn keyless(batch: &[u8]) -> Result<Vec<i32>, ResponseError> {
    let header = BatchHeader::new(batch).ok_or_else(|| corrupt("short batch"))?;
    let section = section(&header)?;
    let mut missing = Vec::new();
    for (i, record) in walk(&section, header.record_count()).enumerate() {
        if record?.key.is_none() {
            missing.push(i as i32);
        }
    }
    Ok(missing)
}

/// A control batch's transaction marker: whether it COMMITs (`false`: ABORT) and its
/// coordinator epoch; `None` for a control record of another kind. Its key is the control type
/// (version i16, type i16), its value (version i16, coordinator epoch i32).
pub fn read_marker(stored: &[u8]) -> Result<Option<(bool, i32)>, ResponseError> {
    let header = BatchHeader::new(stored).ok_or_else(|| corrupt("short batch"))?;
    let section = section(&header)?;
    let Some(record) = walk(&section, header.record_count()).next().transpose()? else { return Ok(None) };
    let commit = match record.key.and_then(|k| k.get(2..4)) {
        Some([0, 0]) => false,
        Some([0, 1]) => true,
        _ => return Ok(None),
    };
    let coordinator_epoch = record.value.and_then(|v| v.get(2..6)).map(|e| i32::from_be_bytes(e.try_into().expect("4 bytes")));
    Ok(coordinator_epoch.map(|c| (commit, c)))
}

/// A transaction marker as the coordinator appends it (Kafka's EndTransactionMarker): one
/// control record in a transactional control batch of the producer's id and epoch, whose key
/// says COMMIT or ABORT and whose value carries the coordinator epoch. The codec is
/// kafka-protocol's.
pub fn marker(producer_id: i64, producer_epoch: i16, coordinator_epoch: i32, commit: bool, timestamp: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: NO_SEQUENCE,
        timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, [&record], &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("a control record always encodes");
    out.to_vec()
}

/// A batch of keyed records, `None` values being tombstones, as a non-idempotent producer
/// sends it (the group coordinator's writes to its compacted topic).
pub fn keyed_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp: i64) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset minus sequence stays the same;
            // the batch's base sequence is the first one's, NO_SEQUENCE.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.as_deref().map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("keyed records always encode");
    out.to_vec()
}

/// Each (key, value) of the data batches in `stored` (whole batches, as a read returns them),
/// in log order; control batches and keyless records are skipped. Returns the offset after the
/// last batch, `None` when `stored` holds no whole batch.
pub fn keyed_records(stored: &[u8], mut each: impl FnMut(&[u8], Option<&[u8]>)) -> Result<Option<i64>, ResponseError> {
    let mut next = None;
    for stored in batch::split_replicated(stored)? {
        let header = BatchHeader::new(stored).ok_or_else(|| corrupt("short batch"))?;
        next = Some(header.last_offset() + 1);
        if header.is_control() {
            continue;
        }
        let section = section(&header)?;
        for record in walk(&section, header.record_count()) {
            let record = record?;
            if let Some(key) = record.key {
                each(key, record.value);
            }
        }
    }
    Ok(next)
}

/// A copy of a stored batch holding only `kept` (records of its own section, in order), with
/// the same base offset, last offset delta, producer fields and codec, as Kafka's cleaner writes
/// it; `None` when nothing is kept.
pub fn rebuild(stored: &[u8], kept: &[RawRecord]) -> Result<Option<Vec<u8>>, ResponseError> {
    let header = BatchHeader::new(stored).ok_or_else(|| corrupt("short batch"))?;
    let Some(max_timestamp) = kept.iter().map(|r| header.base_timestamp() + r.timestamp_delta).max() else {
        return Ok(None);
    };
    let mut section = Vec::with_capacity(kept.iter().map(|r| r.bytes.len()).sum());
    for r in kept {
        section.extend_from_slice(r.bytes);
    }
    let records = compress(&header, &section)?;
    let max_timestamp = if header.log_append_time() { header.max_timestamp() } else { max_timestamp };
    Ok(Some(batch::with_records(stored, kept.len() as i32, max_timestamp, &records)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{encode_batch, BatchSpec};

    #[test]
    fn a_keyed_batch_is_one_valid_batch_and_reads_back_with_its_tombstones() {
        let changes = vec![(b"k1".to_vec(), Some(b"v1".to_vec())), (b"k2".to_vec(), None), (b"k1".to_vec(), Some(b"v3".to_vec()))];
        let mut stored = keyed_batch(&changes, 1_700_000_000_000);
        assert_eq!(batch::validate_produced(&stored, 1 << 20).map(<[u8]>::len), Ok(stored.len()));
        stored[..8].copy_from_slice(&40i64.to_be_bytes());
        let mut seen = Vec::new();
        let next = keyed_records(&stored, |k, v| seen.push((k.to_vec(), v.map(<[u8]>::to_vec)))).unwrap();
        assert_eq!(seen, changes);
        assert_eq!(next, Some(43));
        assert_eq!(keyed_records(&stored[..10], |_, _| {}).unwrap(), None);
    }

    #[test]
    fn walks_records_and_rebuilds_a_batch_with_some_of_them() {
        let mut stored = encode_batch(&BatchSpec::keyed(&[("key-0", Some("a")), ("key-1", Some("b")), ("key-2", None), ("key-3", Some("d"))]));
        stored[..8].copy_from_slice(&100i64.to_be_bytes());
        assert_eq!(offsets_and_timestamps(&stored).unwrap()[1], (101, 1_700_000_000_010));
        let header = BatchHeader::new(&stored).unwrap();
        let section = section(&header).unwrap();
        let records: Vec<RawRecord> = walk(&section, header.record_count()).collect::<Result<_, _>>().unwrap();
        assert_eq!(records[2].key, Some(&b"key-2"[..]));
        assert!(records[2].value.is_none() && records[1].value == Some(&b"b"[..]));
        let kept = [records[1], records[3]];
        let rebuilt = rebuild(&stored, &kept).unwrap().unwrap();
        // Still a valid batch, with the original offsets of the records it kept.
        assert!(batch::crc_matches(&rebuilt));
        let h = BatchHeader::new(&rebuilt).unwrap();
        assert_eq!((h.base_offset(), h.last_offset(), h.record_count()), (100, 103, 2));
        assert_eq!(offsets_and_timestamps(&rebuilt).unwrap(), vec![(101, 1_700_000_000_010), (103, 1_700_000_000_030)]);
        assert_eq!(rebuild(&stored, &[]).unwrap(), None);
    }

    #[test]
    fn a_record_of_length_zero_is_corrupt() {
        let template = encode_batch(&BatchSpec::values(1));
        // One record whose length varint says 0: not even the attributes byte follows.
        let empty = batch::with_records(&template, 1, 1_700_000_000_000, &[0x00]);
        assert!(batch::validate_produced(&empty, 1 << 20).is_ok());
        assert_eq!(keyless(&empty), Err(ResponseError::CorruptMessage));
        assert_eq!(offsets_and_timestamps(&empty), Err(ResponseError::CorruptMessage));
        // The same after a well-formed record: the walk stops at the bad one.
        let good = &template[batch::HEADER_LEN..];
        let second = batch::with_records(&template, 2, 1_700_000_000_000, &[good, &[0x00]].concat());
        let header = BatchHeader::new(&second).unwrap();
        let section = section(&header).unwrap();
        let walked: Vec<_> = walk(&section, 2).collect();
        assert!(walked[0].is_ok() && matches!(walked[1], Err(ResponseError::CorruptMessage)));
    }

    #[test]
    fn records_inflating_past_the_limit_are_refused() {
        let mut bomb = encode_batch(&BatchSpec::values(1));
        bomb.truncate(batch::HEADER_LEN);
        // Snappy (codec 2) whose raw block claims 4 GiB of output: refused before allocating.
        let codec_bits = |batch: &mut Vec<u8>, codec: u8| batch[22] = (batch[22] & !7) | codec;
        codec_bits(&mut bomb, 2);
        let mut claim = bomb.clone();
        claim.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        assert_eq!(keyless(&claim), Err(ResponseError::CorruptMessage));
        // Zstd (codec 4): a few kilobytes that really inflate past the limit.
        codec_bits(&mut bomb, 4);
        let zeros = vec![0u8; kafka_protocol::compression::MAX_DECOMPRESSED_BYTES + 1];
        let mut small = BytesMut::new();
        codec::Zstd::compress(&mut small, |buf| {
            buf.extend_from_slice(&zeros);
            Ok(())
        })
        .unwrap();
        assert!(small.len() < 64 << 10);
        bomb.extend_from_slice(&small);
        let inflated = section(&BatchHeader::new(&bomb).unwrap());
        assert!(inflated == Err(ResponseError::CorruptMessage), "inflated {:?} bytes", inflated.map(|s| s.len()));
    }
}
