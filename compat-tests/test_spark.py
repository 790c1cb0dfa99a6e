"""Apache Spark 3.5.7 Structured Streaming (pyspark, local[2]) with its Kafka source and sink
(spark-sql-kafka-0-10 from Maven Central: compat-tests/spark/pom.xml, given as spark.jars)
against Gregor: a query reads a two-partition topic, upper-cases the values and writes key and
value to another topic, with trigger(availableNow) so it stops once caught up. Run, stopped,
given more input and run again from the same checkpoint, the output holds each input
transformed exactly once. pyspark lives in a venv of its own that scripts/test installs
(compat-tests/spark/requirements.txt)."""

from __future__ import annotations

import collections
import os
import tempfile

import pytest

from conftest import JAVA, ck_producer, ck_read_topic, kp_create_topic, maven_classpath, produce_numbered, run_to_end

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.expanduser(os.environ.get("GREGOR_SPARK_VENV", "~/.cache/gregor-spark-venv"))
QUERY = os.path.join(HERE, "spark", "uppercase.py")
QUERY_TIMEOUT_S = 80


@pytest.fixture(scope="module")
def spark_python():
    python = os.path.join(VENV, "bin", "python")
    if not os.access(python, os.X_OK):
        pytest.fail(f"no pyspark venv at {VENV}: scripts/test installs it "
                    "(pip install -r compat-tests/spark/requirements.txt)", pytrace=False)
    return python


@pytest.mark.timeout(180)
@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_spark_structured_streaming_kafka_source_and_sink_across_a_restart(spark_python, broker):
    jars = maven_classpath("spark").replace(":", ",")
    kp_create_topic(broker.bootstrap, "spark-in", 2)
    kp_create_topic(broker.bootstrap, "spark-out", 2)
    producer = ck_producer(broker.bootstrap)
    expected = collections.Counter()

    with tempfile.TemporaryDirectory(prefix="gregor-spark-") as work:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
        for first, count in ((0, 100), (100, 50)):
            expected.update((key, value.upper()) for key, value in produce_numbered(producer, "spark-in", first, count))
            run_to_end([spark_python, QUERY, broker.bootstrap, "spark-in", "spark-out",
                        os.path.join(work, "checkpoint"), jars],
                       QUERY_TIMEOUT_S, os.path.join(work, "query.log"), env)
            assert collections.Counter(ck_read_topic(broker.bootstrap, "spark-out", 2)) == expected
