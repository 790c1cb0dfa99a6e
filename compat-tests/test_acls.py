"""ACLs and the authorizer: the real ``kafka-acls`` of Apache Kafka 4.1.0
(``org.apache.kafka.tools.AclCommand``) adds, lists and removes ACLs on a broker started with
``authorizer.class.name``; kafka-python and confluent-kafka are then refused (or not) as Kafka
would refuse them. Every client is ``User:ANONYMOUS`` (no listener authenticates), so the ACLs
name that principal.
"""

from __future__ import annotations

import pytest

from conftest import (ANONYMOUS, AUTHORIZER, JAVA, ScriptCluster, acl, ck_consumer, ck_producer, kafka_acls,
                      kp_consumer, kp_create_topic, kp_producer, start_broker, unique_topic, wait_until)

pytestmark = pytest.mark.skipif(JAVA is None, reason="java is not installed")

def kp_send(bootstrap, topic):
    producer = kp_producer(bootstrap, max_block_ms=5000, retries=0)
    try:
        return producer.send(topic, b"v").get(timeout=15)
    finally:
        producer.close(timeout=5)


def test_kafka_acls_adds_lists_and_removes(tools_classpath, authorizing_broker):
    b = authorizing_broker.bootstrap
    out = acl(tools_classpath, b, "--add", "--deny-principal", ANONYMOUS, "--operation", "Write", "--topic", "secret")
    assert "operation=WRITE, permissionType=DENY" in out
    acl(tools_classpath, b, "--add", "--allow-principal", "User:alice", "--operation", "Read",
        "--topic", "logs-", "--resource-pattern-type", "prefixed")
    out = acl(tools_classpath, b, "--list")
    assert "ResourcePattern(resourceType=TOPIC, name=secret, patternType=LITERAL)" in out
    assert "(principal=User:ANONYMOUS, host=*, operation=WRITE, permissionType=DENY)" in out
    assert "ResourcePattern(resourceType=TOPIC, name=logs-, patternType=PREFIXED)" in out
    # A MATCH filter finds the prefixed ACL for a topic it covers.
    out = acl(tools_classpath, b, "--list", "--topic", "logs-app", "--resource-pattern-type", "match")
    assert "name=logs-, patternType=PREFIXED" in out and "name=secret" not in out
    acl(tools_classpath, b, "--remove", "--force", "--deny-principal", ANONYMOUS, "--operation", "Write", "--topic", "secret")
    out = acl(tools_classpath, b, "--list")
    assert "name=secret" not in out and "name=logs-" in out


def test_kafka_acls_without_authorizer_is_security_disabled(tools_classpath, broker):
    code, out, err = kafka_acls(tools_classpath, broker.bootstrap, "--list")
    assert code != 0 or "SecurityDisabledException" in out + err
    assert "No Authorizer is configured" in out + err


def test_deny_refuses_produce_and_consume_on_that_topic_only(tools_classpath, authorizing_broker):
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
    from confluent_kafka import KafkaError, TopicPartition

    b = authorizing_broker.bootstrap
    secret, public = unique_topic("secret"), unique_topic("public")
    kp_create_topic(b, secret, 1)
    kp_create_topic(b, public, 1)
    kp_send(b, secret)  # allowed before the ACLs
    for op in ("Write", "Read"):
        acl(tools_classpath, b, "--add", "--deny-principal", ANONYMOUS, "--operation", op, "--topic", secret)

    with pytest.raises(TopicAuthorizationFailedError):
        kp_send(b, secret)
    assert kp_send(b, public).offset == 0

    consumer = kp_consumer(b)
    try:
        from kafka import TopicPartition as KpPartition
        consumer.assign([KpPartition(secret, 0)])
        consumer.seek(KpPartition(secret, 0), 0)
        # An ACL on the topic also ends allow.everyone.if.no.acl.found for its DESCRIBE, as in
        # Kafka: kafka-python logs the refused metadata and reads nothing.
        assert not any(consumer.poll(timeout_ms=500) for _ in range(6))
    finally:
        consumer.close()

    errors = []
    producer = ck_producer(b)
    producer.produce(secret, b"v", on_delivery=lambda err, msg: errors.append(err))
    producer.produce(public, b"w", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert sorted(e.code() if e else 0 for e in errors) == sorted([0, KafkaError.TOPIC_AUTHORIZATION_FAILED])

    consumer = ck_consumer(b)
    try:
        consumer.assign([TopicPartition(secret, 0, 0)])
        # As kafka-python: the refused metadata leaves nothing to read.
        polled = [consumer.poll(0.5) for _ in range(6)]
        assert not [m for m in polled if m is not None and not m.error()]
    finally:
        consumer.close()

    group = unique_topic("g")
    acl(tools_classpath, b, "--add", "--deny-principal", ANONYMOUS, "--operation", "Read", "--group", group)
    consumer = kp_consumer(b, group_id=group)
    try:
        consumer.subscribe([public])
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(20):
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()


def test_metadata_hides_a_topic_describe_is_denied_on(tools_classpath, authorizing_broker):
    from kafka import KafkaAdminClient

    b = authorizing_broker.bootstrap
    hidden, shown = unique_topic("hidden"), unique_topic("shown")
    kp_create_topic(b, hidden, 1)
    kp_create_topic(b, shown, 1)
    acl(tools_classpath, b, "--add", "--deny-principal", ANONYMOUS, "--operation", "Describe", "--topic", hidden)
    admin = KafkaAdminClient(bootstrap_servers=b)
    try:
        topics = admin.list_topics()
        assert shown in topics and hidden not in topics
    finally:
        admin.close()


def test_authorized_operations_say_what_the_acls_allow(tools_classpath, authorizing_broker):
    """confluent-kafka's admin asks for KIP-430's authorized operations of a topic, the cluster
    and a group; they follow the ACLs rather than listing everything."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicCollection, TopicPartition
    from confluent_kafka.admin import AclOperation, AdminClient

    b = authorizing_broker.bootstrap
    topic, group = unique_topic("ops"), unique_topic("ops-g")
    kp_create_topic(b, topic, 1)
    acl(tools_classpath, b, "--add", "--allow-principal", ANONYMOUS, "--operation", "Read", "--topic", topic)
    acl(tools_classpath, b, "--add", "--deny-principal", ANONYMOUS, "--operation", "Delete", "--group", group)
    acl(tools_classpath, b, "--add", "--allow-principal", ANONYMOUS, "--operation", "All", "--group", group)
    admin = AdminClient({"bootstrap.servers": b})
    # A committed offset makes the group exist; a Read ACL on the topic allows the commit.
    committed = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 0)])])[group].result(timeout=15)
    assert committed.topic_partitions[0].error is None

    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)
    ops = set(described[topic].result(timeout=15).authorized_operations)
    assert ops == {AclOperation.READ, AclOperation.DESCRIBE}, ops
    # No ACL names the cluster: allow.everyone.if.no.acl.found gives all of its operations.
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=15)
    assert AclOperation.ALTER in cluster.authorized_operations
    assert AclOperation.CLUSTER_ACTION in cluster.authorized_operations
    groups = admin.describe_consumer_groups([group], include_authorized_operations=True)
    ops = set(groups[group].result(timeout=15).authorized_operations)
    assert ops == {AclOperation.READ, AclOperation.DESCRIBE}, ops


def test_super_users_pass_without_any_acl_and_acls_survive_a_restart(tools_classpath):
    b = start_broker(AUTHORIZER + ("--super-users", "User:admin;" + ANONYMOUS))
    try:
        topic = unique_topic("t")
        kp_create_topic(b.bootstrap, topic, 1)
        assert kp_send(b.bootstrap, topic).offset == 0
        acl(tools_classpath, b.bootstrap, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic)
        b.restart()
        out = acl(tools_classpath, b.bootstrap, "--list", "--topic", topic)
        assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in out
    finally:
        b.cleanup()


def test_without_super_user_nothing_is_allowed_when_no_acl_is_found(tools_classpath):
    from kafka.errors import TopicAuthorizationFailedError

    b = start_broker(AUTHORIZER)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            kp_send(b.bootstrap, unique_topic("t"))
    finally:
        b.cleanup()


def test_an_acl_created_on_one_node_is_enforced_on_another(tools_classpath):
    from kafka.errors import TopicAuthorizationFailedError

    c = ScriptCluster(3, extra_args=AUTHORIZER + ("--allow-everyone-if-no-acl-found", "true"))
    try:
        c.all_live()
        topic = unique_topic("t")
        kp_create_topic(c.bootstrap[0], topic, 1)
        acl(tools_classpath, c.bootstrap[0], "--add", "--deny-principal", ANONYMOUS, "--operation", "Write", "--topic", topic)

        def refused_on_node_3():
            try:
                kp_send(c.bootstrap[2], topic)
            except TopicAuthorizationFailedError:
                return True
            return False

        wait_until(refused_on_node_3, timeout=30, message="node 3 to enforce the ACL")
        out = acl(tools_classpath, c.bootstrap[1], "--list", "--topic", topic)
        assert "operation=WRITE, permissionType=DENY" in out
    finally:
        c.stop()
