//! `gregor dump-log`: a broker's data directory printed one line per stored batch, with
//! kafka-dump-log's fields, from a read-only open: the same lines while the broker runs as
//! after it stopped.

mod common;

use std::path::Path;
use std::process::Command;

use common::{start, Client};
use gregor::testkit::{encode_batch, BatchSpec};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::records::Compression;

/// `gregor dump-log --log-dirs <dir> <args>`: (success, stdout lines, stderr).
fn dump_log(dir: &Path, args: &[&str]) -> (bool, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor")).arg("dump-log").arg("--log-dirs").arg(dir).args(args).output().expect("gregor runs");
    let lines = String::from_utf8(out.stdout).expect("utf-8").lines().map(str::to_string).collect();
    (out.status.success(), lines, String::from_utf8_lossy(&out.stderr).to_string())
}

/// The CRC a batch carries, read straight from its header bytes.
fn crc(batch: &[u8]) -> u32 {
    u32::from_be_bytes(batch[17..21].try_into().unwrap())
}

#[tokio::test]
async fn dump_log_prints_every_stored_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("dumped", 2).await, 0);
    let r = c.call(InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000), 4).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let plain = encode_batch(&BatchSpec::values(3));
    let idempotent = encode_batch(&BatchSpec { producer: Some((pid, epoch, 0)), base_ts: 1_700_000_001_000, ..BatchSpec::values(2) });
    let gzipped = encode_batch(&BatchSpec { compression: Compression::Gzip, base_ts: 1_700_000_002_000, ..BatchSpec::values(4) });
    assert_eq!(c.produce("dumped", 0, plain.clone()).await, (0, 0));
    assert_eq!(c.produce("dumped", 0, idempotent.clone()).await, (0, 3));
    assert_eq!(c.produce("dumped", 1, gzipped.clone()).await, (0, 0));

    let (ok, while_running, stderr) = dump_log(dir.path(), &["--topic", "dumped"]);
    assert!(ok, "{stderr}");
    broker.shutdown().await;
    let (ok, stopped, stderr) = dump_log(dir.path(), &["--topic", "dumped"]);
    assert!(ok, "{stderr}");
    assert_eq!(while_running, stopped, "a running broker's directory reads the same");
    let fields = "isTransactional: false isControl: false";
    assert_eq!(
        stopped,
        [
            format!("partition: 0 baseOffset: 0 lastOffset: 2 count: 3 baseSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 {fields} CreateTime: 1700000000020 size: {} compresscodec: none crc: {} isvalid: true", plain.len(), crc(&plain)),
            format!("partition: 0 baseOffset: 3 lastOffset: 4 count: 2 baseSequence: 0 producerId: {pid} producerEpoch: {epoch} partitionLeaderEpoch: 0 {fields} CreateTime: 1700000001010 size: {} compresscodec: none crc: {} isvalid: true", idempotent.len(), crc(&idempotent)),
            format!("partition: 1 baseOffset: 0 lastOffset: 3 count: 4 baseSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 {fields} CreateTime: 1700000002030 size: {} compresscodec: gzip crc: {} isvalid: true", gzipped.len(), crc(&gzipped)),
        ]
    );
    let (ok, one, _) = dump_log(dir.path(), &["--topic", "dumped", "--partition", "1"]);
    assert!(ok);
    assert_eq!(one, stopped[2..]);

    // What is not there is said, not printed as nothing.
    let (ok, lines, stderr) = dump_log(dir.path(), &["--topic", "dumped", "--partition", "2"]);
    assert!(!ok && lines.is_empty() && stderr.contains("no partition 2"), "{stderr}");
    let (ok, _, stderr) = dump_log(dir.path(), &["--topic", "missing"]);
    assert!(!ok && stderr.contains("no topic \"missing\""), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = dump_log(empty.path(), &["--topic", "dumped"]);
    assert!(!ok && stderr.contains("no Gregor store"), "{stderr}");
}
