"""Kafka Streams 4.1 (from Maven Central: compat-tests/kafka-apps/pom.xml) runs a word count with
processing_guarantee=exactly_once_v2 against Gregor: a repartition topic, a state store with its
changelog, and the output, each commit one transaction. Stopped and started again with more
input, read_committed shows exactly the counts of every line given."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import CLIENT_TIMEOUT_S, JAVA, ck_consumer, ck_producer, compile_java, kp_create_topic, wait_until

LINES = ["the quick brown fox", "jumps over the lazy dog", "the dog barks"]


@pytest.fixture(scope="module")
def word_count(apps_classpath):
    work = tempfile.mkdtemp(prefix="gregor-streams-")
    compile_java(os.path.join("streams", "WordCount.java"), apps_classpath, work)
    yield f"{work}:{apps_classpath}"
    subprocess.run(["rm", "-rf", work], check=False)


class StreamsApp:
    def __init__(self, classpath, bootstrap, state_dir):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([JAVA, "-Xmx512m", "-cp", classpath, "WordCount", bootstrap, "wordcount-eos", state_dir],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = self.output()
        self.log.close()
        return out


def latest_counts(bootstrap):
    """The last count of each word in word-counts, read_committed."""
    c = ck_consumer(bootstrap, **{"isolation.level": "read_committed", "auto.offset.reset": "earliest",
                                 "enable.partition.eof": True})
    try:
        c.subscribe(["word-counts"])
        counts, eof_at = {}, None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = c.poll(0.3)
            if m is None:
                if eof_at is not None and time.monotonic() - eof_at > 1:
                    break
                continue
            if m.error() is None:
                counts[m.key().decode()] = int(m.value())
            else:
                eof_at = time.monotonic()
        return counts
    finally:
        c.close()


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_streams_exactly_once_v2_word_count_across_a_restart(word_count, broker):
    kp_create_topic(broker.bootstrap, "lines", 2)
    kp_create_topic(broker.bootstrap, "word-counts", 2)
    producer = ck_producer(broker.bootstrap)
    expected = collections.Counter()

    def feed(rounds):
        for i in range(rounds):
            for line in LINES:
                producer.produce("lines", key=str(i).encode(), value=line.encode())
                expected.update(line.split())
        assert producer.flush(30) == 0

    with tempfile.TemporaryDirectory(prefix="gregor-streams-state-") as state:
        for rounds in (20, 5):
            feed(rounds)
            app = StreamsApp(word_count, broker.bootstrap, state)
            try:
                wait_until(lambda: latest_counts(broker.bootstrap) == dict(expected) or None, timeout=3 * CLIENT_TIMEOUT_S,
                           message=lambda: f"the counts of every line ({dict(expected)}), read {latest_counts(broker.bootstrap)}\n{app.output()[-6000:]}")
            finally:
                out = app.stop()
            assert '"state": "RUNNING"' in out, out[-6000:]
            assert not re.search(r"ERROR|Exception in thread", out), out[-6000:]
