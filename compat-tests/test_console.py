"""The web console on the ``metrics.listener`` port, in a real browser: Debian's ``chromium``
driven headless by ``playwright-core`` (pinned in ``console/package.json``) through
``console/render.js``. A broker gets a topic with known end offsets, a kafka-python group with
known committed offsets (so known lag) that stays a member while the page is open, and steady
traffic on another topic; the rendered page must show the broker, the topic's partitions and
end offsets, the group with its member and lag, and charts with lines drawn. On a three-node
cluster, one node's page must show every broker and each partition's leader, replicas and ISR
as the cluster's metadata has them, and, once a node is killed, that broker fenced, the ISR
without it and the partitions it led led by another.

Nothing is skipped: without chromium (``apt-get install chromium``, as scripts/test does) or
Node.js 20 the module fails. playwright-core is installed with ``npm ci`` into
``~/.cache/gregor-console-npm``, never into the repository. The screenshots go to the tests'
temporary directories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.request

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from conftest import (CLIENT_TIMEOUT_S, ScriptCluster, close_client, kp_consumer, kp_create_topic,
                      kp_producer, npm_ci, unique_topic, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
CONSOLE_DIR = os.path.join(HERE, "console")
NPM_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "gregor-console-npm")
CHROMIUM = "/usr/bin/chromium"
RENDER_TIMEOUT_S = 60

# Records produced to partition p, and the offset the group commits there: lag 0, 5 and 10.
END_OFFSETS = [4, 7, 10]
COMMITTED = [4, 2, 0]
CLIENT_ID = "console-consumer"


def pinned_version() -> str:
    with open(os.path.join(CONSOLE_DIR, "package.json")) as f:
        return json.load(f)["dependencies"]["playwright-core"]


def installed_version() -> str | None:
    try:
        with open(os.path.join(NPM_CACHE, "node_modules", "playwright-core", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def node_path():
    """NODE_PATH with the pinned playwright-core, after checking for node and chromium."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the console test needs Node.js 20 or later", pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"node {version} is too old: playwright-core needs Node.js 20 or later", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test installs it)", pytrace=False)
    if installed_version() != pinned_version():
        os.makedirs(NPM_CACHE, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(CONSOLE_DIR, name), NPM_CACHE)
        npm_ci(NPM_CACHE, "playwright-core")
    return os.path.join(NPM_CACHE, "node_modules")


def produce_end_offsets(bootstrap, topic):
    producer = kp_producer(bootstrap)
    try:
        futures = [producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
                   for p, end in enumerate(END_OFFSETS) for i in range(end)]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        for f in futures:
            f.get(timeout=CLIENT_TIMEOUT_S)
    finally:
        close_client(producer)


def traffic(bootstrap, topic, stop: threading.Event):
    """Records every 50 ms until stopped, so the throughput charts have rates above 0."""
    producer = kp_producer(bootstrap, linger_ms=0)
    try:
        while not stop.wait(0.05):
            producer.send(topic, value=b"x" * 200)
        producer.flush(timeout=CLIENT_TIMEOUT_S)
    finally:
        close_client(producer)


def render(node_path, port, topic, group, screenshot, min_updates=4):
    """What the page shows once it has polled ``min_updates`` times and shows the topic and (unless
    None) the group; the page must have updated without errors."""
    cfg = {"url": f"http://127.0.0.1:{port}/", "chromium": CHROMIUM, "screenshot": screenshot,
           "topic": topic, "group": group, "minUpdates": min_updates, "timeoutMs": (RENDER_TIMEOUT_S - 15) * 1000}
    cmd = ["node", os.path.join(CONSOLE_DIR, "render.js"), json.dumps(cfg)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                              env=dict(os.environ, NODE_PATH=node_path), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"render.js did not finish within {RENDER_TIMEOUT_S}s\n{e.stdout}\n{e.stderr}") from None
    assert done.returncode == 0, f"render.js exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["errors"] == [], shown["errors"]
    assert shown["status"].startswith("updated"), shown["status"]
    with open(screenshot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"console screenshot: {screenshot}")
    return shown


def test_console_shows_brokers_topics_groups_and_charts(metered, node_path, tmp_path):
    broker, port = metered
    topic, busy, group = unique_topic("console"), unique_topic("traffic"), unique_topic("group")
    kp_create_topic(broker.bootstrap, topic, len(END_OFFSETS))
    kp_create_topic(broker.bootstrap, busy, 1)
    produce_end_offsets(broker.bootstrap, topic)

    consumer = kp_consumer(broker.bootstrap, group_id=group, client_id=CLIENT_ID, auto_offset_reset="earliest")
    stop = threading.Event()
    producing = threading.Thread(target=traffic, args=(broker.bootstrap, busy, stop), daemon=True)
    try:
        consumer.subscribe([topic])
        wait_until(lambda: consumer.poll(100) is not None and len(consumer.assignment()) == len(END_OFFSETS),
                   message="the consumer's assignment")
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1) for p, offset in enumerate(COMMITTED)})
        producing.start()
        screenshot = str(tmp_path / "console.png")
        shown = render(node_path, port, topic, group, screenshot)
    finally:
        stop.set()
        if producing.is_alive():
            producing.join(timeout=CLIENT_TIMEOUT_S)
        close_client(consumer)

    (row,) = shown["brokers"]
    assert row[0] == "1" and broker.bootstrap in row[1] and "controller" in row[3] and row[4] == "serving", row

    assert [p["partition"] for p in shown["partitions"]] == list(range(len(END_OFFSETS))), shown["partitions"]
    for p, end in zip(shown["partitions"], END_OFFSETS):
        assert (p["leader"], p["replicas"], p["isr"], p["logStart"], p["logEnd"]) == ("1", "1", "1", "0", str(end)), p

    lags = [end - committed for end, committed in zip(END_OFFSETS, COMMITTED)]
    g = shown["group"]
    assert [(o["topic"], o["partition"], o["committed"], o["lag"]) for o in g["offsets"]] == \
        [(topic, p, str(c), str(lag)) for p, (c, lag) in enumerate(zip(COMMITTED, lags))], g
    assert g["totalLag"] == str(sum(lags)) and "Stable" in g["heading"], g
    (member,) = g["members"]
    assert CLIENT_ID in member and topic in member, member
    assert all(o["owner"] == CLIENT_ID for o in g["offsets"]), g["offsets"]

    # Lines drawn, not just the grid: pixels of the first series' colour (bytes in; the group's lag).
    charts = shown["charts"]
    assert charts["bytes"]["points"] >= 2 and charts["bytes"]["series"] > 0, charts
    assert charts["lag"]["points"] >= 1 and charts["lag"]["series"] > 0, charts
    assert shown["maxRates"]["bytesIn"] > 0 and shown["maxRates"]["recordsIn"] > 0, shown["maxRates"]


# Each partition on all three nodes, with different preferred leaders. The console rendered is
# node 3's; the node killed is 1 or 2, so it leads a partition.
ASSIGNMENT = [[1, 2, 3], [2, 3, 1]]
CONSOLE_NODE = 3


def cluster_metadata(admin, topic):
    """(unfenced broker ids, [(leader, replicas, isr)] by partition) as the cluster's Metadata
    answers them."""
    m = admin.list_topics(topic, timeout=10)
    partitions = m.topics[topic].partitions
    return set(m.brokers), [(p.leader, p.replicas, p.isrs) for _, p in sorted(partitions.items())]


def overview_partitions(port, topic):
    """[(leader, replicas, isr)] by partition in the node's own /api/overview, which its page
    renders; None before the node knows the topic."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=5) as r:
        t = next((t for t in json.load(r)["topics"] if t["name"] == topic), None)
    return t and [(p["leader"], p["replicas"], p["isr"]) for p in t["partitions"]]


def assert_page_shows(shown, partitions):
    """The page's partition rows are ``partitions``; an ISR short of the replicas is marked."""
    rows = [(p["partition"], p["leader"], p["replicas"], p["isr"], p["isrMarked"]) for p in shown["partitions"]]
    listed = ", ".join
    assert rows == [(i, str(leader), listed(map(str, replicas)), listed(map(str, isr)), len(isr) < len(replicas))
                    for i, (leader, replicas, isr) in enumerate(partitions)], (rows, partitions)


def test_console_on_a_cluster_follows_a_killed_node(node_path, tmp_path):
    """Node 3's page shows the brokers and partitions as the cluster's metadata has them, before
    and after a node that leads a partition is killed."""
    from confluent_kafka.admin import AdminClient, NewTopic

    cluster = ScriptCluster(3, metrics=True)
    try:
        bootstrap = cluster.all_live()
        port = cluster.metrics_port + CONSOLE_NODE - 1
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic = unique_topic("replicated")
        admin.create_topics([NewTopic(topic, len(ASSIGNMENT), replica_assignment=ASSIGNMENT)])[topic].result(30)

        def settled(brokers, in_sync):
            """The metadata once it lists ``brokers`` and each partition led by a node of ``in_sync``,
            its ISR, and the console node sees the same; else None."""
            live, partitions = cluster_metadata(admin, topic)
            if live != brokers or len(partitions) != len(ASSIGNMENT) or \
                    any(leader not in isr or set(isr) != in_sync for leader, _, isr in partitions):
                return None
            return partitions if overview_partitions(port, topic) == partitions else None

        everyone = {1, 2, 3}
        before = wait_until(lambda: settled(everyone, everyone), message=lambda: f"every partition fully in sync\n{cluster.log()}")
        assert [replicas for _, replicas, _ in before] == ASSIGNMENT, before
        shown = render(node_path, port, topic, None, str(tmp_path / "cluster.png"), min_updates=1)
        assert [row[0] for row in shown["brokers"]] == ["1", "2", "3"], shown["brokers"]
        for row, address in zip(shown["brokers"], cluster.bootstrap):
            assert address in row[1] and row[4] == "serving", row
            assert ("this node" in row[3]) == (row[0] == str(CONSOLE_NODE)), row
        assert_page_shows(shown, before)

        # The active controller is left running: the quorum needs no election.
        (controller,) = [int(row[0]) for row in shown["brokers"] if "controller" in row[3]]
        victim = next(node for node in (1, 2) if node != controller)
        led = [i for i, (leader, _, _) in enumerate(before) if leader == victim]
        assert led, (victim, before)
        os.kill(cluster.node_pid(victim), signal.SIGKILL)
        survivors = everyone - {victim}
        after = wait_until(lambda: settled(survivors, survivors), timeout=2 * CLIENT_TIMEOUT_S,
                           message=lambda: f"broker {victim} out of the metadata and every ISR\n{cluster.log()}")
        shown = render(node_path, port, topic, None, str(tmp_path / "cluster-killed.png"), min_updates=1)
        states = {int(row[0]): row[4] for row in shown["brokers"]}
        assert states == {n: "fenced" if n == victim else "serving" for n in everyone}, shown["brokers"]
        assert_page_shows(shown, after)
        assert all(shown["partitions"][i]["leader"] != str(victim) for i in led), (victim, shown["partitions"])
    finally:
        cluster.stop()
