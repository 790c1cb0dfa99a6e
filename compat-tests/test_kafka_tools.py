"""Apache Kafka 4.1.0's everyday command-line tools against Gregor, run as a user runs them
(each is the main class its ``bin/kafka-*.sh`` script starts): ``kafka-topics``,
``kafka-console-producer`` and ``kafka-console-consumer``, ``kafka-consumer-groups``,
``kafka-get-offsets``, ``kafka-delete-records`` and ``kafka-log-dirs``.

The jars come from Maven Central (``compat-tests/kafka-tools/pom.xml``, resolved once by
``scripts/kafka-tools``); each run is one JVM start of about 1.5 s. Without ``java`` the
module is skipped.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import JAVA, kafka_tool, unique_topic

pytestmark = pytest.mark.skipif(JAVA is None, reason="java is not installed")

TOOLS = "org.apache.kafka.tools."
RECORDS = 6


@pytest.fixture
def tool(tools_classpath, broker):
    """Runs the tool ``main_class`` (under org.apache.kafka.tools) against the broker and
    returns its stdout, failing the test if it exited with an error."""

    def run(main_class, *args, input=None):
        code, out, err = kafka_tool(tools_classpath, TOOLS + main_class, broker.bootstrap, *args, input=input)
        assert code == 0, f"{main_class} {' '.join(args)} exited {code}:\n{out}\n{err[-3000:]}"
        return out

    return run


def offsets(tool, topic, *args):
    """{partition: offset} as kafka-get-offsets prints it (topic:partition:offset lines)."""
    lines = tool("GetOffsetShell", "--topic", topic, *args).split()
    return {int(p): int(o) for t, p, o in (line.rsplit(":", 2) for line in lines) if t == topic}


def test_console_tools_groups_offsets_delete_records_and_log_dirs(tool, tmp_path):
    """Two-partition topic made by kafka-topics; keyed lines written by
    kafka-console-producer and read back whole by kafka-console-consumer in a group;
    kafka-consumer-groups describes the group's offsets, resets them to the earliest and
    deletes the group; kafka-get-offsets gives the earliest and latest offsets before and
    after kafka-delete-records; kafka-log-dirs lists the topic's replicas with their sizes."""
    topic, group = unique_topic("tools"), unique_topic("tools-group")
    assert f"Created topic {topic}." in tool("TopicCommand", "--create", "--topic", topic, "--partitions", "2",
                                              "--replication-factor", "1")

    lines = [f"k{i % 3}:value-{i}" for i in range(RECORDS)]
    tool("ConsoleProducer", "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
         input="\n".join(lines) + "\n")
    assert sum(offsets(tool, topic, "--time", "-1").values()) == RECORDS

    read = tool("consumer.ConsoleConsumer", "--topic", topic, "--group", group, "--from-beginning",
                "--max-messages", str(RECORDS), "--timeout-ms", "30000",
                "--property", "print.key=true", "--property", "key.separator=:",
                "--property", "print.partition=true")
    # "Partition:<p>:<key>:<value>" per record (the separator goes between every field); a
    # key always lands on the same partition.
    records = [line.split(":", 2)[1:] for line in read.splitlines() if line.startswith("Partition:")]
    assert sorted(record for _, record in records) == sorted(lines), read
    partition_of = {}
    for where, record in records:
        partition_of.setdefault(record.split(":")[0], set()).add(where)
    assert all(len(where) == 1 for where in partition_of.values()), read

    def group_offsets():
        """{partition: (current offset, log end offset, lag)} from kafka-consumer-groups."""
        out = tool("consumer.group.ConsumerGroupCommand", "--describe", "--group", group)
        rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
        return {int(r[2]): (r[3], r[4], r[5]) for r in rows if r[1] == topic}

    latest = offsets(tool, topic, "--time", "-1")
    assert group_offsets() == {p: (str(o), str(o), "0") for p, o in latest.items()}
    reset = tool("consumer.group.ConsumerGroupCommand", "--reset-offsets", "--group", group, "--topic", topic,
                 "--to-earliest", "--execute")
    assert topic in reset
    assert group_offsets() == {p: ("0", str(o), str(o)) for p, o in latest.items()}
    assert "Deletion of requested consumer groups" in tool("consumer.group.ConsumerGroupCommand", "--delete",
                                                           "--group", group)
    assert group not in tool("consumer.group.ConsumerGroupCommand", "--list").split()

    busy = max(latest, key=latest.get)
    plan = tmp_path / "delete.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": busy, "offset": 2}]}))
    deleted = tool("DeleteRecordsCommand", "--offset-json-file", os.fspath(plan))
    assert f"partition: {topic}-{busy}\tlow_watermark: 2" in deleted, deleted
    earliest = offsets(tool, topic, "--time", "-2")
    assert earliest == {p: (2 if p == busy else 0) for p in latest}
    assert offsets(tool, topic, "--time", "-1") == latest

    described = tool("LogDirsCommand", "--describe", "--topic-list", topic)
    (answer,) = [json.loads(line) for line in described.splitlines() if line.startswith("{")]
    (broker,) = answer["brokers"]
    (log_dir,) = broker["logDirs"]
    sizes = {p["partition"]: p["size"] for p in log_dir["partitions"]}
    assert set(sizes) == {f"{topic}-{p}" for p in latest}
    assert all(sizes[f"{topic}-{p}"] > 0 for p, o in latest.items() if o > 0), sizes
