"""The Prometheus endpoint (``metrics.listener``): it parses as the text format, and its values
move under a real client's load: bytes and records in and out of a topic, Produce and Fetch
request counts and latencies, connections, and a committing group's lag, which appears when
records arrive and goes back to 0 once they are consumed and committed. A bad
``metrics.listener`` refuses the start with a message naming the key."""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import (CLIENT_TIMEOUT_S, ScriptCluster, close_client, free_port, gregor_binary,
                      kp_admin, kp_consumer, kp_create_topic, kp_drain, kp_producer,
                      unique_topic, wait_until)

# A sample line: name, optional {labels}, value (no timestamps: Gregor writes none).
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
# The series a histogram or summary family writes under its own name.
SUFFIXES = ("_bucket", "_sum", "_count")


def parse(text: str) -> dict:
    """Prometheus text format 0.0.4, strictly: every sample belongs to a family declared by a
    TYPE line before it, labels are well-formed and unique, values are floats, and no series
    appears twice. Returns {(name, frozenset of label pairs): value}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, samples = {}, {}
    for number, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {number}: {line!r}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert len(parts) == 4 and parts[3] in TYPES, where
                assert parts[2] not in types, f"{where}: family declared twice"
                types[parts[2]] = parts[3]
            continue
        match = SAMPLE.match(line)
        assert match, f"{where}: not a sample"
        name, labels, value = match.groups()
        family = name if name in types else next(
            (name[: -len(s)] for s in SUFFIXES if name.endswith(s) and name[: -len(s)] in types), None)
        assert family is not None, f"{where}: no TYPE line for {name}"
        if family != name:
            assert types[family] in ("histogram", "summary"), where
        pairs = []
        rest = labels or ""
        while rest:
            label = LABEL.match(rest)
            assert label, f"{where}: bad labels"
            pairs.append((label.group(1), label.group(2)))
            rest = rest[label.end():]
        assert len({k for k, _ in pairs}) == len(pairs), f"{where}: a label repeats"
        key = (name, frozenset(pairs))
        assert key not in samples, f"{where}: series repeats"
        samples[key] = float(value)  # "+Inf", "NaN" and the like parse too
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """One series' value, 0 when it is absent (a counter not yet bumped)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def get(port: int, path: str = "/metrics", method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(port: int) -> dict:
    status, content_type, body = get(port)
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    return parse(body)


def test_values_move_under_load(metered, closing):
    broker, port = metered
    topic, group = unique_topic("metrics"), unique_topic("metrics-group")
    kp_create_topic(broker.bootstrap, topic, 1)
    before = wait_until(lambda: scrape(port), message="a first scrape")
    tp = dict(topic=topic, partition="0")

    producer = closing(kp_producer(broker.bootstrap, linger_ms=5))
    for i in range(50):
        producer.send(topic, f"record-{i}".encode() + b"." * 100)
    producer.flush(timeout=CLIENT_TIMEOUT_S)
    consumer = closing(kp_consumer(broker.bootstrap, group_id=group, auto_offset_reset="earliest"))
    consumer.subscribe([topic])
    assert len(kp_drain(consumer, 50)) == 50
    consumer.commit()

    during = scrape(port)
    assert value(during, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 50
    bytes_in = value(during, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    assert bytes_in > 50 * 100
    assert value(during, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= bytes_in
    assert value(during, "gregor_brokertopicmetrics_messagesout_total", topic=topic) >= 50
    assert value(during, "kafka_log_log_logendoffset", **tp) == 50
    assert value(during, "kafka_log_log_size", **tp) > 0
    for request in ("Produce", "Fetch", "OffsetCommit", "JoinGroup"):
        assert (value(during, "kafka_network_requestmetrics_requests_total", request=request)
                > value(before, "kafka_network_requestmetrics_requests_total", request=request)), request
        latencies = value(during, "kafka_network_requestmetrics_totaltime_seconds_count", request=request)
        assert latencies > value(before, "kafka_network_requestmetrics_totaltime_seconds_count", request=request)
        assert value(during, "kafka_network_requestmetrics_totaltime_seconds_bucket",
                     request=request, le="+Inf") == latencies
    assert (value(during, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE")
            > value(before, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE"))
    # The producer and the consumer (with its coordinator connection) are connected now.
    connections = value(during, "kafka_server_socketservermetrics_connection_count", listener="PLAINTEXT")
    assert connections >= 2
    assert (value(during, "kafka_server_socketservermetrics_connection_creation_total", listener="PLAINTEXT")
            > value(before, "kafka_server_socketservermetrics_connection_creation_total", listener="PLAINTEXT"))
    group_tp = dict(group=group, **tp)
    assert value(during, "kafka_consumergroup_current_offset", **group_tp) == 50
    assert (("kafka_consumergroup_lag", frozenset(group_tp.items()))) in during
    assert value(during, "kafka_consumergroup_lag", **group_tp) == 0

    # New records: the group lags behind until it consumes and commits them.
    for i in range(30):
        producer.send(topic, f"more-{i}".encode())
    producer.flush(timeout=CLIENT_TIMEOUT_S)
    lagging = scrape(port)
    assert value(lagging, "kafka_consumergroup_lag", **group_tp) == 30
    assert value(lagging, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 80
    assert len(kp_drain(consumer, 30)) == 30
    consumer.commit()
    caught_up = scrape(port)
    assert value(caught_up, "kafka_consumergroup_lag", **group_tp) == 0
    assert value(caught_up, "kafka_consumergroup_current_offset", **group_tp) == 80

    close_client(consumer)
    close_client(producer)
    wait_until(lambda: value(scrape(port), "kafka_server_socketservermetrics_connection_count",
                             listener="PLAINTEXT") < connections,
               message="the connection gauge to fall once the clients close")

    # A deleted topic's series go, as in Kafka.
    admin = closing(kp_admin(broker.bootstrap))
    admin.delete_topics([topic], timeout_ms=10000)
    wait_until(lambda: not any(dict(labels).get("topic") == topic for _, labels in scrape(port)),
               message="the deleted topic's series to go")


def test_lone_node_gauges(metered):
    _, port = metered
    samples = scrape(port)
    assert value(samples, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(samples, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    assert value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    for name in ("gregor_rocksdb_memtable_bytes", "gregor_rocksdb_block_cache_usage_bytes",
                 "gregor_rocksdb_live_data_size_bytes", "gregor_rocksdb_sst_files_size_bytes",
                 "gregor_rocksdb_blob_files_size_bytes", "gregor_rocksdb_write_stopped",
                 "gregor_rocksdb_delayed_write_rate_bytes", "gregor_rocksdb_write_stalls_total"):
        assert (name, frozenset()) in samples, name
        assert math.isfinite(samples[(name, frozenset())]) and samples[(name, frozenset())] >= 0
    assert value(samples, "gregor_rocksdb_write_stopped") == 0


def test_other_requests_are_refused(metered):
    _, port = metered
    assert get(port, "/nothing-here")[0] == 404
    assert get(port, "/metrics", method="POST")[0] == 405
    status, _, body = get(port, "/metrics", method="HEAD")
    assert status == 200 and body == ""
    # Not HTTP at all: the answer is 400 and the connection is closed.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")


ACTIVE = "kafka_controller_kafkacontroller_activecontrollercount"
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"
OFFLINE = "kafka_controller_kafkacontroller_offlinepartitionscount"


def test_cluster_gauges_follow_a_killed_node():
    """Three nodes: one active controller; no partition under-replicated while all run; a killed
    node leaves the replicated partition under-replicated on its leader, and the partition it
    alone held offline on the active controller."""
    from confluent_kafka.admin import AdminClient, NewTopic

    cluster = ScriptCluster(3, metrics=True)
    try:
        bootstrap = cluster.all_live()
        ports = {node: cluster.metrics_port + node - 1 for node in (1, 2, 3)}

        def gauges(name, nodes=(1, 2, 3)):
            return {node: value(scrape(ports[node]), name) for node in nodes}

        def active_controllers():
            found = [node for node, v in gauges(ACTIVE).items() if v == 1]
            return found if len(found) == 1 else None

        (active,) = wait_until(active_controllers, message=lambda: f"exactly one active controller\n{cluster.log()}")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic("replicated", num_partitions=1, replication_factor=3),
                                           NewTopic("single", num_partitions=3, replication_factor=1)]).values():
            future.result(30)

        def leaders(topic):
            t = admin.list_topics(topic, timeout=10).topics[topic]
            found = {i: p.leader for i, p in t.partitions.items() if p.error is None and p.leader >= 0}
            return found if len(found) == len(t.partitions) and found else None

        single = wait_until(lambda: leaders("single"), message="leaders of every partition of single")
        wait_until(lambda: leaders("replicated"), message="a leader of replicated")
        wait_until(lambda: sum(gauges(UNDER_REPLICATED).values()) == 0, message="no partition under-replicated")
        assert gauges(OFFLINE) == {1: 0, 2: 0, 3: 0}

        victim = next(leader for leader in single.values() if leader != active)
        os.kill(cluster.node_pid(victim), signal.SIGKILL)
        survivors = tuple(n for n in (1, 2, 3) if n != victim)
        wait_until(lambda: sum(gauges(UNDER_REPLICATED, survivors).values()) == 1, timeout=CLIENT_TIMEOUT_S,
                   message=lambda: f"replicated to be under-replicated on its leader\n{cluster.log()}")
        lost = sum(1 for leader in single.values() if leader == victim)
        wait_until(lambda: gauges(OFFLINE, survivors) == {n: (lost if n == active else 0) for n in survivors},
                   message=lambda: f"{lost} offline partition(s) on controller {active}\n{cluster.log()}")
    finally:
        cluster.stop()


def test_controller_only_nodes_serve_the_quorum_gauges():
    """Dedicated controllers (process.roles=controller) serve /metrics too, with no console: every
    member names the same active controller, which counts the live and fenced brokers."""
    cluster = ScriptCluster(2, controllers=3, metrics=True)
    try:
        cluster.all_live()
        ports = {node: cluster.metrics_port + node - 1 for node in range(1, 6)}
        leader = "kafka_server_raft_metrics_current_leader"
        brokers = "kafka_controller_kafkacontroller_activebrokercount"
        fenced = "kafka_controller_kafkacontroller_fencedbrokercount"

        def settled():
            samples = {node: scrape(ports[node]) for node in ports}
            active = [node for node in (1, 2, 3) if value(samples[node], ACTIVE) == 1]
            named = {value(s, leader) for s in samples.values()}
            if len(active) == 1 and named == {active[0]} and value(samples[active[0]], brokers) == 2:
                return active[0], samples
            return None

        active, samples = wait_until(settled, message=lambda: f"one active controller that every node names\n{cluster.log()}")
        assert value(samples[active], fenced) == 0 and value(samples[active], OFFLINE) == 0
        for node in (1, 2, 3):
            assert value(samples[node], "kafka_server_raft_metrics_high_watermark") > 0
            assert value(samples[node], "kafka_server_raft_metrics_current_epoch") >= 1
            assert ("gregor_rocksdb_memtable_bytes", frozenset()) in samples[node]
            if node != active:
                assert value(samples[node], brokers) == 0, "only the active controller counts brokers"
        assert get(ports[active], "/")[0] == 404

        os.kill(cluster.node_pid(5), signal.SIGKILL)
        wait_until(lambda: (value(scrape(ports[active]), fenced), value(scrape(ports[active]), brokers)) == (1, 1),
                   timeout=CLIENT_TIMEOUT_S, message=lambda: f"broker 5 fenced on controller {active}\n{cluster.log()}")
    finally:
        cluster.stop()


@pytest.mark.parametrize("address, why", [
    ("nonsense", "needs host:port"),
    ("127.0.0.1:99999", "bad port"),
    ("in-use", "cannot listen on"),
])
def test_bad_metrics_listener_refuses_start(address, why):
    with tempfile.TemporaryDirectory(prefix="gregor-metrics-") as data, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        if address == "in-use":
            address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run(
            [gregor_binary(), "--listeners", f"PLAINTEXT://127.0.0.1:{free_port()}",
             "--log-dirs", data, "--metrics-listener", address],
            env={k: v for k, v in os.environ.items() if not k.startswith("GREGOR_")},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert done.returncode != 0, done.stderr
    assert "metrics.listener" in done.stderr and why in done.stderr, done.stderr
