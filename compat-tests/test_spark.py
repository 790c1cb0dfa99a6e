"""Apache Spark 3.5.7 Structured Streaming (pyspark, local[2]) with its Kafka source and sink
(spark-sql-kafka-0-10 from Maven Central: compat-tests/spark/pom.xml, given as spark.jars)
against Gregor: a query reads a two-partition topic, upper-cases the values and writes key and
value to another topic, with trigger(availableNow) so it stops once caught up. Run, stopped,
given more input and started again from the same checkpoint (in the same Spark, which takes
half a minute to start), the output holds each input transformed exactly once. pyspark lives in
a venv of its own that scripts/test installs (compat-tests/spark/requirements.txt)."""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (JAVA, _die_with_parent, ck_producer, ck_read_topic, kp_create_topic, maven_classpath,
                      produce_numbered, stop_process_group, tail)

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.expanduser(os.environ.get("GREGOR_SPARK_VENV", "~/.cache/gregor-spark-venv"))
QUERY = os.path.join(HERE, "spark", "uppercase.py")
QUERY_TIMEOUT_S = 75  # the first run starts Spark: about 40 s on an idle machine, the second 10 s


@pytest.fixture(scope="module")
def spark_python():
    python = os.path.join(VENV, "bin", "python")
    if not os.access(python, os.X_OK):
        pytest.fail(f"no pyspark venv at {VENV}: scripts/test installs it "
                    "(pip install -r compat-tests/spark/requirements.txt)", pytrace=False)
    return python


def await_line(lines: queue.Queue, line: str, timeout: float, log_path: str):
    """Waits for ``line`` among the query's output ``lines`` (None once it closed its output)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {line!r} from the query within {timeout}s\n{tail(log_path)}") from None
        assert got is not None, f"the query exited before printing {line!r}\n{tail(log_path)}"
        if got.strip() == line:
            return


def read_lines(stream, lines: queue.Queue):
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.mark.timeout(180)
@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_spark_structured_streaming_kafka_source_and_sink_across_a_restart(spark_python, broker):
    jars = maven_classpath("spark").replace(":", ",")
    kp_create_topic(broker.bootstrap, "spark-in", 2)
    kp_create_topic(broker.bootstrap, "spark-out", 2)
    producer = ck_producer(broker.bootstrap)
    expected = collections.Counter()

    with tempfile.TemporaryDirectory(prefix="gregor-spark-") as work:
        log_path = os.path.join(work, "spark.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([spark_python, QUERY, broker.bootstrap, "spark-in", "spark-out",
                                     os.path.join(work, "checkpoint"), jars],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                    # Spark's scratch (blockmgr-*, spark-*) goes with the rest.
                                    env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": work,
                                         "TMPDIR": work, "JDK_JAVA_OPTIONS": f"-Djava.io.tmpdir={work}"},
                                    start_new_session=True, preexec_fn=_die_with_parent)
        lines = queue.Queue()
        threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
        try:
            for first, count in ((0, 100), (100, 50)):
                expected.update((key, value.upper()) for key, value in produce_numbered(producer, "spark-in", first, count))
                proc.stdin.write("run\n")
                proc.stdin.flush()
                await_line(lines, "caught up", QUERY_TIMEOUT_S, log_path)
                assert collections.Counter(ck_read_topic(broker.bootstrap, "spark-out", 2)) == expected
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0, tail(log_path)
        finally:
            stop_process_group(proc)
