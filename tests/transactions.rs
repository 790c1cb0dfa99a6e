//! Transactions with hand-built frames: the coordinator's state transitions and errors,
//! fencing by epoch, the read side (last stable offset, aborted transactions), and a
//! transaction prepared before a crash completed after the restart, its markers written once.

mod common;

use bytes::Bytes;
use common::*;
use gregor::log::LogStore;
use gregor::testkit::{encode_batch, BatchSpec};
use gregor::txn::state::{TxnMeta, TxnState};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::{GroupId, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// InitProducerId v4 for `id`; returns (error code, producer id, epoch).
async fn init(c: &mut Client, id: &str, timeout_ms: i32, named: (i64, i16)) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(named.0))
        .with_producer_epoch(named.1);
    let r = c.call(request, 4).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId, retried while the coordinator answers CONCURRENT_TRANSACTIONS.
async fn init_ok(c: &mut Client, id: &str) -> (i64, i16) {
    for _ in 0..100 {
        let (error, pid, epoch) = init(c, id, 60_000, (-1, -1)).await;
        if error == code(ResponseError::ConcurrentTransactions) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(error, 0);
        return (pid, epoch);
    }
    panic!("InitProducerId kept answering CONCURRENT_TRANSACTIONS");
}

/// AddPartitionsToTxn v3 of partitions of `topic`; returns each partition's error code.
async fn add_partitions(c: &mut Client, id: &str, (pid, epoch): (i64, i16), topic: &str, partitions: Vec<i32>) -> Vec<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default().with_name(name(topic)).with_partitions(partitions)]);
    let r = c.call(request, 3).await;
    r.results_by_topic_v3_and_below[0].results_by_partition.iter().map(|p| p.partition_error_code).collect()
}

async fn end_txn(c: &mut Client, version: i16, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    end_txn_v5(c, version, id, producer, commit).await.0
}

/// EndTxn; returns (error code, the producer id and epoch of the answer, -1 before v5).
async fn end_txn_v5(c: &mut Client, version: i16, id: &str, (pid, epoch): (i64, i16), commit: bool) -> (i16, (i64, i16)) {
    let request = EndTxnRequest::default().with_transactional_id(txn_id(id)).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(commit);
    let r = c.call(request, version).await;
    (r.error_code, (r.producer_id.0, r.producer_epoch))
}

/// A transactional batch of `count` records to partition 0; returns (error code, base offset).
async fn produce_txn(c: &mut Client, topic: &str, producer: (i64, i16), seq: i32, count: i64) -> (i16, i64) {
    produce_txn_at(c, 9, topic, producer, seq, count).await
}

/// The same as a Produce of `version` with the transactional id `id` set.
async fn produce_txn_at(c: &mut Client, version: i16, topic: &str, (pid, epoch): (i64, i16), seq: i32, count: i64) -> (i16, i64) {
    let batch = encode_batch(&BatchSpec { producer: Some((pid, epoch, seq)), transactional: true, ..BatchSpec::values(count) });
    let r = c.call(produce_request(topic, 0, batch, -1).with_transactional_id(Some(txn_id("v2"))), version).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A read_committed (or read_uncommitted) fetch of partition 0 from `offset`: (error, high
/// watermark, last stable offset, aborted transactions, batch base offsets).
async fn fetch(c: &mut Client, topic: &str, offset: i64, read_committed: bool) -> (i16, i64, i64, Option<Vec<AbortedTransaction>>, Vec<i64>) {
    let request = fetch_request(topic, 0, offset, 0).with_isolation_level(i8::from(read_committed));
    let r = c.call(request, 12).await;
    let p = &r.responses[0].partitions[0];
    let records: Bytes = p.records.clone().unwrap_or_default();
    (p.error_code, p.high_watermark, p.last_stable_offset, p.aborted_transactions.clone(), batch_offsets(&records))
}

async fn latest(c: &mut Client, topic: &str, read_committed: bool) -> i64 {
    let request = ListOffsetsRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_isolation_level(i8::from(read_committed)).with_topics(vec![
        ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    c.call(request, 5).await.topics[0].partitions[0].offset
}

fn aborted(pid: i64, first: i64) -> AbortedTransaction {
    AbortedTransaction::default().with_producer_id(ProducerId(pid)).with_first_offset(first)
}

#[tokio::test]
async fn the_coordinator_refuses_bad_transitions_and_fences_old_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("tx", 2).await;

    let find = FindCoordinatorRequest::default().with_key_type(1).with_key(s("a"));
    let found = c.call(find, 3).await;
    assert_eq!((found.error_code, found.node_id.0), (0, 1), "this broker coordinates transactions");

    assert_eq!(init(&mut c, "a", 900_001, (-1, -1)).await.0, code(ResponseError::InvalidTransactionTimeout));
    assert_eq!(init(&mut c, "a", 0, (-1, -1)).await.0, code(ResponseError::InvalidTransactionTimeout));
    let p = init_ok(&mut c, "a").await;
    assert_eq!(p.1, 0);

    assert_eq!(end_txn(&mut c, 3, "a", p, true).await, code(ResponseError::InvalidTxnState), "nothing to commit");
    assert_eq!(end_txn(&mut c, 3, "nobody", p, true).await, code(ResponseError::InvalidProducerIdMapping));
    assert_eq!(end_txn(&mut c, 3, "a", (p.0 + 1, 0), true).await, code(ResponseError::InvalidProducerIdMapping));
    // Without AddPartitionsToTxn, a transactional batch is refused (it would open a
    // transaction the coordinator never ends).
    assert_eq!(produce_txn(&mut c, "tx", p, 0, 2).await.0, code(ResponseError::InvalidTxnState));
    let unknown = add_partitions(&mut c, "a", p, "tx", vec![0, 7]).await;
    assert_eq!(unknown, vec![code(ResponseError::OperationNotAttempted), code(ResponseError::UnknownTopicOrPartition)]);
    assert_eq!(add_partitions(&mut c, "a", p, "tx", vec![0]).await, vec![0]);
    assert_eq!(produce_txn(&mut c, "tx", p, 0, 2).await, (0, 0));
    assert_eq!(end_txn(&mut c, 3, "a", p, true).await, 0);
    assert_eq!(end_txn(&mut c, 3, "a", p, true).await, 0, "a retry of the commit succeeds");
    assert_eq!(end_txn(&mut c, 3, "a", p, false).await, code(ResponseError::InvalidTxnState), "an abort after the commit");

    // A second transaction is left open; a new instance of the producer fences it.
    assert_eq!(add_partitions(&mut c, "a", p, "tx", vec![0]).await, vec![0]);
    assert_eq!(produce_txn(&mut c, "tx", p, 2, 3).await, (0, 3));
    let (error, _, _) = init(&mut c, "a", 60_000, (-1, -1)).await;
    assert_eq!(error, code(ResponseError::ConcurrentTransactions), "first the open transaction is aborted");
    let q = init_ok(&mut c, "a").await;
    assert_eq!(q, (p.0, 2), "epoch 1 ended the fenced transaction, 2 is the new producer's");
    assert_eq!(end_txn(&mut c, 3, "a", p, true).await, code(ResponseError::ProducerFenced));
    assert_eq!(end_txn(&mut c, 1, "a", p, true).await, code(ResponseError::InvalidProducerEpoch), "before KIP-588");
    assert_eq!(add_partitions(&mut c, "a", p, "tx", vec![0]).await, vec![code(ResponseError::ProducerFenced)]);
    assert_eq!(produce_txn(&mut c, "tx", p, 5, 1).await.0, code(ResponseError::InvalidProducerEpoch));
    // KIP-360: naming an id and epoch that are neither the current nor the previous ones.
    assert_eq!(init(&mut c, "a", 60_000, (p.0, 0)).await.0, code(ResponseError::ProducerFenced));

    // 0-1 committed, 2 COMMIT, 3-5 aborted, 6 ABORT.
    let (error, hw, lso, list, batches) = fetch(&mut c, "tx", 0, true).await;
    assert_eq!((error, hw, lso, batches), (0, 7, 7, vec![0, 2, 3, 6]));
    assert_eq!(list, Some(vec![aborted(p.0, 3)]));
    assert_eq!(fetch(&mut c, "tx", 0, false).await.3, None, "read_uncommitted gets no list");

    // An open transaction holds the last stable offset at its first offset.
    assert_eq!(add_partitions(&mut c, "a", q, "tx", vec![0]).await, vec![0]);
    assert_eq!(produce_txn(&mut c, "tx", q, 0, 2).await, (0, 7));
    let (_, hw, lso, list, batches) = fetch(&mut c, "tx", 7, true).await;
    assert_eq!((hw, lso, list, batches), (9, 7, Some(vec![]), vec![]));
    assert_eq!((latest(&mut c, "tx", true).await, latest(&mut c, "tx", false).await), (7, 9));
    assert_eq!(end_txn(&mut c, 3, "a", q, false).await, 0);
    assert_eq!((latest(&mut c, "tx", true).await, latest(&mut c, "tx", false).await), (10, 10));
    broker.shutdown().await;
}

async fn add_group(c: &mut Client, p: (i64, i16)) -> i16 {
    let request = AddOffsetsToTxnRequest::default().with_transactional_id(txn_id("o")).with_producer_id(ProducerId(p.0)).with_producer_epoch(p.1).with_group_id(GroupId(s("g")));
    c.call(request, 3).await.error_code
}

async fn commit_offset(c: &mut Client, p: (i64, i16), offset: i64) -> i16 {
    commit_offset_at(c, 3, "o", p, offset).await
}

async fn commit_offset_at(c: &mut Client, version: i16, id: &str, p: (i64, i16), offset: i64) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(p.0))
        .with_producer_epoch(p.1)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(name("src"))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)])]);
    c.call(request, version).await.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn txn_offsets_become_visible_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("src", 1).await;
    let p = init_ok(&mut c, "o").await;
    assert_eq!(commit_offset(&mut c, p, 5).await, code(ResponseError::InvalidTxnState), "the group was not added");
    assert_eq!(add_group(&mut c, p).await, 0);
    assert_eq!(commit_offset(&mut c, p, 5).await, 0);
    assert_eq!(committed(&mut c, "g", "src").await.0, -1, "held until the commit");
    assert_eq!(end_txn(&mut c, 3, "o", p, false).await, 0);
    assert_eq!(committed(&mut c, "g", "src").await.0, -1, "dropped by the abort");
    assert_eq!(add_group(&mut c, p).await, 0);
    assert_eq!(commit_offset(&mut c, p, 7).await, 0);
    assert_eq!(end_txn(&mut c, 3, "o", p, true).await, 0);
    assert_eq!(committed(&mut c, "g", "src").await.0, 7);
    broker.shutdown().await;
}

#[tokio::test]
async fn transactions_v2_add_partitions_and_groups_implicitly_and_bump_the_epoch_at_every_end() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("v2", 1).await;
    c.create_topic("src", 1).await;
    let features = c.call(kafka_protocol::messages::ApiVersionsRequest::default(), 3).await;
    let finalized: Vec<_> = features.finalized_features.iter().map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level)).collect();
    assert_eq!(finalized, vec![("transaction.version".to_string(), 2, 2)]);
    assert!(features.finalized_features_epoch >= 0);
    // A supported range starts at 1 below v4 (KIP-1022), which older clients need; at 0 from v4.
    let supported = |r: &kafka_protocol::messages::ApiVersionsResponse| r.supported_features.iter().map(|f| (f.min_version, f.max_version)).collect::<Vec<_>>();
    assert_eq!(supported(&features), vec![(1, 2)]);
    assert_eq!(supported(&c.call(kafka_protocol::messages::ApiVersionsRequest::default(), 4).await), vec![(0, 2)]);

    let p = init_ok(&mut c, "v2").await;
    // Produce v11 still needs AddPartitionsToTxn; v12 adds the partition itself.
    assert_eq!(produce_txn_at(&mut c, 11, "v2", p, 0, 2).await.0, code(ResponseError::InvalidTxnState));
    assert_eq!(produce_txn_at(&mut c, 12, "v2", p, 0, 2).await, (0, 0));
    // TxnOffsetCommit v5 adds the group itself.
    assert_eq!(commit_offset_at(&mut c, 4, "v2", p, 5).await, code(ResponseError::InvalidTxnState), "v4 needs AddOffsetsToTxn");
    assert_eq!(commit_offset_at(&mut c, 5, "v2", p, 5).await, 0);
    let described = c.call(DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("v2")]), 0).await;
    let topics: Vec<_> = described.transaction_states[0].topics.iter().map(|t| t.topic.to_string()).collect();
    assert_eq!(topics, vec!["v2".to_string()]);

    // The end bumps the epoch and says so; a retry with the old epoch gets the same answer.
    let q = (p.0, p.1 + 1);
    assert_eq!(end_txn_v5(&mut c, 5, "v2", p, true).await, (0, q));
    assert_eq!(end_txn_v5(&mut c, 5, "v2", p, true).await, (0, q), "a retry");
    assert_eq!(committed(&mut c, "g", "src").await.0, 5);
    // A late batch of the ended transaction cannot open the next one.
    assert_eq!(produce_txn_at(&mut c, 12, "v2", p, 2, 1).await.0, code(ResponseError::InvalidProducerEpoch));
    assert_eq!(produce_txn_at(&mut c, 12, "v2", q, 0, 3).await, (0, 3));
    let r = (q.0, q.1 + 1);
    assert_eq!(end_txn_v5(&mut c, 5, "v2", q, false).await, (0, r));
    assert_eq!(end_txn_v5(&mut c, 5, "v2", r, true).await.0, code(ResponseError::InvalidTxnState), "nothing to commit");
    // An abort with nothing open still bumps, fencing batches that never arrived.
    assert_eq!(end_txn_v5(&mut c, 5, "v2", r, false).await, (0, (r.0, r.1 + 1)));
    assert_eq!(end_txn_v5(&mut c, 5, "v2", q, false).await.0, code(ResponseError::ProducerFenced));

    // 0-1 committed, 2 COMMIT, 3-5 aborted, 6 ABORT.
    let (_, hw, lso, list, batches) = fetch(&mut c, "v2", 0, true).await;
    assert_eq!((hw, lso, list, batches), (7, 7, Some(vec![aborted(p.0, 3)]), vec![0, 2, 3, 6]));
    broker.shutdown().await;

    // transaction.version=1 tells clients to keep to the explicit protocol.
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("transaction.version", "1")]).await;
    let mut c = Client::connect(&broker).await;
    let features = c.call(kafka_protocol::messages::ApiVersionsRequest::default(), 3).await;
    assert_eq!((features.finalized_features[0].min_version_level, features.finalized_features[0].max_version_level), (1, 1));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_transactions_v2_end_at_the_last_epoch_hands_on_a_new_producer_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("v2", 1).await;
    let (pid, _) = init_ok(&mut c, "v2").await;
    broker.shutdown().await;
    set_state(dir.path(), "v2", |m| m.producer_epoch = i16::MAX - 2);

    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let p = (pid, i16::MAX - 2);
    assert_eq!(produce_txn_at(&mut c, 12, "v2", p, 0, 1).await, (0, 0));
    let (error, next) = end_txn_v5(&mut c, 5, "v2", p, true).await;
    assert_eq!(error, 0);
    assert!(next.0 != pid && next.1 == 0, "the bump reached the last epoch: a new producer id, {next:?}");
    assert_eq!(produce_txn_at(&mut c, 12, "v2", next, 0, 1).await, (0, 2));
    assert_eq!(end_txn_v5(&mut c, 5, "v2", next, true).await, (0, (next.0, 1)));
    broker.shutdown().await;
}

#[tokio::test]
async fn describe_and_list_transactions_as_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("d", 2).await;
    let a = init_ok(&mut c, "d-a").await;
    let b = init_ok(&mut c, "d-b").await;
    assert_eq!(add_partitions(&mut c, "d-a", a, "d", vec![1, 0]).await, vec![0, 0]);

    let described = c.call(DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("d-a"), txn_id("nope")]), 0).await;
    let open = &described.transaction_states[0];
    assert_eq!((open.error_code, open.transaction_state.as_str(), open.producer_id.0, open.transaction_timeout_ms), (0, "Ongoing", a.0, 60_000));
    assert_eq!(open.topics.len(), 1);
    assert_eq!((open.topics[0].topic.as_str(), open.topics[0].partitions.clone()), ("d", vec![0, 1]));
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(described.transaction_states[1].error_code, code(ResponseError::TransactionalIdNotFound));

    let list = |filters: Vec<&str>, pids: Vec<i64>| {
        ListTransactionsRequest::default()
            .with_state_filters(filters.into_iter().map(s).collect())
            .with_producer_id_filters(pids.into_iter().map(ProducerId).collect())
            .with_duration_filter(-1)
    };
    let ids = |r: &kafka_protocol::messages::list_transactions_response::ListTransactionsResponse| r.transaction_states.iter().map(|t| t.transactional_id.to_string()).collect::<Vec<_>>();
    let all = c.call(list(vec![], vec![]), 1).await;
    assert_eq!(ids(&all), vec!["d-a", "d-b"]);
    let ongoing = c.call(list(vec!["Ongoing", "Bogus"], vec![]), 1).await;
    assert_eq!((ids(&ongoing), ongoing.unknown_state_filters.iter().map(|f| f.to_string()).collect::<Vec<_>>()), (vec!["d-a".to_string()], vec!["Bogus".to_string()]));
    assert_eq!(ids(&c.call(list(vec![], vec![b.0]), 0).await), vec!["d-b"]);
    broker.shutdown().await;
}

/// Rewrites a stored transaction state while no broker holds the store.
fn set_state(dir: &std::path::Path, id: &str, change: impl FnOnce(&mut TxnMeta)) {
    let store = LogStore::open(dir).unwrap();
    let key = [b"x/".as_slice(), id.as_bytes()].concat();
    let mut meta = TxnMeta::decode(&store.meta().get(&key).unwrap().expect("a stored state")).unwrap();
    change(&mut meta);
    store.meta().write_now(&[(&key, Some(&meta.encode()))]).unwrap();
}

#[tokio::test]
async fn a_commit_prepared_before_a_crash_is_completed_at_restart_with_one_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p;
    {
        let broker = start(dir.path()).await;
        let mut c = Client::connect(&broker).await;
        c.create_topic("crash", 1).await;
        p = init_ok(&mut c, "k").await;
        assert_eq!(add_partitions(&mut c, "k", p, "crash", vec![0]).await, vec![0]);
        assert_eq!(produce_txn(&mut c, "crash", p, 0, 3).await, (0, 0));
        broker.shutdown().await;
    }
    // What a kill right after EndTxn stored PrepareCommit leaves: no marker yet.
    set_state(dir.path(), "k", |m| {
        assert_eq!(m.state, TxnState::Ongoing);
        m.state = TxnState::PrepareCommit;
    });
    let committed_log_end = {
        let broker = start(dir.path()).await;
        let mut c = Client::connect(&broker).await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let (_, hw, lso, _, batches) = fetch(&mut c, "crash", 0, true).await;
            if lso == 4 {
                assert_eq!((hw, batches), (4, vec![0, 3]), "the data and one COMMIT marker");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the prepared commit was not completed");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The transaction is complete: the producer goes on with its next one.
        assert_eq!(end_txn(&mut c, 3, "k", p, true).await, 0, "a retry of the commit");
        broker.shutdown().await;
        4
    };
    // A kill after the markers but before the completion was stored: the markers are not
    // written again.
    set_state(dir.path(), "k", |m| {
        m.state = TxnState::PrepareCommit;
        m.partitions.insert(("crash".to_string(), 0));
    });
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while end_txn(&mut c, 3, "k", p, true).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the prepared commit was not completed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, hw, lso, _, batches) = fetch(&mut c, "crash", 0, true).await;
    assert_eq!((hw, lso, batches), (committed_log_end, committed_log_end, vec![0, 3]));
    broker.shutdown().await;
}

/// An idempotent producer id (InitProducerId without a transactional id).
async fn idempotent_pid(c: &mut Client) -> i64 {
    let r = c.call(InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(-1).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await;
    assert_eq!(r.error_code, 0);
    r.producer_id.0
}

#[tokio::test]
async fn write_txn_markers_ends_a_transaction_the_coordinator_never_knew_once() {
    let dir = tempfile::tempdir().unwrap();
    // Without the coordinator's check, a transactional batch opens a transaction nobody ends.
    let broker = start_with(dir.path(), &[("transaction.partition.verification.enable", "false")]).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("hang", 1).await;
    assert_eq!(producers(&mut c, "hang", 0).await, (0, vec![]), "an idle partition has none");
    let pid = idempotent_pid(&mut c).await;
    assert_eq!(produce_txn(&mut c, "hang", (pid, 0), 0, 3).await, (0, 0));
    assert_eq!(producers(&mut c, "hang", 0).await, (0, vec![(pid, 0, 2, -1, 0)]), "open at 0, no marker yet");
    assert_eq!(latest(&mut c, "hang", true).await, 0, "the open transaction holds the last stable offset");

    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 0), 0, false).await, vec![0]);
    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 0), 0, false).await, vec![0], "a retry succeeds");
    let (error, hw, lso, list, batches) = fetch(&mut c, "hang", 0, true).await;
    assert_eq!((error, hw, lso, batches), (0, 4, 4, vec![0, 3]), "one ABORT marker, written once");
    assert_eq!(list, Some(vec![aborted(pid, 0)]));
    assert_eq!(producers(&mut c, "hang", 0).await, (0, vec![(pid, 0, 2, 0, -1)]));

    // A second transaction at epoch 1: a marker of epoch 0 is stale.
    assert_eq!(produce_txn(&mut c, "hang", (pid, 1), 0, 2).await, (0, 4));
    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 0), 0, true).await, vec![code(ResponseError::InvalidProducerEpoch)]);
    // A coordinator epoch older than the last marker's is fenced.
    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 1), 5, true).await, vec![0]);
    assert_eq!(produce_txn(&mut c, "hang", (pid, 1), 2, 1).await, (0, 7));
    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 1), 4, false).await, vec![code(ResponseError::TransactionCoordinatorFenced)]);
    assert_eq!(producers(&mut c, "hang", 0).await, (0, vec![(pid, 1, 2, 5, 7)]), "still open at 7");
    assert_eq!(write_marker(&mut c, "hang", vec![0], (pid, 1), 5, false).await, vec![0]);
    let (_, hw, lso, list, batches) = fetch(&mut c, "hang", 4, true).await;
    assert_eq!((hw, lso, batches), (9, 9, vec![4, 6, 7, 8]), "committed 4-5, COMMIT at 6, aborted 7, ABORT at 8");
    assert_eq!(list, Some(vec![aborted(pid, 7)]));

    // Unknown topics and partitions, each answered on its own.
    assert_eq!(write_marker(&mut c, "hang", vec![9, 0], (pid, 1), 5, false).await, vec![code(ResponseError::UnknownTopicOrPartition), 0]);
    assert_eq!(write_marker(&mut c, "nope", vec![0], (pid, 1), 5, false).await, vec![code(ResponseError::UnknownTopicOrPartition)]);
    assert_eq!(producers(&mut c, "nope", 0).await.0, code(ResponseError::UnknownTopicOrPartition));
    assert_eq!(fetch(&mut c, "hang", 0, false).await.2, 9, "nothing more was written");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_coordinators_own_markers_show_in_describe_producers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(&broker).await;
    c.create_topic("busy", 1).await;
    let p = init_ok(&mut c, "busy").await;
    assert_eq!(add_partitions(&mut c, "busy", p, "busy", vec![0]).await, vec![0]);
    assert_eq!(produce_txn(&mut c, "busy", p, 0, 2).await, (0, 0));
    assert_eq!(produce_txn(&mut c, "busy", p, 2, 3).await, (0, 2));
    assert_eq!(producers(&mut c, "busy", 0).await, (0, vec![(p.0, 0, 4, -1, 0)]));
    assert_eq!(end_txn(&mut c, 3, "busy", p, true).await, 0);
    assert_eq!(producers(&mut c, "busy", 0).await, (0, vec![(p.0, 0, 4, 0, -1)]), "closed by the coordinator's COMMIT (epoch 0)");
    // With verification on (the default), a batch of a producer the coordinator does not
    // know is refused, so no transaction can hang.
    let pid = idempotent_pid(&mut c).await;
    assert_eq!(produce_txn(&mut c, "busy", (pid, 0), 0, 1).await.0, code(ResponseError::InvalidProducerIdMapping));
    broker.shutdown().await;
}
