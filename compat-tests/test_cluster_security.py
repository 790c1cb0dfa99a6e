"""A cluster whose brokers reach each other only over SASL_SSL (inter.broker.listener.name),
logging in with PLAIN from their listener's JAAS config, and whose controller quorum speaks
mutual TLS, with the authorizer on and the brokers' user in super.users: followers replicate over TLS and SASL, acks=all records survive
the kill of their partition leader, ACLs and SCRAM users made on one node hold on the others,
and a broker with a wrong inter-broker password never joins the ISR and logs why."""

from __future__ import annotations

import os
import signal
import time

from conftest import CLIENT_TIMEOUT_S, ScriptCluster, ck_drain, wait_until

BROKER_PASSWORD = "broker-secret"
USERS = {"admin": "admin-secret", "carol": "carol-secret"}


def jaas(password: str) -> str:
    """The SASL_SSL listener's PLAIN config: the broker logs in as `broker` with `password`;
    the user_ entries are whom it accepts."""
    users = " ".join(f'user_{u}="{p}"' for u, p in {"broker": BROKER_PASSWORD, **USERS}.items())
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="broker" password="{password}" {users};')


def properties(certs, path: str, broker_password: str) -> str:
    with open(path, "w") as f:
        f.write("\n".join([
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            # The controller quorum over mutual TLS: each node shows its certificate.
            "listener.name.controller.ssl.client.auth=required",
            "inter.broker.listener.name=SASL_SSL",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas(broker_password)}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={certs['broker']}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={certs['ca']}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:broker;User:admin",
            "replica.lag.time.max.ms=4000",
            "",
        ]))
    return path


def client(certs, user="admin", password=USERS["admin"], mechanism="PLAIN", **more):
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": certs["ca"], "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, "socket.timeout.ms": 10000, **more}


def test_a_cluster_replicates_over_sasl_ssl_and_an_impostor_never_joins_the_isr(certs, tmp_path):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       NewTopic, ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    good = properties(certs, str(tmp_path / "broker.properties"), BROKER_PASSWORD)
    impostor = properties(certs, str(tmp_path / "impostor.properties"), "not-the-password")
    # Nodes 1-3 are voters; node 4, a broker only, has the wrong inter-broker password.
    c = ScriptCluster(4, listener="SASL_SSL",
                      node_args={1: ["--config", good], 2: ["--config", good], 3: ["--config", good], 4: ["--config", impostor]})
    try:
        bootstrap = ",".join(c.bootstrap)
        admin = AdminClient(client(certs, **{"bootstrap.servers": bootstrap}))

        def brokers():
            try:
                return set(admin.list_topics(timeout=10).brokers) == {1, 2, 3, 4}
            except Exception:  # not serving yet
                return False

        wait_until(brokers, timeout=CLIENT_TIMEOUT_S, message=lambda: f"four brokers over SASL_SSL\n{c.log()}")
        topics = [NewTopic("replicated", 1, replica_assignment=[[1, 2, 3]]), NewTopic("with-impostor", 1, replica_assignment=[[1, 2, 4]])]
        for future in admin.create_topics(topics).values():
            future.result(30)

        def partition0(topic, isr):
            p = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
            return p if p is not None and p.error is None and sorted(p.isrs) == isr else None

        # Replicas 2 and 3 fetch from 1 over TLS, logged in as User:broker (CLUSTER_ACTION as a super user).
        p0 = wait_until(lambda: partition0("replicated", [1, 2, 3]), timeout=CLIENT_TIMEOUT_S,
                        message=lambda: f"replicated's three replicas in sync\n{c.log()}")

        producer = Producer(client(certs, **{"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}))
        acked = []

        def produce(numbers):
            for i in numbers:
                producer.produce("replicated", value=f"v{i}".encode(), partition=0,
                                 on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None)
            assert producer.flush(30) == 0
            assert len(acked) == numbers.stop

        produce(range(200))

        # Security lives in the metadata quorum: made through node 1, effective on nodes 2 and 3.
        node = {k: AdminClient(client(certs, **{"bootstrap.servers": c.bootstrap[k - 1]})) for k in (1, 2, 3)}
        upsert = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"dave-secret")
        for future in node[1].alter_user_scram_credentials([upsert]).values():
            future.result(CLIENT_TIMEOUT_S)
        acl = AclBinding(ResourceType.TOPIC, "replicated", ResourcePatternType.LITERAL, "User:dave", "*",
                         AclOperation.DESCRIBE, AclPermissionType.ALLOW)
        node[1].create_acls([acl])[acl].result(CLIENT_TIMEOUT_S)

        def dave_sees_the_topic_through_node_2():
            dave = AdminClient(client(certs, "dave", "dave-secret", "SCRAM-SHA-256", **{"bootstrap.servers": c.bootstrap[1]}))
            try:
                return "replicated" in dave.list_topics(timeout=10).topics
            except Exception:  # the credential has not reached node 2 yet
                return False

        wait_until(dave_sees_the_topic_through_node_2, timeout=CLIENT_TIMEOUT_S,
                   message=lambda: f"dave's SCRAM login and ACL on node 2\n{c.log()}")
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)
        assert [b.principal for b in node[3].describe_acls(everything).result(CLIENT_TIMEOUT_S)] == ["User:dave"]

        # The impostor is refused by the leader: it leaves the ISR it started in (after
        # replica.lag.time.max.ms) and never returns; it says why, once per 30 s.
        def refusals():
            with open(c.log_path, errors="replace") as f:
                return [line for line in f if line.startswith("[node 4]") and "SASL PLAIN login as broker refused" in line]

        wait_until(refusals, timeout=CLIENT_TIMEOUT_S, message=lambda: f"node 4 to log its refused login\n{c.log()}")
        wait_until(lambda: partition0("with-impostor", [1, 2]), timeout=CLIENT_TIMEOUT_S,
                   message=lambda: f"node 4 out of the ISR\n{c.log()}")
        time.sleep(3)
        assert partition0("with-impostor", [1, 2]) is not None, "node 4 stays out of the ISR"
        assert len(refusals()) <= 2, refusals()

        os.kill(c.node_pid(p0.leader), signal.SIGKILL)

        def new_leader():
            p = admin.list_topics("replicated", timeout=10).topics["replicated"].partitions.get(0)
            return p.leader if p is not None and p.leader not in (-1, p0.leader) else None

        wait_until(new_leader, timeout=CLIENT_TIMEOUT_S, message=lambda: f"a new leader\n{c.log()}")
        produce(range(200, 250))

        consumer = Consumer(client(certs, **{"bootstrap.servers": bootstrap, "group.id": "secured-reader",
                                             "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
        consumer.assign([TopicPartition("replicated", 0, 0)])
        seen = [m.value() for m in ck_drain(consumer, len(acked))]
        consumer.close()
        assert seen == acked, f"read {len(seen)} of {len(acked)} acknowledged records"
    finally:
        c.stop()
