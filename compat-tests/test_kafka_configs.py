"""The real ``kafka-configs`` of Apache Kafka 4.1.0 (``kafka.admin.ConfigCommand``) against
Gregor, on brokers: per broker (``--entity-name 1``) and cluster-wide (``--entity-default``),
``--alter --add-config`` / ``--delete-config``, ``--describe`` (dynamic only, and ``--all``),
and Kafka's refusals as the tool prints them.

The tool's jars come from Maven Central: ``scripts/kafka-tools`` resolves the versions pinned
in ``compat-tests/kafka-tools/pom.xml`` with Maven into ``~/.cache/gregor-kafka-tools`` once
and prints the tools_classpath file (a few seconds when cached; each tool run is one JVM start, about
1.5 s). Without ``java`` the module is skipped; without ``mvn`` it fails.
"""

from __future__ import annotations

import pytest

from conftest import JAVA, kafka_tool, kp_assert_record_size_limit, start_broker

pytestmark = pytest.mark.skipif(JAVA is None, reason="java is not installed")


@pytest.fixture(scope="module")
def own_broker():
    b = start_broker()
    try:
        yield b
    finally:
        b.cleanup()


def kafka_configs(tools_classpath, broker, *args):
    """Runs kafka-configs; returns (exit code, stdout, stderr)."""
    return kafka_tool(tools_classpath, "kafka.admin.ConfigCommand", broker.bootstrap, *args)


def alter(tools_classpath, broker, entity, *args):
    return kafka_configs(tools_classpath, broker, "--entity-type", "brokers", *entity, "--alter", *args)


def test_kafka_configs_alters_and_describes_broker_configs(tools_classpath, own_broker):
    b = own_broker
    one, default = ("--entity-name", "1"), ("--entity-default",)
    code, out, err = alter(tools_classpath, b, one, "--add-config", "log.retention.ms=3600000")
    assert (code, out.strip()) == (0, "Completed updating config for broker 1."), err
    code, out, err = alter(tools_classpath, b, default, "--add-config", "message.max.bytes=2000,log.retention.ms=7200000")
    assert (code, out.strip()) == (0, "Completed updating default config for brokers in the cluster."), err

    code, out, err = kafka_configs(tools_classpath, b, "--entity-type", "brokers", "--describe")
    assert code == 0, err
    assert out.splitlines() == [
        "Dynamic configs for broker 1 are:",
        "  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, "
        "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000, DEFAULT_CONFIG:log.retention.ms=604800000}",
        "Default configs for brokers in the cluster are:",
        "  log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000}",
        "  message.max.bytes=2000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:message.max.bytes=2000}",
    ]
    code, out, err = kafka_configs(tools_classpath, b, "--entity-type", "brokers", "--entity-name", "1", "--describe", "--all")
    assert code == 0, err
    assert f"  listeners=PLAINTEXT://127.0.0.1:{b.port} sensitive=false synonyms={{STATIC_BROKER_CONFIG:listeners=PLAINTEXT://127.0.0.1:{b.port}, " \
        "DEFAULT_CONFIG:listeners=PLAINTEXT://127.0.0.1:9092}" in out.splitlines()
    assert "  message.max.bytes=2000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:message.max.bytes=2000, " \
        "DEFAULT_CONFIG:message.max.bytes=1048588}" in out.splitlines()

    # The cluster-wide message.max.bytes holds for the next produce.
    kp_assert_record_size_limit(b.bootstrap, 100, 5000)

    # Kafka's refusals, as the tool reports them.
    code, _, err = alter(tools_classpath, b, one, "--add-config", "log.dirs=/elsewhere")
    assert code != 0 and "InvalidRequestException: Cannot update these configs dynamically: log.dirs" in err, err
    code, _, err = alter(tools_classpath, b, one, "--add-config", "log.retention.ms=soon")
    assert code != 0 and "InvalidConfigurationException" in err, err

    code, _, err = alter(tools_classpath, b, one, "--delete-config", "log.retention.ms")
    assert code == 0, err
    code, _, err = alter(tools_classpath, b, one, "--delete-config", "log.retention.ms")
    assert code != 0 and "Invalid config(s): log.retention.ms" in err, err
    code, out, err = kafka_configs(tools_classpath, b, "--entity-type", "brokers", "--entity-name", "1", "--describe")
    assert (code, out.splitlines()) == (0, ["Dynamic configs for broker 1 are:"]), err
