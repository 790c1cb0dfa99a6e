"""The web console on the ``metrics.listener`` port, in a real browser: Debian's ``chromium``
driven headless by ``playwright-core`` (pinned in ``console/package.json``) through
``console/render.js``. A broker gets a topic with known end offsets, a kafka-python group with
known committed offsets (so known lag) that stays a member while the page is open, and steady
traffic on another topic; the rendered page must show the broker, the topic's partitions and
end offsets, the group with its member and lag, and charts with lines drawn.

Nothing is skipped: without chromium (``apt-get install chromium``, as scripts/test does) or
Node.js 20 the module fails. playwright-core is installed with ``npm ci`` into
``~/.cache/gregor-console-npm``, never into the repository. The screenshot goes to the test's
temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from conftest import (CLIENT_TIMEOUT_S, close_client, kp_consumer, kp_create_topic, kp_producer,
                      npm_ci, unique_topic, wait_until)

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


def render(node_path, port, topic, group, screenshot):
    cfg = {"url": f"http://127.0.0.1:{port}/", "chromium": CHROMIUM, "screenshot": screenshot,
           "topic": topic, "group": group, "minUpdates": 4, "timeoutMs": (RENDER_TIMEOUT_S - 15) * 1000}
    cmd = ["node", os.path.join(CONSOLE_DIR, "render.js"), json.dumps(cfg)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                              env=dict(os.environ, NODE_PATH=node_path), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"render.js did not finish within {RENDER_TIMEOUT_S}s\n{e.stdout}\n{e.stderr}") from None
    assert done.returncode == 0, f"render.js exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


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

    assert shown["errors"] == [], shown["errors"]
    assert shown["status"].startswith("updated"), shown["status"]
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
    with open(screenshot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"console screenshot: {screenshot}")
