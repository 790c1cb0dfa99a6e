//! Builders for record batches, shared by the unit tests and the protocol tests in `tests/`.
//! Not used by the broker itself.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What a test batch holds: `count` records with values `value-<i>` (padded to `value_bytes`
/// if that is longer), timestamps `base_ts + 10 * i`.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    pub count: i64,
    pub base_ts: i64,
    /// (producer id, epoch, base sequence) for an idempotent producer.
    pub producer: Option<(i64, i16, i32)>,
    /// When not empty, the records instead: (key, value), a `None` value being a tombstone.
    pub keyed: Vec<(&'static str, Option<&'static str>)>,
    pub compression: Compression,
    /// Values are padded to at least this many bytes.
    pub value_bytes: usize,
    /// Headers every record carries: (key, value), a `None` value being a null header value.
    pub headers: Vec<(&'static str, Option<&'static str>)>,
    /// A transactional producer's batch (the producer must be set).
    pub transactional: bool,
}

impl BatchSpec {
    /// Keyed records, `None` values being tombstones.
    pub fn keyed(records: &[(&'static str, Option<&'static str>)]) -> BatchSpec {
        BatchSpec { count: records.len() as i64, keyed: records.to_vec(), ..BatchSpec::values(0) }
    }

    pub fn values(count: i64) -> BatchSpec {
        BatchSpec { count, base_ts: 1_700_000_000_000, producer: None, keyed: Vec::new(), compression: Compression::None, value_bytes: 0, headers: Vec::new(), transactional: false }
    }
}

fn padded(value: String, len: usize) -> Vec<u8> {
    let mut value = value.into_bytes();
    value.resize(value.len().max(len), b'-');
    value
}

/// Encodes one v2 batch, as a producer would send it (base offset 0).
pub fn encode_batch(spec: &BatchSpec) -> Vec<u8> {
    let (producer_id, producer_epoch, base_seq) = spec.producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..spec.count)
        .map(|i| Record {
            transactional: spec.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // The encoder starts a new batch where offset - sequence changes; -1 + i keeps one batch
            // with base sequence -1 for non-idempotent producers.
            sequence: base_seq + i as i32,
            timestamp: spec.base_ts + i * 10,
            key: spec.keyed.get(i as usize).map(|(k, _)| Bytes::from_static(k.as_bytes())),
            value: match spec.keyed.get(i as usize) {
                Some((_, v)) => v.map(|v| Bytes::from_static(v.as_bytes())),
                None => Some(Bytes::from(padded(format!("value-{i}"), spec.value_bytes))),
            },
            headers: spec.headers.iter().map(|&(k, v)| (StrBytes::from_static_str(k), v.map(|v| Bytes::from_static(v.as_bytes())))).collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions { version: 2, compression: spec.compression };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encodable batch");
    buf.to_vec()
}

/// Starts the lone controller quorum an [`crate::api::Api`] made without [`crate::Broker`]
/// needs (the fuzz harness): this node registered and unfenced, its topics published.
/// Partition states are left alone, so every partition is led by this node. The tasks run on
/// the runtime this is called on, until `shutdown` fires.
pub async fn start_lone_quorum(config: &crate::Config, api: &crate::api::Api, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let (failure, _) = tokio::sync::watch::channel(None);
    crate::start_quorum(config, api, None, failure, shutdown).await
}
