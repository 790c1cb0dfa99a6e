"""A three-node cluster started as `scripts/cluster 3` starts it, seen by kafka-python's admin
client: every broker and the active controller, from any bootstrap node; a killed node is
fenced and leaves the broker list; stopping the script stops every node. Replicated topics and
groups survive a killed leader or coordinator; Kafka's own kafka-topics and
kafka-consumer-groups work against the cluster."""

from __future__ import annotations

import os
import signal
import time

import pytest
from kafka import KafkaAdminClient

from conftest import CLIENT_TIMEOUT_S, JAVA, ScriptCluster, brokers_seen, kafka_tool, port_accepts, wait_until


def offsets_partition(group: str, partitions: int = 50) -> int:
    """The partition of __consumer_offsets a group lives in: Kafka's abs(String.hashCode) % 50."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (h * 31 + int(unit, 16)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def test_every_node_sees_the_cluster_and_a_killed_node_is_fenced(cluster):
    everyone = {1, 2, 3}
    views = [wait_until(lambda b=b: brokers_seen(b, everyone), timeout=CLIENT_TIMEOUT_S,
                        message=lambda b=b: f"{b} to list brokers 1-3\n{cluster.log()}") for b in cluster.bootstrap]
    assert len({v["cluster_id"] for v in views}) == 1
    ports = {b["broker_id"]: b["port"] for b in views[0]["brokers"]}
    assert ports == {i + 1: cluster.port + i for i in range(3)}
    controller = views[0]["controller_id"]

    victim = next(i for i in everyone if i != controller)
    pid = cluster.node_pid(victim)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    survivor = cluster.bootstrap[controller - 1]
    wait_until(lambda: brokers_seen(survivor, everyone - {victim}), timeout=CLIENT_TIMEOUT_S,
               message=lambda: f"broker {victim} to be fenced\n{cluster.log()}")
    assert time.monotonic() - killed < 10

    cluster.stop()
    for i in range(3):
        assert not port_accepts(cluster.port + i), "scripts/cluster stops every node"


def test_replicated_topic_survives_its_leader_with_confluent_kafka(cluster):
    """kafka-topics' path through librdkafka: a topic with replication factor 3 created through
    one node, acks=all writes, the partition leader's node killed, every acknowledged record
    read back from the new leader."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = cluster.all_live()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("replicated", num_partitions=2, replication_factor=3)])["replicated"].result(30)
    too_many = admin.create_topics([NewTopic("too-many", num_partitions=1, replication_factor=4)])["too-many"]
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication factor"):
        too_many.result(30)

    def partition0():
        t = admin.list_topics("replicated", timeout=10).topics["replicated"]
        p = t.partitions.get(0)
        return p if p is not None and p.error is None and sorted(p.isrs) == [1, 2, 3] else None

    p0 = wait_until(partition0, timeout=CLIENT_TIMEOUT_S, message="partition 0 with its three replicas in sync")
    assert sorted(p0.replicas) == [1, 2, 3]

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    acked = []
    for i in range(200):
        producer.produce("replicated", value=f"v{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None)
    assert producer.flush(30) == 0
    assert len(acked) == 200

    os.kill(cluster.node_pid(p0.leader), signal.SIGKILL)

    def new_leader():
        t = admin.list_topics("replicated", timeout=10).topics["replicated"]
        p = t.partitions.get(0)
        return p.leader if p is not None and p.leader not in (-1, p0.leader) else None

    wait_until(new_leader, timeout=CLIENT_TIMEOUT_S, message=lambda: f"a new leader\n{cluster.log()}")
    # The producer carries on against the new leader.
    for i in range(200, 250):
        producer.produce("replicated", value=f"v{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None)
    assert producer.flush(30) == 0
    assert len(acked) == 250

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replicated-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("replicated", 0, 0)])
    seen = []
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(seen) < 250 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    consumer.close()
    assert seen == acked, f"read {len(seen)} of {len(acked)} acknowledged records"


def test_kafka_python_produces_and_consumes_through_a_leader_failover(cluster):
    """kafka-python 3's KafkaProducer (acks=all, idempotent) keeps writing to an RF=3 partition
    while its leader's node is killed, and a KafkaConsumer in a group reads every acknowledged
    record once, across the failover (its coordinator may die too)."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.errors import KafkaConnectionError

    bootstrap = cluster.all_live()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic("kp-failover", 1, 3, topic_configs={"min.insync.replicas": "2"})])

        def in_sync():
            topic = admin.describe_topics(["kp-failover"])[0]
            p = topic["partitions"][0] if topic["partitions"] else None
            return p if p and p["leader_id"] > 0 and sorted(p["isr_nodes"]) == [1, 2, 3] else None
        leader = wait_until(in_sync, timeout=CLIENT_TIMEOUT_S, message="kp-failover in sync")["leader_id"]
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             retries=100, request_timeout_ms=10000, delivery_timeout_ms=60000)
    # Joined before the kill: __consumer_offsets is created only while as many brokers as its
    # replication factor (3) are live, as in Kafka.
    consumer = KafkaConsumer("kp-failover", bootstrap_servers=bootstrap, group_id="kp-failover-group",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    seen = []

    def read():
        try:
            return [m.value for records in consumer.poll(timeout_ms=500).values() for m in records]
        except KafkaConnectionError:
            # kafka-python 3 raises a refused connection to the dead node out of poll while the
            # node is still listed (not yet fenced); users poll again.
            time.sleep(0.2)
            return []
    try:
        # kafka-python 3.0.12 can miss the assignment of a rebalance that follows one made without
        # the topic's metadata: it knows the topic before its first join.
        wait_until(lambda: consumer.partitions_for_topic("kp-failover"), timeout=CLIENT_TIMEOUT_S, message="kp-failover in the consumer's metadata")
        wait_until(lambda: seen.extend(read()) or consumer.assignment(), timeout=CLIENT_TIMEOUT_S, message="the consumer to join its group")
        sent = [producer.send("kp-failover", f"k{i}".encode()) for i in range(100)]
        acked = [f.get(timeout=30) and f"k{i}".encode() for i, f in enumerate(sent)]
        os.kill(cluster.node_pid(leader), signal.SIGKILL)
        # Sent while the old leader is dead and not yet fenced: the producer retries until the
        # new leader takes them.
        sent = [producer.send("kp-failover", f"k{i}".encode()) for i in range(100, 200)]
        acked += [f.get(timeout=60) and f"k{i}".encode() for i, f in enumerate(sent, start=100)]
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(seen) < len(acked) and time.monotonic() < deadline:
            seen += read()
        assert seen == acked, f"read {len(seen)} of {len(acked)} acknowledged records"
    finally:
        producer.close(timeout=10)
        consumer.close()


def test_committed_offsets_survive_their_group_coordinator_with_confluent_kafka(cluster):
    """Groups live in the replicated __consumer_offsets: a group commits, its coordinator's node
    is killed, kafka-python's admin client reads the commit from the new coordinator, and the
    group's next member finds it and resumes exactly where the commit left off."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = cluster.all_live()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=3)])["orders"].result(30)

    def in_sync():
        t = admin.list_topics("orders", timeout=10).topics["orders"]
        return all(p.error is None and sorted(p.isrs) == [1, 2, 3] for p in t.partitions.values()) or None

    wait_until(in_sync, timeout=CLIENT_TIMEOUT_S, message="every partition with its three replicas in sync")
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(300):
        producer.produce("orders", value=f"v{i}".encode(), partition=i % 3)
    assert producer.flush(30) == 0

    def consume(consumer, count, timeout=CLIENT_TIMEOUT_S):
        seen = []
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
        return seen

    settings = {"bootstrap.servers": bootstrap, "group.id": "survivor", "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    first = Consumer(settings)
    first.subscribe(["orders"])
    before = consume(first, 150)
    assert len(before) == 150, f"read {len(before)} of 150 before the kill\n{cluster.log()}"
    first.commit(asynchronous=False)
    first.close()
    # A member of another group in the same partition of __consumer_offsets (so with the same
    # coordinator) stays up through the kill.
    live_group = next(g for g in (f"live-{i}" for i in range(1000)) if offsets_partition(g) == offsets_partition("survivor"))
    live = Consumer({**settings, "group.id": live_group})
    live.subscribe(["orders"])
    live_seen = consume(live, 100)
    live.commit(asynchronous=False)

    group = admin.describe_consumer_groups(["survivor"])["survivor"].result(30)
    coordinator = group.coordinator.id
    assert coordinator in (1, 2, 3)
    os.kill(cluster.node_pid(coordinator), signal.SIGKILL)
    survivors = [b for i, b in enumerate(cluster.bootstrap) if i + 1 != coordinator]

    survivors_admin = AdminClient({"bootstrap.servers": ",".join(survivors)})

    def moved():
        try:
            g = survivors_admin.describe_consumer_groups(["survivor"])["survivor"].result(10)
        except Exception:  # no coordinator yet
            return None
        return g.coordinator.id if g.coordinator.id not in (-1, coordinator) else None

    wait_until(moved, timeout=CLIENT_TIMEOUT_S, message=lambda: f"a new coordinator for the group\n{cluster.log()}")
    # kafka-python's admin client reads the commit from the new coordinator too.
    kp_admin = KafkaAdminClient(bootstrap_servers=survivors, request_timeout_ms=10000)
    try:
        offsets = kp_admin.list_group_offsets("survivor")["survivor"]
    finally:
        kp_admin.close()
    assert sum(o.offset for o in offsets.values()) == 150, offsets
    second = Consumer({**settings, "bootstrap.servers": ",".join(survivors)})
    second.subscribe(["orders"])
    after = consume(second, 150)
    extra = consume(second, 1, timeout=3)
    second.close()
    assert not set(before) & set(after), "records read again: the commit was lost"
    assert sorted(before + after + extra) == sorted(f"v{i}".encode() for i in range(300)), \
        f"read {len(after)} after the kill\n{cluster.log()}"

    # The live member found the new coordinator by itself, read the rest (at least once) and
    # commits there.
    live_seen += consume(live, 300 - len(set(live_seen)))
    assert set(live_seen) == {f"v{i}".encode() for i in range(300)}, f"the live member read {len(set(live_seen))}"
    live.commit(asynchronous=False)
    live.close()
    kp_admin = KafkaAdminClient(bootstrap_servers=survivors, request_timeout_ms=10000)
    try:
        assert sum(o.offset for o in kp_admin.list_group_offsets(live_group)[live_group].values()) == 300
    finally:
        kp_admin.close()


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_topics_and_kafka_consumer_groups_against_the_cluster(cluster, tools_classpath):
    """Kafka 4.1's own kafka-topics creates a replicated topic through the cluster and describes
    its leaders spread over the brokers; kafka-consumer-groups lists and describes a group that
    the cluster coordinates on one of them."""
    from confluent_kafka import Consumer, Producer

    bootstrap = cluster.all_live()

    def topics(*args):
        return kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand", bootstrap, *args)

    code, out, err = topics("--create", "--topic", "tooled", "--partitions", "3", "--replication-factor", "3")
    assert code == 0 and "Created topic tooled." in out, out + err

    def described():
        code, out, _ = topics("--describe", "--topic", "tooled")
        rows = [line for line in out.splitlines() if "Partition:" in line and "Leader:" in line]
        fields = [dict(zip(*[iter(line.replace(":", "").split())] * 2)) for line in rows]
        in_sync = code == 0 and len(fields) == 3 and all(len(f["Isr"].split(",")) == 3 for f in fields)
        return fields if in_sync else None

    fields = wait_until(described, timeout=CLIENT_TIMEOUT_S, message="kafka-topics to describe three partitions in sync")
    assert {f["Leader"] for f in fields} == {"1", "2", "3"}, fields
    assert all(sorted(f["Replicas"].split(",")) == ["1", "2", "3"] for f in fields), fields
    code, out, err = topics("--list")
    assert code == 0 and "tooled" in out.split(), out + err

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(30):
        producer.produce("tooled", value=f"v{i}".encode(), partition=i % 3)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tooled-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["tooled"])
    seen = 0
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while seen < 30 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        seen += msg is not None and msg.error() is None
    assert seen == 30
    consumer.commit(asynchronous=False)
    consumer.close()

    def groups(*args):
        return kafka_tool(tools_classpath, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", bootstrap, *args)

    code, out, err = groups("--list")
    assert code == 0 and "tooled-group" in out.split(), out + err
    code, out, err = groups("--describe", "--group", "tooled-group")
    assert code == 0, out + err
    rows = [line.split() for line in out.splitlines() if line.startswith("tooled-group ")]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows) == [("tooled", str(p), "10", "10", "0") for p in range(3)], out


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_reassign_partitions_moves_a_topic_onto_a_new_broker_under_load(tools_classpath):
    """Kafka's add-a-broker runbook with Kafka 4.1's own tools: a topic on brokers 1-3 is moved
    by kafka-reassign-partitions (--execute, then --verify until done) so that broker 4 holds a
    replica of every partition and leads one, while an idempotent acks=all producer writes and
    a group consumes; kafka-leader-election then elects the preferred leaders. The application
    sees no error, and every acknowledged record is read exactly once."""
    import json
    import threading

    from confluent_kafka import Consumer, Producer

    cluster = ScriptCluster(4)
    try:
        bootstrap = cluster.all_live()

        def tool(main_class, *args):
            return kafka_tool(tools_classpath, main_class, bootstrap, *args)

        topics = "org.apache.kafka.tools.TopicCommand"
        code, out, err = tool(topics, "--create", "--topic", "moving", "--replica-assignment", "1:2:3,2:3:1,3:1:2",
                              "--config", "min.insync.replicas=2")
        assert code == 0, out + err

        errors, acked, stop = [], [], threading.Event()

        def produce():
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})

            def delivered(err, msg):
                (errors.append(str(err)) if err is not None else acked.append(msg.value()))
            i = 0
            while not stop.is_set():
                producer.produce("moving", value=f"m{i}".encode(), partition=i % 3, on_delivery=delivered)
                producer.poll(0)
                i += 1
                time.sleep(0.002)
            assert producer.flush(30) == 0

        consumed = []

        def consume():
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "moving-group", "auto.offset.reset": "earliest"})
            consumer.subscribe(["moving"])
            while not stop.is_set():
                msg = consumer.poll(0.2)
                if msg is not None:
                    (errors.append(f"consumer: {msg.error()}") if msg.error() else consumed.append(msg.value()))
            consumer.close()

        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(acked) > 300, timeout=CLIENT_TIMEOUT_S, message="the producer to get going")
            target = {0: [4, 2, 3], 1: [2, 4, 1], 2: [3, 1, 4]}
            plan = os.path.join(cluster.dir, "reassignment.json")
            with open(plan, "w") as f:
                json.dump({"version": 1, "partitions": [{"topic": "moving", "partition": p, "replicas": r} for p, r in target.items()]}, f)
            reassign = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
            # Throttled as operators do; --verify clears the throttle once done.
            code, out, err = tool(reassign, "--execute", "--reassignment-json-file", plan, "--throttle", "20000000")
            assert code == 0 and "Successfully started partition reassignments" in out and "throttle" in out, out + err

            def verified():
                code, out, err = tool(reassign, "--verify", "--reassignment-json-file", plan)
                assert code == 0, out + err
                done = all(f"Reassignment of partition moving-{p} is completed." in out for p in target)
                return out if done else None
            out = wait_until(verified, timeout=CLIENT_TIMEOUT_S, message=lambda: f"the reassignment to complete\n{cluster.log()}")
            assert "Clearing topic-level throttles on topic moving" in out, out
            code, out, err = tool("kafka.admin.ConfigCommand", "--describe", "--entity-type", "topics", "--entity-name", "moving")
            assert code == 0 and "throttled" not in out and "min.insync.replicas=2" in out, out + err

            def described():
                code, out, _ = tool(topics, "--describe", "--topic", "moving")
                rows = [dict(zip(*[iter(line.replace(":", "").split())] * 2)) for line in out.splitlines() if "Partition:" in line]
                view = {int(r["Partition"]): ([int(b) for b in r["Replicas"].split(",")], r["Leader"], sorted(r["Isr"].split(","))) for r in rows}
                done = len(view) == 3 and all(view[p][0] == target[p] and view[p][2] == sorted(map(str, target[p])) for p in target)
                return view if done else None
            wait_until(described, timeout=CLIENT_TIMEOUT_S, message="kafka-topics to show the new replicas in sync")

            election = "org.apache.kafka.tools.LeaderElectionCommand"
            code, out, err = tool(election, "--election-type", "PREFERRED", "--all-topic-partitions")
            assert code == 0, out + err
            leaders = wait_until(lambda: (lambda v: v if v and all(v[p][1] == str(target[p][0]) for p in target) else None)(described()),
                                 timeout=CLIENT_TIMEOUT_S, message="the preferred replicas to lead")
            assert leaders[0][1] == "4", leaders
            # Already preferred everywhere: nothing left to elect.
            code, out, err = tool(election, "--election-type", "PREFERRED", "--topic", "moving", "--partition", "0")
            assert code == 0 and "Valid replica already elected" in out, out + err
            settled = len(acked)
            wait_until(lambda: len(acked) > settled + 300, timeout=CLIENT_TIMEOUT_S, message="writes to go on after the election")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert errors == [], errors[:10]

        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "moving-check", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        reader.subscribe(["moving"])
        seen = []
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(seen) < len(acked) and time.monotonic() < deadline:
            msg = reader.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
        reader.close()
        assert sorted(seen) == sorted(acked), f"read {len(seen)} records, {len(set(seen))} distinct, of {len(acked)} acknowledged"
        assert set(consumed) <= set(acked)
    finally:
        cluster.stop()


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_dedicated_controllers_with_kafka_metadata_quorum_and_real_clients(tools_classpath):
    """Three dedicated controllers (process.roles=controller) and three brokers, as
    `GREGOR_CLUSTER_CONTROLLERS=3 scripts/cluster 3` starts them. Kafka 4.1's
    kafka-metadata-quorum describes the quorum through a broker: a controller leads, the three
    controllers vote, the brokers observe and follow the metadata log. Clients see only the
    brokers; kafka-topics creates a replicated topic; confluent-kafka writes with acks=all and
    reads back, through the kill of the active controller, after which another one leads."""
    from confluent_kafka import Consumer, Producer

    c = ScriptCluster(3, controllers=3)
    try:
        bootstrap = c.all_live()
        view = brokers_seen(c.bootstrap[0], {4, 5, 6})
        assert {b["broker_id"] for b in view["brokers"]} == {4, 5, 6}, view

        def quorum(*args):
            return kafka_tool(tools_classpath, "org.apache.kafka.tools.MetadataQuorumCommand", bootstrap, "describe", *args)

        def status():
            code, out, err = quorum("--status")
            fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
            return {k.strip(): v.strip() for k, v in fields.items()} if code == 0 else None

        s = wait_until(status, timeout=CLIENT_TIMEOUT_S, message=lambda: f"kafka-metadata-quorum --status\n{c.log()}")
        leader = int(s["LeaderId"])
        assert leader in (1, 2, 3), s
        assert int(s["HighWatermark"]) > 0 and int(s["LeaderEpoch"]) >= 1, s
        assert ['"id": 1', '"id": 2', '"id": 3'] == [f'"id": {i}' for i in (1, 2, 3) if f'"id": {i}' in s["CurrentVoters"]], s
        assert all(f'"id": {i}' in s["CurrentObservers"] for i in (4, 5, 6)), s
        code, out, err = quorum("--replication")
        assert code == 0, out + err
        rows = {int(r.split()[0]): r.split() for r in out.splitlines()[1:] if r.strip()}
        assert rows[leader][-1] == "Leader" and {rows[i][-1] for i in (1, 2, 3) if i != leader} == {"Follower"}, out
        assert {rows[i][-1] for i in (4, 5, 6)} == {"Observer"}, out

        code, out, err = kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand", bootstrap,
                                    "--create", "--topic", "dedicated", "--partitions", "3", "--replication-factor", "3")
        assert code == 0 and "Created topic dedicated." in out, out + err
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(30):
            producer.produce("dedicated", value=f"before-{i}".encode(), partition=i % 3)
        assert producer.flush(30) == 0

        os.kill(c.node_pid(leader), signal.SIGKILL)

        def new_leader():
            s = status()
            return s if s and int(s["LeaderId"]) not in (0, leader, -1) else None

        s = wait_until(new_leader, timeout=CLIENT_TIMEOUT_S, message=lambda: f"another controller to lead\n{c.log()}")
        assert int(s["LeaderId"]) in (1, 2, 3), s
        for i in range(30):
            producer.produce("dedicated", value=f"after-{i}".encode(), partition=i % 3)
        assert producer.flush(30) == 0
        code, out, err = kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand", bootstrap,
                                    "--create", "--topic", "after-the-kill", "--partitions", "1", "--replication-factor", "3")
        assert code == 0 and "Created topic after-the-kill." in out, out + err

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dedicated-group",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe(["dedicated"])
        seen = set()
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(seen) < 60 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.add(msg.value().decode())
        consumer.close()
        assert seen == {f"{w}-{i}" for w in ("before", "after") for i in range(30)}
    finally:
        c.stop()
