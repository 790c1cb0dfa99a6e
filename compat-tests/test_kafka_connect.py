"""Kafka Connect 4.1 in standalone mode (from Maven Central: compat-tests/kafka-apps/pom.xml)
against Gregor: the FileStream source connector copies a file's lines into a topic, and the
FileStream sink connector writes the topic to another file through its consumer group, lines
appended while it runs included; the sink's group commits its offsets."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile

import pytest

from conftest import CLIENT_TIMEOUT_S, JAVA, free_port, kp_admin, wait_until


def properties(path, **values):
    with open(path, "w") as f:
        for k, v in values.items():
            f.write(f"{k.replace('_', '.')}={v}\n")
    return path


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_connect_standalone_file_source_and_sink(apps_classpath, broker):
    with tempfile.TemporaryDirectory(prefix="gregor-connect-") as work:
        source_file, sink_file = os.path.join(work, "in.txt"), os.path.join(work, "out.txt")
        lines = [f"line {i}" for i in range(100)]
        with open(source_file, "w") as f:
            f.write("".join(f"{line}\n" for line in lines))
        worker = properties(os.path.join(work, "worker.properties"),
                            bootstrap_servers=broker.bootstrap,
                            key_converter="org.apache.kafka.connect.storage.StringConverter",
                            value_converter="org.apache.kafka.connect.storage.StringConverter",
                            offset_storage_file_filename=os.path.join(work, "offsets"),
                            offset_flush_interval_ms=500,
                            listeners=f"http://127.0.0.1:{free_port()}")
        source = properties(os.path.join(work, "source.properties"), name="file-source", tasks_max=1,
                            connector_class="org.apache.kafka.connect.file.FileStreamSourceConnector",
                            file=source_file, topic="connect-lines")
        sink = properties(os.path.join(work, "sink.properties"), name="file-sink", tasks_max=1,
                          connector_class="org.apache.kafka.connect.file.FileStreamSinkConnector",
                          file=sink_file, topics="connect-lines")
        log_path = os.path.join(work, "connect.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([JAVA, "-Xmx512m", f"-Djava.io.tmpdir={work}", "-cp", apps_classpath,
                                     "org.apache.kafka.connect.cli.ConnectStandalone", worker, source, sink],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def log_tail():
            with open(log_path, errors="replace") as f:
                return f.read()[-6000:]

        def copied():
            if not os.path.exists(sink_file):
                return None
            with open(sink_file) as f:
                return f.read().splitlines()

        try:
            wait_until(lambda: copied() == lines or None, timeout=3 * CLIENT_TIMEOUT_S,
                       message=lambda: f"the sink file to hold the source's 100 lines, has {len(copied() or [])}\n{log_tail()}")
            more = [f"more {i}" for i in range(50)]
            with open(source_file, "a") as f:
                f.write("".join(f"{line}\n" for line in more))
            wait_until(lambda: copied() == lines + more or None, timeout=CLIENT_TIMEOUT_S,
                       message=lambda: f"the appended lines copied, has {len(copied() or [])}\n{log_tail()}")

            def committed():
                admin = kp_admin(broker.bootstrap)
                try:
                    offsets = admin.list_group_offsets("connect-file-sink")["connect-file-sink"]
                finally:
                    admin.close()
                return sum(o.offset for o in offsets.values()) == 150 or None

            wait_until(committed, timeout=CLIENT_TIMEOUT_S, message=lambda: f"the sink's group to commit 150\n{log_tail()}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
