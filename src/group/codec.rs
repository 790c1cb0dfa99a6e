//! The stored forms of group membership and committed offsets: length-prefixed fields,
//! big-endian numbers, a version byte first. Fields added later go at the end: records
//! written before them still load (without them), and older builds read the new records
//! (ignoring them), so a data directory can move either way.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tokio::time::Instant;

use super::state::{restored_member, Committed, Group, TxnOffsets};
use super::TopicPartition;

const VERSION: u8 = 1;
/// A timestamp that is not set.
const NO_TIMESTAMP: i64 = -1;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

/// `None` is stored as an empty string: Kafka forbids empty ids and protocol names.
fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    put_bytes(out, s.unwrap_or_default().as_bytes());
}

fn get_bytes(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_u32() as usize;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    String::from_utf8(get_bytes(buf)?.to_vec()).ok()
}

fn get_opt(buf: &mut Bytes) -> Option<Option<String>> {
    get_string(buf).map(|s| (!s.is_empty()).then_some(s))
}

fn get_u32(buf: &mut Bytes) -> Option<u32> {
    (buf.remaining() >= 4).then(|| buf.get_u32())
}

/// A timestamp added at the end of a record; `None` when the record predates it or it is unset.
fn get_trailing_timestamp(buf: &mut Bytes) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64()).filter(|&t| t != NO_TIMESTAMP)
}

pub fn encode_group(g: &Group) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.put_i32(g.generation);
    put_opt(&mut out, g.protocol_type.as_deref());
    put_opt(&mut out, g.protocol.as_deref());
    put_opt(&mut out, g.leader.as_deref());
    out.put_u32(g.members.len() as u32);
    for m in g.members.values() {
        put_bytes(&mut out, m.id.as_bytes());
        put_opt(&mut out, m.instance_id.as_deref());
        put_bytes(&mut out, m.client_id.as_bytes());
        put_bytes(&mut out, m.client_host.as_bytes());
        out.put_u32(m.session_timeout.as_millis() as u32);
        out.put_u32(m.rebalance_timeout.as_millis() as u32);
        out.put_u32(m.protocols.len() as u32);
        for (name, metadata) in &m.protocols {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, metadata);
        }
        put_bytes(&mut out, &m.assignment);
    }
    out.put_i64(g.state_timestamp_ms.unwrap_or(NO_TIMESTAMP));
    out
}

pub fn decode_group(id: &str, bytes: &[u8], now: Instant) -> Option<Group> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 5 || buf.get_u8() != VERSION {
        return None;
    }
    let mut g = Group::new(id, now);
    g.generation = buf.get_i32();
    g.protocol_type = get_opt(&mut buf)?;
    g.protocol = get_opt(&mut buf)?;
    g.leader = get_opt(&mut buf)?;
    let count = get_u32(&mut buf)?;
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = get_string(&mut buf)?;
        let instance_id = get_opt(&mut buf)?;
        let client = (get_string(&mut buf)?, get_string(&mut buf)?);
        let session = Duration::from_millis(get_u32(&mut buf)? as u64);
        let rebalance = Duration::from_millis(get_u32(&mut buf)? as u64);
        let mut protocols = Vec::new();
        for _ in 0..get_u32(&mut buf)? {
            protocols.push((get_string(&mut buf)?, get_bytes(&mut buf)?));
        }
        let assignment = get_bytes(&mut buf)?;
        members.push(restored_member(member_id, instance_id, client, (session, rebalance), protocols, assignment, now));
    }
    // Records from before it was kept have no state timestamp: as Kafka does for such
    // records, an Empty group's offsets then expire by their commit times.
    g.state_timestamp_ms = get_trailing_timestamp(&mut buf);
    g.restore(members, now);
    Some(g)
}

pub fn encode_committed(c: &Committed) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    match &c.metadata {
        Some(m) => {
            out.put_u8(1);
            put_bytes(&mut out, m.as_bytes());
        }
        None => out.put_u8(0),
    }
    out.put_i64(c.commit_timestamp_ms);
    out.put_i64(c.expire_timestamp_ms.unwrap_or(NO_TIMESTAMP));
    out
}

/// `now_ms` stands in for the commit time of a record from before it was kept, so such
/// offsets get a full retention period from the upgrade on.
pub fn decode_committed(bytes: &[u8], now_ms: i64) -> Option<Committed> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 14 || buf.get_u8() != VERSION {
        return None;
    }
    let offset = buf.get_i64();
    let leader_epoch = buf.get_i32();
    let metadata = match buf.get_u8() {
        0 => None,
        _ => Some(get_string(&mut buf)?),
    };
    let commit_timestamp_ms = get_trailing_timestamp(&mut buf).unwrap_or(now_ms);
    let expire_timestamp_ms = get_trailing_timestamp(&mut buf);
    Some(Committed { offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms })
}

/// A transaction's offsets: the producer's epoch, then each (topic, partition, committed).
pub fn encode_txn_offsets(t: &TxnOffsets) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.put_i16(t.producer_epoch);
    out.put_u32(t.offsets.len() as u32);
    for ((topic, partition), committed) in &t.offsets {
        put_bytes(&mut out, topic.as_bytes());
        out.put_i32(*partition);
        put_bytes(&mut out, &encode_committed(committed));
    }
    out
}

pub fn decode_txn_offsets(bytes: &[u8]) -> Option<TxnOffsets> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 7 || buf.get_u8() != VERSION {
        return None;
    }
    let producer_epoch = buf.get_i16();
    let mut offsets = std::collections::BTreeMap::new();
    for _ in 0..get_u32(&mut buf)? {
        let topic = get_string(&mut buf)?;
        let partition = (buf.remaining() >= 4).then(|| buf.get_i32())?;
        let committed = decode_committed(&get_bytes(&mut buf)?, 0)?;
        offsets.insert((topic, partition), committed);
    }
    Some(TxnOffsets { producer_epoch, offsets })
}

/// Splits `group \0 producer id(8 bytes)`.
pub fn decode_txn_offsets_key(key: &[u8]) -> Option<(String, i64)> {
    let (rest, pid) = key.split_last_chunk::<8>()?;
    let group = String::from_utf8(rest.strip_suffix(b"\0")?.to_vec()).ok()?;
    Some((group, i64::from_be_bytes(*pid)))
}

/// Splits `group \0 topic \0 partition(4 bytes)`.
pub fn decode_offset_key(key: &[u8]) -> Option<(String, TopicPartition)> {
    let (rest, partition) = key.split_last_chunk::<4>()?;
    let rest = rest.strip_suffix(b"\0")?;
    let split = rest.iter().rposition(|&b| b == 0)?;
    let group = String::from_utf8(rest[..split].to_vec()).ok()?;
    let topic = String::from_utf8(rest[split + 1..].to_vec()).ok()?;
    Some((group, (topic, i32::from_be_bytes(*partition))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_round_trip() {
        for c in [
            Committed { offset: 42, leader_epoch: 0, metadata: Some("meta data".into()), commit_timestamp_ms: 1_700_000_000_000, expire_timestamp_ms: None },
            Committed { offset: -1, leader_epoch: -1, metadata: None, commit_timestamp_ms: 5, expire_timestamp_ms: Some(60_005) },
        ] {
            assert_eq!(decode_committed(&encode_committed(&c), 0), Some(c));
        }
        assert_eq!(decode_committed(&[1, 2, 3], 0), None);
    }

    /// Records written before the timestamps (data directories of older Gregor builds) still
    /// load, and the new records start as the old ones did, for older builds to read.
    #[test]
    fn records_without_timestamps_load() {
        let mut committed = vec![VERSION];
        committed.put_i64(42);
        committed.put_i32(3);
        committed.put_u8(1);
        put_bytes(&mut committed, b"meta");
        let c = decode_committed(&committed, 1_000).unwrap();
        assert_eq!((c.offset, c.leader_epoch, c.metadata.as_deref()), (42, 3, Some("meta")));
        assert_eq!((c.commit_timestamp_ms, c.expire_timestamp_ms), (1_000, None), "retention counts from the load");
        let new = encode_committed(&Committed { commit_timestamp_ms: 7, expire_timestamp_ms: Some(8), ..c });
        assert_eq!(new[..committed.len()], committed[..]);

        let mut group = vec![VERSION];
        group.put_i32(7);
        put_opt(&mut group, Some("consumer"));
        put_opt(&mut group, None);
        put_opt(&mut group, None);
        group.put_u32(0);
        let mut g = decode_group("old", &group, Instant::now()).unwrap();
        assert_eq!((g.generation, g.protocol_type.as_deref(), g.state_timestamp_ms), (7, Some("consumer"), None));
        g.state_timestamp_ms = Some(123);
        let new = encode_group(&g);
        assert_eq!(new[..group.len()], group[..]);
        let again = decode_group("old", &new, Instant::now()).unwrap();
        assert_eq!((again.generation, again.state_timestamp_ms), (7, Some(123)));
    }

    #[test]
    fn transaction_offsets_round_trip() {
        let committed = Committed { offset: 9, leader_epoch: 2, metadata: Some("m".into()), commit_timestamp_ms: 5, expire_timestamp_ms: None };
        let t = TxnOffsets { producer_epoch: 3, offsets: [(("a".to_string(), 1), committed.clone()), (("b".to_string(), 0), committed)].into() };
        assert_eq!(decode_txn_offsets(&encode_txn_offsets(&t)), Some(t));
        assert_eq!(decode_txn_offsets(&[VERSION, 0]), None);
        let key = [b"g\0".as_slice(), &42i64.to_be_bytes()].concat();
        assert_eq!(decode_txn_offsets_key(&key), Some(("g".to_string(), 42)));
    }

    #[test]
    fn offset_keys_split_back() {
        let key = [b"my-group\0orders\0".as_slice(), &7i32.to_be_bytes()].concat();
        assert_eq!(decode_offset_key(&key), Some(("my-group".to_string(), ("orders".to_string(), 7))));
    }
}
